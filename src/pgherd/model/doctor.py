"""``pgherd doctor``: what hand-made set-ups get wrong, each finding with its fix.

Agents report facts about their node (:class:`NodeFacts`); the checks here are pure
functions of those facts and of the nodes' statuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field

from pgherd.model.cluster import TLS_OFF, cluster_identity, running_primaries
from pgherd.model.status import Frozen, NodeStatus, PgState, Role

INACTIVE_SLOT_WARN_BYTES = 16 * 1024 * 1024  # a whole WAL segment held back
# Slots are checked in model/slots.py, which knows what each slot's name stands for.


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    node: str | None
    check: str
    message: str
    fix: str


class NodeFacts(Frozen):
    """What an agent reads from its node's files and settings for doctor."""

    name: str
    os_user: str
    data_dir: str
    data_dir_exists: bool
    data_dir_owner: str | None = None
    data_dir_mode: int | None = None
    foreign_owned_files: tuple[tuple[str, str], ...] = ()  # (file, owner)
    hba_trust_tcp: tuple[str, ...] = ()
    settings: dict[str, str] = Field(default_factory=dict)
    data_checksums: bool | None = None


def check_tls(tls_on: bool) -> list[Finding]:
    """A cluster that runs in plain text says so, as a warning: it is allowed, on purpose."""
    if tls_on:
        return []
    return [
        Finding(
            Severity.WARNING,
            None,
            "tls",
            TLS_OFF,
            "remove tls: off, create the certificates with pgherd secrets init, and restart "
            "the agents",
        )
    ]


def check_node(
    facts: NodeFacts, node_count: int, is_standby: bool, tls: bool = True
) -> list[Finding]:
    found: list[Finding] = []
    name = facts.name

    def add(severity: Severity, check: str, message: str, fix: str) -> None:
        found.append(Finding(severity, name, check, message, fix))

    if not facts.data_dir_exists:
        add(
            Severity.ERROR,
            "data-dir",
            f"data directory {facts.data_dir} does not exist",
            f"clone it: pgherd standby clone --upstream PRIMARY --node {name}",
        )
        return found
    if facts.data_dir_owner is not None and facts.data_dir_owner != facts.os_user:
        add(
            Severity.ERROR,
            "data-dir-owner",
            f"data directory {facts.data_dir} is owned by {facts.data_dir_owner}, "
            f"not {facts.os_user}",
            f"chown -R {facts.os_user}: {facts.data_dir}",
        )
    if facts.data_dir_mode is not None and facts.data_dir_mode not in (0o700, 0o750):
        add(
            Severity.ERROR,
            "data-dir-mode",
            f"data directory {facts.data_dir} has mode {facts.data_dir_mode:04o}; "
            "PostgreSQL refuses to start with group or world access beyond 0750",
            f"chmod 0700 {facts.data_dir}",
        )
    for path, owner in facts.foreign_owned_files:
        add(
            Severity.WARNING,
            "file-owner",
            f"{path} is owned by {owner}, not {facts.os_user}",
            f"chown {facts.os_user}: {path}",
        )
    for rule in facts.hba_trust_tcp:
        add(
            Severity.ERROR,
            "hba-trust",
            f"pg_hba.conf lets TCP clients in without a password: {rule!r}",
            "replace trust with scram-sha-256, then reload (SELECT pg_reload_conf())",
        )
    found.extend(_settings(facts, node_count, is_standby, tls))
    return found


def _settings(
    facts: NodeFacts, node_count: int, is_standby: bool, tls: bool = True
) -> list[Finding]:
    s = facts.settings
    found: list[Finding] = []

    def add(severity: Severity, check: str, message: str, fix: str) -> None:
        found.append(Finding(severity, facts.name, check, message, fix))

    if s.get("wal_level") not in (None, "replica", "logical"):
        add(
            Severity.ERROR,
            "wal-level",
            f"wal_level is {s['wal_level']}: standbys cannot stream",
            "set wal_level = logical and restart",
        )
    for name in ("max_wal_senders", "max_replication_slots"):
        value = s.get(name)
        if value is not None and value.isdigit() and int(value) < node_count:
            add(
                Severity.ERROR,
                name.replace("_", "-"),
                f"{name} is {value}, fewer than the cluster's {node_count} nodes",
                f"set {name} = {max(10, 2 * node_count)} and restart",
            )
    if is_standby and s.get("hot_standby") == "off":
        add(
            Severity.WARNING,
            "hot-standby",
            "hot_standby is off: this standby answers no queries",
            "set hot_standby = on and restart",
        )
    if s.get("wal_log_hints") == "off" and facts.data_checksums is False:
        add(
            Severity.WARNING,
            "rewind",
            "wal_log_hints is off and data checksums are off: pg_rewind cannot be used "
            "after a failover",
            "set wal_log_hints = on and restart",
        )
    if tls and s.get("ssl") == "off":
        add(
            Severity.ERROR,
            "tls",
            "the cluster's TLS is on but this PostgreSQL runs with ssl = off: standbys and "
            "clients that verify the server cannot connect",
            "restart the node's agent so it writes its settings, or pgherd node rejoin it",
        )
    if s.get("password_encryption") == "md5":
        add(
            Severity.WARNING,
            "password-encryption",
            "password_encryption is md5",
            "set password_encryption = scram-sha-256, then reset the roles' passwords",
        )
    return found


def check_cluster(statuses: Sequence[NodeStatus], independent: bool = False) -> list[Finding]:
    """``independent``: every node is its own cluster (``topology: independent``): no
    split-brain or system-identifier checks across nodes."""
    found: list[Finding] = []
    identity = None if independent else cluster_identity(statuses)
    primaries = running_primaries(statuses)
    primary = primaries[0].name if len(primaries) == 1 else "PRIMARY"
    if len(primaries) > 1 and not independent:
        found.append(
            Finding(
                Severity.ERROR,
                None,
                "split-brain",
                "more than one running primary: " + ", ".join(p.name for p in primaries),
                "stop all but one and re-clone or rejoin the others as standbys",
            )
        )
    for status in statuses:
        found.extend(_node_status(status, identity, primary))
    return found


def _node_status(status: NodeStatus, identity: str | None, primary: str) -> list[Finding]:
    found: list[Finding] = []
    name = status.name
    if status.state is PgState.UNREACHABLE:
        found.append(
            Finding(
                Severity.ERROR,
                name,
                "agent",
                f"the agent does not answer ({status.error})",
                f"start it: pgherd agent run --node {name}",
            )
        )
        return found
    if status.state is not PgState.RUNNING:
        found.append(
            Finding(
                Severity.ERROR,
                name,
                "running",
                f"PostgreSQL is {status.state}",
                f"start it: pgherd node start {name}",
            )
        )
    if identity and status.system_identifier and status.system_identifier != identity:
        found.append(
            Finding(
                Severity.ERROR,
                name,
                "system-identifier",
                f"system identifier {status.system_identifier} differs from the cluster's "
                f"{identity}: this data directory is not a copy of the cluster",
                f"re-clone it from the primary: pgherd standby clone --upstream {primary} "
                f"--node {name} --force",
            )
        )
    elif status.role is Role.STANDBY and status.state is PgState.RUNNING:
        receiver = status.wal_receiver
        if receiver is None or receiver.status != "streaming":
            found.append(
                Finding(
                    Severity.ERROR,
                    name,
                    "streaming",
                    "standby is not streaming from its upstream",
                    "see its postgresql.log for the wal receiver's error",
                )
            )
    return found


def ordered(found: list[Finding]) -> list[Finding]:
    """Errors first, then warnings; otherwise in the order they were found."""
    return sorted(found, key=lambda f: f.severity is not Severity.ERROR)
