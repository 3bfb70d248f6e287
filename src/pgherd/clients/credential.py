"""The credential a client sends: a token, or a file holding one that is read again when
it changes (an agent's own node token outlives a ``pgherd secrets rotate``)."""

from __future__ import annotations

import threading
from pathlib import Path

from pgherd.errors import ConfigError


class TokenFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: float | None = None
        self._token = ""

    def value(self) -> str:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            raise ConfigError(
                f"cannot read the token file {self.path}: {exc.strerror}",
                "create it with pgherd secrets init, or run as a user that can read it",
            ) from None
        with self._lock:
            if mtime != self._seen:
                token = self.path.read_text().strip()
                if not token:
                    raise ConfigError(f"the token file {self.path} is empty")
                self._token, self._seen = token, mtime
            return self._token


Credential = str | TokenFile


def token_of(credential: Credential | None) -> str | None:
    if credential is None or isinstance(credential, str):
        return credential
    return credential.value()
