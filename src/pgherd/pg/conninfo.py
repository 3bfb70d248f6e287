"""Connection strings: keyword/value for servers' settings, URIs for people and scripts.

Passwords never appear in them: every connection names the passfile instead. With the
cluster's TLS on, every TCP connection also says ``sslmode=verify-full`` with the cluster
CA as ``sslrootcert``: the server must prove it is the node dialled, by a certificate the
cluster's CA signed for that address.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    sslrootcert: Path | None = None,
) -> str:
    """``host=… port=… user=… passfile=…`` as primary_conninfo and pg_basebackup take it;
    ``options`` are server settings for the session (``-c jit=off``); ``sslrootcert``:
    verify the server against this CA (``sslmode=verify-full``)."""
    params: dict[str, object] = {"host": host, "port": port, "user": user, "passfile": passfile}
    params.update(ssl_params(sslrootcert))
    if dbname:
        params["dbname"] = dbname
    if application_name:
        params["application_name"] = application_name
    if options:
        params["options"] = options
    return " ".join(f"{key}={quote_value(str(value))}" for key, value in params.items())


def read_write(
    hosts: Sequence[tuple[str, int]],
    user: str,
    passfile: Path,
    dbname: str | None = None,
    application_name: str | None = None,
    sslrootcert: Path | None = None,
) -> str:
    """:func:`keyword` for every node of a cluster (``host=a,b port=1,2``) with
    ``target_session_attrs=read-write``: libpq tries the nodes in turn and keeps the one
    that takes writes, so a client (a mesh worker reading a member's slot) follows the
    cluster's primary through a failover by reconnecting."""
    if not hosts:
        raise ValueError("no hosts to connect to")
    params: dict[str, object] = {
        "host": ",".join(h for h, _ in hosts),
        "port": ",".join(str(p) for _, p in hosts),
        "user": user,
        "passfile": passfile,
        "target_session_attrs": "read-write",
    }
    params.update(ssl_params(sslrootcert))
    if dbname:
        params["dbname"] = dbname
    if application_name:
        params["application_name"] = application_name
    return " ".join(f"{key}={quote_value(str(value))}" for key, value in params.items())


def ssl_params(sslrootcert: Path | None) -> dict[str, object]:
    """What a connection needs to verify the server; nothing with TLS off."""
    if sslrootcert is None:
        return {}
    return {"sslmode": "verify-full", "sslrootcert": sslrootcert}


def uri(
    host: str,
    port: int,
    user: str,
    passfile: Path,
    dbname: str = "postgres",
    sslrootcert: Path | None = None,
) -> str:
    """``postgresql://user@host:port/db?passfile=…`` for psql and drivers."""
    shown_host = f"[{host}]" if ":" in host else host
    query = "passfile=" + quote(str(passfile), safe="/")
    for key, value in ssl_params(sslrootcert).items():
        query += f"&{key}=" + quote(str(value), safe="/")
    return f"postgresql://{quote(user)}@{shown_host}:{port}/{quote(dbname)}?{query}"
