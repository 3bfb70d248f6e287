"""SSL contexts for the client side of every connection pgherd opens itself: to an
agent's API (http.client) and to etcd (httpx). Built once per file set and process, and
reused.

Once matters more than it looks: the first context of a process costs OpenSSL 3.0's
initialisation (its providers and configuration, 1.5-8 ms measured here, where a later
context costs 0.2 ms), and ``cluster show`` asks every agent at once, a thread each. An
unguarded cache let each of those threads miss it together and build its own context (up
to three in one run, each paying that time on a machine with two cores), so the build is
done under a lock and the other threads wait for it."""

from __future__ import annotations

import functools
import ssl
import threading
from pathlib import Path

from pgherd.errors import ConfigError

_building = threading.Lock()


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Verify the server against ``ca`` (the cluster CA: the system's CAs are not
    trusted), its name against the address dialled; present ``cert`` when given."""
    mtime = _mtime(ca)
    with _building:
        return _cached(str(ca), str(cert) if cert else None, str(key) if key else None, mtime)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=32)
def _cached(ca: str, cert: str | None, key: str | None, _mtime: float) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot load the cluster's TLS files ({ca}"
            + (f", {cert}" if cert else "")
            + f"): {reason}",
            "create them with `pgherd secrets init` (or `lab up`), or run as a user that "
            "can read them",
        ) from None
    return context
