"""The store a config names: etcd for real clusters, sqlite for one machine."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from pgherd.config_lite import LiteConfig, LiteEtcdDcs, as_lite
from pgherd.dcs.base import Store
from pgherd.errors import ConfigError
from pgherd.tls.context import client_context

if TYPE_CHECKING:
    from pgherd.config import ClusterConfig


def etcd_verify(config: LiteConfig, dcs: LiteEtcdDcs) -> ssl.SSLContext | bool:
    """How the store's client checks etcd: against ``ha.dcs.ca`` (default: the cluster
    CA), presenting ``ha.dcs.cert`` when given."""
    ca = dcs.ca or config.ca_file
    if not dcs.https or ca is None:
        return True
    key = dcs.key if dcs.cert is not None else None
    return client_context(ca, dcs.cert, key)


def etcd_auth(dcs: LiteEtcdDcs) -> tuple[str, str] | None:
    if dcs.username is None or dcs.password_file is None:
        return None
    try:
        password = dcs.password_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read ha.dcs.password_file {dcs.password_file}: {exc.strerror}",
            "run as a user that can read it",
        ) from None
    if not password:
        raise ConfigError(f"ha.dcs.password_file {dcs.password_file} is empty")
    return dcs.username, password


def open_store(
    config: ClusterConfig | LiteConfig, timeout: float | None = None, quick: bool = False
) -> Store:
    """``timeout``: the longest one call may wait for the store (default: the config's
    ``retry_timeout``). The etcd endpoints share it (model/store_budget.py), so that
    trying them all still fits in it. ``quick``: for a command that makes a few calls and
    exits (no connection pool, and no httpx to import); it speaks TLS to etcd exactly as
    the agents do.

    A store held to ``retry_timeout`` (the HA loop's, the witness's: calls the timing rule
    bounds) keeps a connection open to every etcd endpoint, so that moving to another one
    costs no handshake inside that budget; one given a longer ``timeout`` (operations,
    the event log) does not need to."""
    config = as_lite(config)  # pydantic-free: cluster show reads the store
    if config.ha is None:
        raise ConfigError(
            "this cluster has no coordination store (no ha: section in pgherd.yaml)",
            "add one (docs/failover.md) or use the manual operations",
        )
    limit = config.ha.retry_timeout if timeout is None else timeout
    if isinstance(config.ha.dcs, LiteEtcdDcs):
        from pgherd.dcs.etcd import EtcdStore  # lazy: only for etcd

        dcs = config.ha.dcs
        endpoints = dcs.etcd
        return EtcdStore(
            endpoints,
            config.cluster,
            timeout=limit,
            verify=etcd_verify(config, dcs),
            auth=etcd_auth(dcs),
            one_shot=quick,
            keep_warm=timeout is None,
        )
    from pgherd.dcs.sqlite import SqliteStore  # lazy, as etcd above

    return SqliteStore(config.ha.dcs.sqlite, busy_timeout=limit, cluster=config.cluster)
