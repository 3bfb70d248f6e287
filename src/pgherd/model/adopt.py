"""Adopting a PostgreSQL that pgherd did not make: what must change, decided without I/O.

An adopted primary keeps the operator's settings except those replication needs, and
those only raised to what pgherd needs (``wal_level`` to at least ``replica``, room for
senders and slots, ``wal_log_hints`` unless data checksums are on, WAL kept for rewinds,
the node's address and pgherd's socket directory added to what it listens on). The
operator's values before adoption are recorded in the data directory
(:class:`Original`, the file ``pgherd.adopted``), which clones copy: every node of an
adopted cluster derives its settings from them the same way (:func:`adopted_settings`),
and pgherd never turns on what the operator did not ask for (logging, commit timestamps,
password encryption stay theirs).

A setting is changed through pgherd's include file, or through ``ALTER SYSTEM`` when the
operator set it that way (postgresql.auto.conf is read last and would win); a setting tied
to one host (addresses, socket directories, port) that the operator set by ALTER SYSTEM is
reset there instead, so that clones, which copy postgresql.auto.conf, get their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pgherd.model.settings import text as render
from pgherd.model.status import Frozen

Setting = str | int | float | bool

SUPPORTED_MAJORS = range(13, 18)
# Tied to the host: reset in postgresql.auto.conf (clones copy it) rather than set there.
NODE_SPECIFIC = frozenset({"listen_addresses", "port", "unix_socket_directories"})
# What adoption reads of the server before it changes anything.
WATCHED = (
    "wal_level",
    "max_wal_senders",
    "max_replication_slots",
    "hot_standby",
    "wal_log_hints",
    "wal_keep_size",
    "wal_receiver_status_interval",
    "wal_retrieve_retry_interval",
    "listen_addresses",
    "port",
    "unix_socket_directories",
)
WAL_LEVELS = ("minimal", "replica", "logical")
# `postgres -C` prints values in these base units, without the unit.
BASE_UNITS = {
    "wal_keep_size": "MB",
    "wal_receiver_status_interval": "s",
    "wal_retrieve_retry_interval": "ms",
}
FAST_INTERVAL_MS = 1000  # status reports and retries: pgherd's failover speed needs 1 s


class Original(Frozen):
    """The operator's values before adoption (the data directory's ``pgherd.adopted``)."""

    by: str  # the node whose agent adopted the data
    at: float  # seconds since the epoch
    data_checksums: bool
    values: dict[str, str]


class Via(StrEnum):
    INCLUDE = "pgherd.conf"
    ALTER_SYSTEM = "ALTER SYSTEM"
    RESET = "ALTER SYSTEM RESET, then pgherd.conf"


@dataclass(frozen=True)
class Current:
    """One setting as the server has it."""

    value: str  # as `postgres -C` or SHOW prints it
    in_auto_conf: bool = False  # set by ALTER SYSTEM
    restart: bool = False  # postmaster context: a change needs a restart


@dataclass(frozen=True)
class Change:
    name: str
    old: str
    new: str
    via: Via
    restart: bool


@dataclass(frozen=True)
class Facts:
    """What the data directory and the installed programs say, read before anything changes."""

    node: str
    major: int | None  # PG_VERSION
    programs_major: int  # the PostgreSQL programs pgherd would run
    node_port: int  # pgherd.yaml's
    server_port: int | None  # the running server's (postmaster.pid), else its configuration's
    config_in_data_dir: bool  # postgresql.conf, pg_hba.conf, pg_ident.conf are in it
    standby: bool
    data_checksums: bool


def problems(facts: Facts) -> tuple[str, ...]:
    """Why these data cannot be adopted (each a sentence with its fix); empty if they can."""
    found = []
    if facts.major is None or facts.major not in SUPPORTED_MAJORS:
        found.append(
            f"the data directory is PostgreSQL {facts.major or 'of an unknown version'}: "
            "pgherd adopts PostgreSQL 13 to 17"
        )
    elif facts.major != facts.programs_major:
        found.append(
            f"the data directory is PostgreSQL {facts.major} but pgherd would run the "
            f"PostgreSQL {facts.programs_major} programs: set pg_bin for {facts.node} in "
            f"pgherd.yaml (e.g. /usr/lib/postgresql/{facts.major}/bin)"
        )
    if not facts.config_in_data_dir:
        found.append(
            "postgresql.conf, pg_hba.conf or pg_ident.conf lives outside the data directory "
            "(as Debian's pg_createcluster lays clusters out): move them into it (and set "
            "data_directory, hba_file, ident_file back to their defaults) before adopting"
        )
    if facts.server_port is not None and facts.server_port != facts.node_port:
        found.append(
            f"the server listens on port {facts.server_port} but pgherd.yaml gives "
            f"{facts.node} port {facts.node_port}: set port: {facts.server_port} for "
            f"{facts.node} (its clients keep their port)"
        )
    if facts.standby:
        found.append(
            "the data directory is a standby's (standby.signal): adopt its primary; this node "
            "then follows it"
        )
    return tuple(found)


def adopted_settings(
    original: Original,
    host: str,
    port: int,
    socket_dir: str,
    nodes: int,
    wal_keep_size: str,
) -> dict[str, Setting]:
    """pgherd's settings for one node of an adopted cluster: the operator's values, raised
    where replication needs more, with the node's own address and socket directory."""
    o = original.values
    need = nodes + 4  # a sender and a slot per standby, and room for clones and rewinds
    values: dict[str, Setting] = {
        "listen_addresses": merge_list(o.get("listen_addresses", "localhost"), host, ","),
        "port": port,
        "unix_socket_directories": merge_list(
            o.get("unix_socket_directories", ""), socket_dir, ","
        ),
        "wal_level": _at_least_level(o.get("wal_level", "replica"), "replica"),
        "max_wal_senders": max(_int(o.get("max_wal_senders"), 10), need),
        "max_replication_slots": max(_int(o.get("max_replication_slots"), 10), need),
        "hot_standby": True,
        "wal_keep_size": _larger_size(o.get("wal_keep_size", "0"), wal_keep_size),
    }
    if not original.data_checksums:
        values["wal_log_hints"] = True  # pg_rewind needs one of the two
    for name in ("wal_receiver_status_interval", "wal_retrieve_retry_interval"):
        given = o.get(name)
        ms = milliseconds(given) if given is not None else None
        if ms is None or ms == 0 or ms > FAST_INTERVAL_MS:
            values[name] = "1s"
    return values


def plan(current: Mapping[str, Current], wanted: Mapping[str, Setting]) -> tuple[Change, ...]:
    """The settings that differ from what the server has, and how each is changed."""
    changes = []
    for name, new in wanted.items():
        cur = current.get(name)
        if cur is not None and same(name, cur.value, new):
            continue
        via = Via.INCLUDE
        if cur is not None and cur.in_auto_conf:
            via = Via.RESET if name in NODE_SPECIFIC else Via.ALTER_SYSTEM
        changes.append(
            Change(
                name=name,
                old=cur.value if cur is not None else "",
                new=render(new),
                via=via,
                restart=cur.restart if cur is not None else False,
            )
        )
    return tuple(changes)


def from_config(name: str, raw: str) -> str:
    """A value as ``postgres -C`` prints it, with its base unit written out."""
    unit = BASE_UNITS.get(name)
    return f"{raw}{unit}" if unit and raw.strip().lstrip("-").isdigit() else raw


def needs_restart(changes: Iterable[Change]) -> tuple[str, ...]:
    return tuple(c.name for c in changes if c.restart)


# ---- values --------------------------------------------------------------------------


def same(name: str, current: str, new: Setting) -> bool:
    """Whether the server's ``current`` value already is ``new``, units and lists read."""
    wanted = render(new)
    if current.strip() == wanted.strip():
        return True
    if name in NODE_SPECIFIC:
        return _items(current, ",") == _items(wanted, ",")
    size_a, size_b = size_bytes(current), size_bytes(wanted)
    if size_a is not None and size_b is not None and _has_unit(current + wanted, _SIZE_UNITS):
        return size_a == size_b
    ms_a, ms_b = milliseconds(current), milliseconds(wanted)
    if ms_a is not None and ms_b is not None and _has_unit(current + wanted, _TIME_UNITS):
        return ms_a == ms_b
    return _boolean(current) is not None and _boolean(current) == _boolean(wanted)


def merge_list(existing: str, item: str, sep: str) -> str:
    """``existing`` with ``item`` added unless it is already covered ('*' covers any address)."""
    items = _items(existing, sep)
    if item in items or "*" in items:
        return existing.strip()
    if item in ("127.0.0.1", "::1") and "localhost" in items:
        return existing.strip()
    if item.count(".") == 3 and "0.0.0.0" in items:  # noqa: S104 (reading, not binding)
        return existing.strip()
    return f"{sep} ".join([*items, item])


def _items(text: str, sep: str) -> list[str]:
    return [part.strip().strip("'\"") for part in text.split(sep) if part.strip()]


_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
_TIME_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def _has_unit(text: str, units: Mapping[str, float]) -> bool:
    return any(u in text.lower() for u in units if u)


def size_bytes(text: str, default_unit: str = "mb") -> int | None:
    """``512MB``, ``1GB``, ``0`` (wal_keep_size's unit is MB) as bytes; None if not a size."""
    match = _NUMBER.match(text)
    if match is None:
        return None
    unit = (match.group(2) or default_unit).lower()
    if unit not in _SIZE_UNITS:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def milliseconds(text: str, default_unit: str = "s") -> float | None:
    match = _NUMBER.match(text)
    if match is None:
        return None
    unit = (match.group(2) or default_unit).lower()
    if unit not in _TIME_UNITS:
        return None
    return float(match.group(1)) * _TIME_UNITS[unit]


def _boolean(text: str) -> bool | None:
    value = text.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    return None


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _at_least_level(level: str, minimum: str) -> str:
    have = WAL_LEVELS.index(level) if level in WAL_LEVELS else 0
    return WAL_LEVELS[max(have, WAL_LEVELS.index(minimum))]


def _larger_size(current: str, wanted: str) -> str:
    have, need = size_bytes(current), size_bytes(wanted)
    if have is not None and need is not None and have >= need:
        return current
    return wanted
