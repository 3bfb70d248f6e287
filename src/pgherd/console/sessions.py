"""Console logins and sessions.

A session is a random id in a cookie (HttpOnly, SameSite=Strict, Secure under HTTPS)
that maps to the user, the role and a CSRF token kept on the server, in a sqlite file
(0600, beside the cluster's secrets, under the SHA-256 of the id: the file does not hold
usable cookies), so that sessions survive a console restart; they end after
``console.session_minutes`` or at logout. Without a file (tests) they live in memory. Every
POST must carry the session's CSRF token (a form field, or the ``X-CSRF-Token`` header
that htmx sends from ``hx-headers``); SameSite=Strict is a second line, not the only one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pgherd.config import ClusterConfig, ConsoleRole
from pgherd.console import passwords

COOKIE = "pgherd_console"
LOGIN_COOKIE = "pgherd_login"  # the login form's CSRF token, before there is a session
TOKEN_USER = "token"  # noqa: S105 (a user name, not a secret): how a login with the cluster's API token is named


@dataclass
class Session:
    id: str
    user: str
    role: ConsoleRole
    csrf: str
    expires: float
    created: float = field(default_factory=time.time)

    @property
    def can_act(self) -> bool:
        return self.role == "operator"

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf)


class Sessions:
    def __init__(self, minutes: int, path: Path | None = None) -> None:
        self.seconds = minutes * 60
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._file = SessionFile(path) if path is not None else None

    def open(self, user: str, role: ConsoleRole) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            user=user,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + self.seconds,
        )
        if self._file is not None:
            self._file.save(session)
            return session
        with self._lock:
            self._drop_expired()
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        if self._file is not None:
            return self._file.get(session_id)
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if session.expires < time.time():
                del self._by_id[session_id]
                return None
            return session

    def close(self, session_id: str | None) -> None:
        if self._file is not None:
            self._file.delete(session_id or "")
            return
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def _drop_expired(self) -> None:
        now = time.time()
        for key in [k for k, s in self._by_id.items() if s.expires < now]:
            del self._by_id[key]


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionFile:
    """Sessions in a sqlite file, each under the digest of its id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, user TEXT NOT NULL,"
                " role TEXT NOT NULL, csrf TEXT NOT NULL, expires REAL NOT NULL,"
                " created REAL NOT NULL)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=5)
        try:
            with db:
                yield db
        finally:
            db.close()

    def save(self, session: Session) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    _key(session.id),
                    session.user,
                    session.role,
                    session.csrf,
                    session.expires,
                    session.created,
                ),
            )

    def get(self, session_id: str) -> Session | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT user, role, csrf, expires, created FROM sessions WHERE key = ?",
                (_key(session_id),),
            ).fetchone()
        if row is None or row[3] < time.time() or row[1] not in ("viewer", "operator"):
            return None
        user, role, csrf, expires, created = row
        return Session(session_id, user, role, csrf, expires, created)

    def delete(self, session_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM sessions WHERE key = ?", (_key(session_id),))


def authenticate(
    config: ClusterConfig, token: str | None, user: str, password: str
) -> tuple[str, ConsoleRole] | None:
    """(user, role) when the name and password match a console user, or when the user is
    ``token`` and the password is the cluster's API token (if ``token_login``)."""
    if user == TOKEN_USER and config.console.token_login and token:
        if hmac.compare_digest(password.encode(), token.encode()):
            return TOKEN_USER, "operator"
        return None
    for entry in config.console.users:
        if entry.name == user:
            return (
                (entry.name, entry.role)
                if passwords.verify(password, entry.password_hash)
                else None
            )
    passwords.verify(password, passwords.DUMMY_HASH)  # same time for an unknown name
    return None
