"""Whether a node's PostgreSQL must reload for TLS: switched on or off in pgherd.yaml, or
its certificates rotated.

An operator turns ``tls`` on for a cluster that ran without it (or off), or renews the
certificates (``pgherd secrets rotate``/``init``), then reloads the agents (or restarts
them). The agent rewrites its files for the config in force (ha/reload.py: ``ssl`` and the
certificate settings in pgherd.conf, ``hostssl`` or ``host`` rules in pg_hba.conf's pgherd
block, ``sslmode`` in a standby's ``primary_conninfo``); this module decides what the
running server still needs:

- TLS on and a certificate file missing: refused, nothing changed (PostgreSQL would keep
  running without TLS, or refuse to start, on a file it cannot read);
- the server runs with ``ssl`` other than the config wants (the files were rewritten, or
  were rewritten while it was not told): a reload;
- a certificate file newer than the server's last configuration load: a reload, which
  makes PostgreSQL read its certificate, key and CA again (PostgreSQL 10 and later);
- a restart only for a setting whose context is ``postmaster`` (none of the ``ssl``
  settings since PostgreSQL 10, nor ``primary_conninfo`` since 13): said by name, from
  PostgreSQL's own contexts (model/settings.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pgherd.model import settings as settings_model
from pgherd.model.settings import SettingChange, SettingValue

# What pgherd.conf says about TLS: compared before and after a rewrite.
TLS_SETTINGS = (
    "ssl",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_ca_file",
    "ssl_min_protocol_version",
    "primary_conninfo",
)


@dataclass(frozen=True)
class RunningTls:
    """What the running server says (pg/reload_sql.py): ``SHOW ssl`` and when it last
    read its configuration files (``pg_conf_load_time()``, seconds since the epoch)."""

    ssl: bool
    loaded_at: float


@dataclass(frozen=True)
class TlsFiles:
    """The node's certificate, key and the cluster CA, as pgherd.yaml names them."""

    wanted: bool  # the config's TLS is on
    missing: tuple[str, ...] = ()  # paths
    changed_at: float | None = None  # when the newest of the three landed (inode change time)


@dataclass(frozen=True)
class TlsDecision:
    reload: bool = False
    refused: str | None = None
    reasons: tuple[str, ...] = ()  # sentences for the log and the report
    restart_for: tuple[str, ...] = ()  # settings whose new value waits for a restart


def decide(
    files: TlsFiles,
    running: RunningTls | None,
    before: Mapping[str, SettingValue],
    after: Mapping[str, SettingValue],
    contexts: Mapping[str, str],
) -> TlsDecision:
    """What the server needs for the TLS that pgherd.conf now says (``before``/``after``:
    pgherd.conf's settings around the rewrite; ``running``: None when PostgreSQL is not
    running, then the files apply at its next start)."""
    refused = missing(files)
    if refused is not None:
        return TlsDecision(refused=refused)
    changed = changes(before, after, contexts)
    restart_for = tuple(c.name for c in changed if c.effect is settings_model.Effect.RESTART)
    if running is None:
        return TlsDecision(restart_for=restart_for)
    reasons = [f"{c.name} changed ({c.effect})" for c in changed if c.name != "ssl"]
    if running.ssl != files.wanted:
        reasons.insert(
            0,
            f"ssl is {_on(running.ssl)} in the running server, {_on(files.wanted)} in pgherd.yaml",
        )
    elif files.wanted and files.changed_at is not None and files.changed_at > running.loaded_at:
        reasons.append(
            "the certificate files changed after PostgreSQL last read them (renewed or rotated)"
        )
    return TlsDecision(reload=bool(reasons), reasons=tuple(reasons), restart_for=restart_for)


def missing(files: TlsFiles) -> str | None:
    """Why the node's files cannot serve TLS (None: they can, or TLS is off)."""
    if not (files.wanted and files.missing):
        return None
    verb = "is" if len(files.missing) == 1 else "are"
    return f"TLS is on but {', '.join(files.missing)} {verb} missing"


def changes(
    before: Mapping[str, SettingValue],
    after: Mapping[str, SettingValue],
    contexts: Mapping[str, str],
) -> tuple[SettingChange, ...]:
    """The TLS settings that differ, with what each takes to apply."""
    return settings_model.changes(
        {k: v for k, v in before.items() if k in TLS_SETTINGS},
        {k: v for k, v in after.items() if k in TLS_SETTINGS},
        contexts,
    )


def _on(value: bool) -> str:
    return "on" if value else "off"
