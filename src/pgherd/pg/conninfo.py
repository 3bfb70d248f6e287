"""Connection strings: keyword/value for servers' settings, URIs for people and scripts.

Passwords never appear in them: every connection names the passfile instead.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

_NEEDS_QUOTES = frozenset(" '\\\t\n\r\f\v")


def quote_value(value: str) -> str:
    """A conninfo value as libpq parses it: single-quoted when empty or holding a space,
    quote or backslash (which are then backslash-escaped)."""
    if value and not _NEEDS_QUOTES.intersection(value):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def keyword(
    host: str,
    port: int,
    user: str,
    passfile: Path,
    dbname: str | None = None,
    application_name: str | None = None,
    options: str | None = None,
) -> str:
    """``host=… port=… user=… passfile=…`` as primary_conninfo and pg_basebackup take it;
    ``options`` are server settings for the session (``-c jit=off``)."""
    params: dict[str, object] = {"host": host, "port": port, "user": user, "passfile": passfile}
    if dbname:
        params["dbname"] = dbname
    if application_name:
        params["application_name"] = application_name
    if options:
        params["options"] = options
    return " ".join(f"{key}={quote_value(str(value))}" for key, value in params.items())


def uri(host: str, port: int, user: str, passfile: Path, dbname: str = "postgres") -> str:
    """``postgresql://user@host:port/db?passfile=…`` for psql and drivers."""
    shown_host = f"[{host}]" if ":" in host else host
    query = "passfile=" + quote(str(passfile), safe="/")
    return f"postgresql://{quote(user)}@{shown_host}:{port}/{quote(dbname)}?{query}"
