"""Adopting a PostgreSQL that pgherd did not make, on this node.

:func:`inspect` reads what is there and what adoption would change, without changing
anything (``pgherd node adopt NODE --dry-run``). The agent then carries it out (ha/adopt.py
owns the order, and the restarts: the server must become its child): the operator's
settings are recorded (``pgherd.adopted``), pgherd's include file and access blocks are
written, the server reloads, and over its own Unix socket — the one it runs with, which
may not be pgherd's yet — pgherd sets what needs ALTER SYSTEM, creates the replication
role and gives the superuser the passfile's password if it has none (pg_rewind connects
with it after a failover).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from pgherd.errors import PgherdError, QueryFailed, Refused
from pgherd.model import adopt as model
from pgherd.model.adopt import Change, Current, Facts, Original, Via
from pgherd.pg import adopted, binaries, conf, hba, passfile, process, roles
from pgherd.pg.controldata import read_system_identifier
from pgherd.pg.instance import Instance
from pgherd.pg.local_node import LocalNode

CONNECT_WAIT = 10.0  # seconds for a reloaded server to accept pgherd's peer rule


@dataclass(frozen=True)
class Adoption:
    """What adopting a node's data directory would change (nothing is changed yet)."""

    node: str
    data_dir: Path
    system_identifier: str | None
    major: int | None
    running_pid: int | None
    server_port: int | None
    socket_dir: str | None  # the running server's own
    pgherd_made: bool  # pgherd's include file is in postgresql.conf already
    problems: tuple[str, ...]
    changes: tuple[Change, ...]
    hba_block: tuple[str, ...]
    hba_kept: int  # the operator's rules, kept below pgherd's block
    ident_block: tuple[str, ...]
    replication_user: str
    superuser: str
    original: Original

    @property
    def restart(self) -> tuple[str, ...]:
        """The changed settings that need a restart (of a running server)."""
        return model.needs_restart(self.changes) if self.running_pid is not None else ()

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "data_dir": str(self.data_dir),
            "system_identifier": self.system_identifier,
            "postgresql": self.major,
            "running": self.running_pid is not None,
            "pid": self.running_pid,
            "made_by_pgherd": self.pgherd_made,
            "problems": list(self.problems),
            "settings": [
                {
                    "name": c.name,
                    "from": c.old,
                    "to": c.new,
                    "via": str(c.via),
                    "needs_restart": c.restart,
                }
                for c in self.changes
            ],
            "restart": list(self.restart),
            "pg_hba_block": list(self.hba_block),
            "pg_hba_rules_kept": self.hba_kept,
            "pg_ident_block": list(self.ident_block),
            "replication_role": self.replication_user,
            "superuser": self.superuser,
        }


def inspect(local: LocalNode) -> Adoption:
    """Read the data directory, its configuration and the server; decide what changes."""
    data_dir = local.node.data_dir
    if not local.instance.exists:
        raise Refused(
            f"{data_dir} holds no PostgreSQL cluster on this host",
            f"run this on {local.node.name}'s host, where its data directory is",
        )
    instance = local.instance
    pm = instance.postmaster()
    major = _major(data_dir)
    compatible = major == local.pgbin.major
    facts = Facts(
        node=local.node.name,
        major=major,
        programs_major=local.pgbin.major,
        node_port=local.node.port,
        server_port=None,
        config_in_data_dir=False,
        standby=instance.standby_configured,
        data_checksums=False,
    )
    current: dict[str, Current] = {}
    original = adopted.read(data_dir)
    if compatible:
        facts = dataclasses.replace(
            facts,
            config_in_data_dir=_config_in(instance),
            data_checksums=instance.controldata().data_checksums,
        )
        current = _current(local, instance, original)
        port = current.get("port")
        server_port = pm.port if pm is not None else _port(port.value if port else None)
        facts = dataclasses.replace(facts, server_port=server_port)
    if original is None:
        original = Original(
            by=local.node.name,
            at=time.time(),
            data_checksums=facts.data_checksums,
            values={name: current[name].value for name in model.WATCHED if name in current},
        )
    problems = model.problems(facts)
    wanted = local.settings(None, original) if compatible else {}
    changes = model.plan(current, wanted) if not problems else ()
    rules, ident = local.access_rules(only_own=True)
    return Adoption(
        node=local.node.name,
        data_dir=data_dir,
        system_identifier=read_system_identifier(data_dir),
        major=major,
        running_pid=pm.pid if pm is not None else None,
        server_port=facts.server_port,
        socket_dir=pm.socket_dir if pm is not None else None,
        pgherd_made=conf.has_include(_text(data_dir / "postgresql.conf")),
        problems=problems,
        changes=changes,
        hba_block=tuple(rule.line() for rule in rules),
        hba_kept=_rules_outside_block(_text(data_dir / "pg_hba.conf")),
        ident_block=tuple(ident),
        replication_user=local.config.replication_user,
        superuser=local.config.superuser,
        original=original,
    )


def _major(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "PG_VERSION").read_text().strip())
    except (OSError, ValueError):
        return None


def _port(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _config_in(instance: Instance) -> bool:
    """postgresql.conf, pg_hba.conf and pg_ident.conf are the data directory's own."""
    data_dir = instance.data_dir
    if not (data_dir / "postgresql.conf").is_file():
        return False
    for name, default in (("hba_file", "pg_hba.conf"), ("ident_file", "pg_ident.conf")):
        value = instance.config_value(name)
        if value is None or Path(value).resolve() != (data_dir / default).resolve():
            return False
    return True


def _current(local: LocalNode, instance: Instance, original: Original | None) -> dict[str, Current]:
    """The settings adoption looks at, as the configuration files give them."""
    contexts = binaries.parameter_contexts(local.pgbin.bindir)
    in_auto = conf.read_auto_conf(instance.data_dir)
    names = list(model.WATCHED)
    wanted = local.settings(None, original or _placeholder(local))
    names += [n for n in wanted if n not in names]
    found = {}
    for name in names:
        value = instance.config_value(name)
        if value is None:
            continue
        found[name] = Current(
            value=model.from_config(name, value),
            in_auto_conf=name in in_auto,
            restart=contexts.get(name) == "postmaster",
        )
    return found


def _placeholder(local: LocalNode) -> Original:
    """Enough of an Original to list the names pgherd would set (values unused)."""
    return Original(by=local.node.name, at=0.0, data_checksums=False, values={})


def _rules_outside_block(text: str) -> int:
    kept = hba.with_block(text, []).split(hba.END, 1)[-1]
    return sum(1 for line in kept.splitlines() if line.split("#", 1)[0].strip())


# ---- the steps (the agent runs them, in the order ha/adopt.py gives) -----------------------


def write_files(local: LocalNode, adoption: Adoption) -> None:
    """Record the operator's values (once: a resumed adoption keeps the first record), then
    pgherd's include file and access blocks; the operator's lines stay below pgherd's."""
    if adopted.read(local.node.data_dir) is None:
        adopted.write(local.node.data_dir, adoption.original, local.user)
    local.write_config(upstream=None)


def reload(pid: int) -> None:
    """SIGHUP: the postmaster re-reads its configuration and pg_hba.conf."""
    process.signal_pid(pid, signal.SIGHUP)


def running_instance(local: LocalNode, adoption: Adoption) -> Instance:
    """The running server as it is: its own socket directory and port."""
    if adoption.socket_dir is None or adoption.server_port is None:
        raise Refused(
            f"the server in {local.node.data_dir} has no Unix socket",
            "set unix_socket_directories in its postgresql.conf and restart it, then adopt",
        )
    return dataclasses.replace(
        local.instance, socket_dir=Path(adoption.socket_dir), port=adoption.server_port
    )


def apply_sql(local: LocalNode, instance: Instance, adoption: Adoption) -> list[str]:
    """ALTER SYSTEM where the operator set a value that way, then a reload; the
    replication role; the superuser's password if it has none. Returns sentences for the
    log."""
    said = []
    with _connect(instance) as conn:
        for change in adoption.changes:
            name = sql.Identifier(change.name)
            if change.via is Via.ALTER_SYSTEM:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(name, sql.Literal(change.new))
                )
            elif change.via is Via.RESET:
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(name))
        conn.execute("SELECT pg_reload_conf()")
        replicator = passfile.password_for(local.config.passfile, local.config.replication_user)
        roles.ensure_replication_role(conn, local.config.replication_user, replicator)
        said.append(f"replication role {local.config.replication_user!r}: REPLICATION LOGIN")
        said.append(_superuser_password(local, conn))
    return said


def pending_restart(instance: Instance, changes: tuple[Change, ...]) -> tuple[str, ...]:
    """What the reloaded server says waits for a restart. A reload reaches a session at its
    next statement, shortly after pg_reload_conf(): ask until the changes that need no
    restart show their new values."""
    reloadable = [c for c in changes if not c.restart]
    deadline = time.monotonic() + 5
    with instance.connect() as conn:
        while True:
            applied = all(model.same(c.name, _show(conn, c.name), c.new) for c in reloadable)
            if applied or time.monotonic() > deadline:
                rows = conn.execute(
                    "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name"
                ).fetchall()
                return tuple(str(r[0]) for r in rows)
            time.sleep(0.1)


def _show(conn: Any, name: str) -> str:
    row = conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()
    return str(row[0]) if row and row[0] is not None else ""


def _superuser_password(local: LocalNode, conn: Any) -> str:
    superuser = local.config.superuser
    try:
        password = passfile.password_for(local.config.passfile, superuser)
    except PgherdError:
        return f"the passfile has no password for {superuser!r}: pg_rewind cannot connect"
    found = roles.give_password_if_none(conn, superuser, password)
    return {
        "set": f"superuser {superuser!r} had no password: gave it the passfile's (pg_rewind "
        "connects with it)",
        "matches": f"superuser {superuser!r}: its password is the passfile's",
        "differs": f"superuser {superuser!r} has a password that is not the passfile's: put "
        "it in the passfile, or pg_rewind cannot connect after a failover",
        "missing": f"there is no role {superuser!r}: set superuser: in pgherd.yaml to the "
        "data's superuser",
    }[found]


@contextlib.contextmanager
def _connect(instance: Instance) -> Iterator[Any]:
    """A superuser connection to a server that was just reloaded: its new pg_hba.conf
    (with pgherd's peer rule) takes a moment."""
    deadline = time.monotonic() + CONNECT_WAIT
    while True:
        try:
            with instance.connect():
                break
        except QueryFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with instance.connect() as conn:
        yield conn
