"""Servers that are not this node: a subscription's publisher, reached the way the
subscription itself connects (its conninfo, the password from the passfile)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from pgherd.errors import Refused


def describe(conninfo: str) -> dict[str, str]:
    """host, port, user, dbname of a conninfo, for display (never the other parameters)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return {}
    return {k: str(params[k]) for k in ("host", "port", "user", "dbname") if params.get(k)}


@contextlib.contextmanager
def connect(conninfo: str, what: str = "the publisher") -> Iterator[psycopg.Connection[Any]]:
    """A connection to ``what`` at ``conninfo``, refused with the reason in one line."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        shown = describe(conninfo)
        raise Refused(
            f"cannot connect to {what} ({shown.get('host', '?')}:"
            f"{shown.get('port', '5432')}): {first}",
            "is it running? is the role's password in the passfile, and does pg_hba.conf "
            "let it in?",
        ) from None
    with conn:
        yield conn
