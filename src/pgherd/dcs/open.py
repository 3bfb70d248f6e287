"""The store a config names: etcd for real clusters, sqlite for one machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgherd.config_lite import LiteConfig, LiteEtcdDcs, as_lite
from pgherd.dcs.base import Store
from pgherd.dcs.etcd_transport import OneShotTransport
from pgherd.errors import ConfigError

if TYPE_CHECKING:
    from pgherd.config import ClusterConfig


def open_store(
    config: ClusterConfig | LiteConfig, timeout: float | None = None, quick: bool = False
) -> Store:
    """``timeout``: the longest one call may wait for the store (default: the config's
    ``retry_timeout``). Each etcd endpoint gets its share, so that trying them all still
    fits in it. ``quick``: for a command that makes a few calls and exits (no connection
    pool, and no httpx to import)."""
    config = as_lite(config)  # pydantic-free: cluster show reads the store
    if config.ha is None:
        raise ConfigError(
            "this cluster has no coordination store (no ha: section in pgherd.yaml)",
            "add one (docs/failover.md) or use the manual operations",
        )
    limit = config.ha.retry_timeout if timeout is None else timeout
    if isinstance(config.ha.dcs, LiteEtcdDcs):
        from pgherd.dcs.etcd import EtcdStore  # lazy: httpx (~0.3 s) only for etcd

        endpoints = config.ha.dcs.etcd
        share = max(limit / len(endpoints), 0.1)
        transport = OneShotTransport(share) if quick else None
        return EtcdStore(endpoints, config.cluster, timeout=share, transport=transport)
    from pgherd.dcs.sqlite import SqliteStore  # lazy, as etcd above

    return SqliteStore(config.ha.dcs.sqlite, busy_timeout=limit, cluster=config.cluster)
