"""What a change to ``settings:`` in pgherd.yaml takes to reach PostgreSQL.

PostgreSQL says it for every parameter: its *context* (``pg_settings.context``, and
``postgres --describe-config`` without a running server). A reload applies ``sighup``,
``superuser`` and ``user`` parameters (a session that SET one itself keeps its own); a
``backend`` or ``superuser-backend`` one reaches only sessions started after the reload;
a ``postmaster`` one needs a restart, and until then PostgreSQL shows it as
``pending_restart``. A name PostgreSQL does not know makes it refuse the whole
configuration file — on reload it keeps the old values, on a restart it does not start —
so such a name is refused before anything is written. A name with a dot belongs to an
extension (``pg_stat_statements.max``), which defines it once loaded.

Some parameters pgherd sets itself from the node's entry in pgherd.yaml (its port, its
socket directory, what a standby streams from): ``settings:`` may not set those, or pgherd
would lose its own server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

SettingValue = str | int | float | bool


class Effect(StrEnum):
    RELOAD = "reload"  # a reload applies it
    NEW_SESSIONS = "new sessions"  # sessions started after the reload get it
    RESTART = "restart"  # pending until PostgreSQL restarts
    EXTENSION = "extension"  # an extension's parameter: PostgreSQL says once it is loaded
    UNKNOWN = "unknown"  # PostgreSQL would refuse the configuration file


CONTEXT_EFFECTS = {
    "sighup": Effect.RELOAD,
    "superuser": Effect.RELOAD,
    "user": Effect.RELOAD,
    "backend": Effect.NEW_SESSIONS,
    "superuser-backend": Effect.NEW_SESSIONS,
    "postmaster": Effect.RESTART,
}

# Set by pgherd from the node's entry: name -> where to change it instead.
MANAGED = {
    "port": "the node's port: in its nodes: entry",
    "unix_socket_directories": "the node's home: in its nodes: entry (<home>/run)",
    "primary_conninfo": "pgherd points each standby at its upstream",
    "primary_slot_name": "pgherd names each standby's slot after the node",
    "data_directory": "the node's data_dir: in its nodes: entry",
    "config_file": "pgherd writes pgherd.conf, included by postgresql.conf",
    "hba_file": "pgherd keeps its rules in a marked block of pg_hba.conf",
    "ident_file": "pgherd keeps its map in a marked block of pg_ident.conf",
}


def managed_problem(name: str) -> str | None:
    """Why ``settings:`` may not set ``name`` (None: it may)."""
    where = MANAGED.get(name.lower())
    if where is None:
        return None
    return f"settings: {name} is set by pgherd ({where})"


def effect(name: str, contexts: Mapping[str, str]) -> Effect:
    """What it takes for a new value of ``name`` to apply, by its context."""
    context = contexts.get(name.lower())
    if context is not None:
        return CONTEXT_EFFECTS.get(context, Effect.UNKNOWN)
    return Effect.EXTENSION if "." in name else Effect.UNKNOWN


@dataclass(frozen=True)
class SettingChange:
    name: str
    before: str | None  # None: not set by pgherd.yaml before
    after: str | None  # None: no longer set (PostgreSQL's own default or postgresql.conf)
    effect: Effect

    def sentence(self) -> str:
        was = "unset" if self.before is None else self.before
        now = "unset" if self.after is None else self.after
        return f"{self.name} {was} → {now} ({self.effect})"


def changes(
    before: Mapping[str, SettingValue],
    after: Mapping[str, SettingValue],
    contexts: Mapping[str, str],
) -> tuple[SettingChange, ...]:
    """Every setting added, changed or removed, in name order, with its effect."""
    found = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and text(old) == text(new):
            continue
        found.append(
            SettingChange(
                name,
                None if old is None else text(old),
                None if new is None else text(new),
                effect(name, contexts),
            )
        )
    return tuple(found)


def unknown(names: list[str], contexts: Mapping[str, str]) -> list[str]:
    """The names PostgreSQL would refuse (not its parameters, and not an extension's)."""
    return [n for n in names if effect(n, contexts) is Effect.UNKNOWN]


def text(value: SettingValue) -> str:
    """A value as postgresql.conf and pg_settings spell it (booleans as on/off)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def parse_describe_config(output: str) -> dict[str, str]:
    """``postgres --describe-config``: name -> context (tab-separated, one per line)."""
    contexts = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0]:
            contexts[fields[0].lower()] = fields[1]
    return contexts
