"""Console logins and sessions.

A session is a random id in a cookie (HttpOnly, SameSite=Strict, Secure under HTTPS)
that maps to the user, the role and a CSRF token kept on the server; sessions live in
memory and end with the process, after ``console.session_minutes`` or at logout. Every
POST must carry the session's CSRF token (a form field, or the ``X-CSRF-Token`` header
that htmx sends from ``hx-headers``); SameSite=Strict is a second line, not the only one.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

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
    def __init__(self, minutes: int) -> None:
        self.seconds = minutes * 60
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, user: str, role: ConsoleRole) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            user=user,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + self.seconds,
        )
        with self._lock:
            self._drop_expired()
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            if session.expires < time.time():
                del self._by_id[session_id]
                return None
            return session

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def _drop_expired(self) -> None:
        now = time.time()
        for key in [k for k, s in self._by_id.items() if s.expires < now]:
            del self._by_id[key]


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
