"""The credentials an agent accepts, read from the grants file and read again when it
changes, so that ``pgherd secrets rotate`` takes effect without a restart.

Without a grants file (a cluster set up before there was one) the cluster's one token is
the operator's, as before.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from pgherd.errors import ConfigError
from pgherd.model.access import Grant, Grants, Role, digest, parse_grants

log = logging.getLogger("pgherd.api")


def operator_only(token: str) -> Grants:
    """The grants of a cluster with one shared token: it is the operator's."""
    return Grants.of([Grant("operator", Role.OPERATOR, digest(token))])


def read_grants(path: Path) -> Grants:
    try:
        return parse_grants(json.loads(path.read_text()))
    except OSError as exc:
        raise ConfigError(f"cannot read the API grants file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(
            f"the API grants file {path} is not valid: {exc}",
            "write it again with pgherd secrets rotate",
        ) from None


class GrantsFile:
    """The grants in ``path`` as of its last change (one ``stat`` per request).

    A file that turns unreadable or invalid after the agent started keeps the last good
    grants (logged), rather than locking every caller out of the agent.
    """

    def __init__(self, path: Path, fallback: Grants) -> None:
        self.path = path
        self._fallback = fallback
        self._lock = threading.Lock()
        self._seen: float | None = None
        self._grants = self._load_first()

    def _load_first(self) -> Grants:
        if not self.path.exists():
            return self._fallback
        self._seen = self.path.stat().st_mtime
        return read_grants(self.path)

    def __call__(self) -> Grants:
        try:
            mtime: float | None = self.path.stat().st_mtime
        except OSError:
            mtime = None
        if mtime == self._seen:
            return self._grants
        with self._lock:
            if mtime is None:
                return self._grants
            try:
                self._grants = read_grants(self.path)
                log.info("API credentials changed: %d grants", len(self._grants.grants))
            except ConfigError as exc:
                log.warning("%s; keeping the previous credentials", exc.one_line())
            self._seen = mtime
            return self._grants
