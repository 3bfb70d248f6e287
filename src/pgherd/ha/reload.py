"""Re-reading pgherd.yaml in a running agent: SIGHUP (``systemctl reload``, a habit of
``kill -HUP``) and ``POST /agent/reload`` (``pgherd agent reload``).

A reload never takes PostgreSQL down. model/reload.py decides what the agent may take
from the new file (settings, the other members, this node's nofailover and
replicate_from) and what needs an agent restart; this module carries it out, under the
agent's action lock:

1. the new file is read and validated; a file that does not parse, no longer names this
   node, or sets a parameter PostgreSQL does not know is refused whole (one line in the
   log and to the caller) and nothing changes;
2. every part of the agent that holds the node (operations, the HA loop, its peers) gets
   the new config at once (``LocalNode.reconfigure``);
3. pgherd.conf and the pgherd blocks of pg_hba.conf and pg_ident.conf are rewritten for
   the config in force (a standby keeps its upstream), and ``postgres -C`` reads them
   as a start would: if PostgreSQL would refuse them, the old files and config come back;
4. a running PostgreSQL reloads, and the report says which settings wait for a restart
   (``pending_restart``) and which an ``ALTER SYSTEM`` value overrides.

At boot the same files are rewritten before PostgreSQL starts (or, when a running one is
adopted, followed by a reload): a setting changed while the agent was down applies too.
uvicorn handles SIGINT and SIGTERM; SIGHUP is ours (installed in the main thread, before
uvicorn starts): it only sets an event that the reload thread waits on.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.errors import ConfigError, PgherdError, Refused
from pgherd.ha.loop import HaLoop
from pgherd.ha.supervisor import Supervisor
from pgherd.model import reload as reload_model
from pgherd.model import server_tls
from pgherd.model import settings as settings_model
from pgherd.model.reload import ReloadedSetting, ReloadPlan, ReloadReport
from pgherd.model.status import PgState
from pgherd.pg import binaries, conf, reload_sql, tlsfiles
from pgherd.pg.conf import Setting
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.agent")

LOCK_WAIT = 30.0  # seconds to wait for an operation on the node to finish
FILES = (conf.INCLUDE_FILE, "postgresql.conf", "pg_hba.conf", "pg_ident.conf")


@dataclass(frozen=True)
class Rewritten:
    settings: bool  # pgherd.conf (or its include line) changed
    access: bool  # the pgherd block of pg_hba.conf or pg_ident.conf changed
    # pgherd.conf's settings before and after the rewrite, for model/server_tls.py
    before: Mapping[str, Setting] = field(default_factory=dict)
    after: Mapping[str, Setting] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return self.settings or self.access


@dataclass(frozen=True)
class ServerReloaded:
    """What the running server said after the files were rewritten."""

    said: str = ""  # "reloaded", "not running: …"
    pending_restart: tuple[str, ...] = ()
    overridden: Mapping[str, str] = field(default_factory=dict)
    tls_reasons: tuple[str, ...] = ()  # why it reloaded for TLS (model/server_tls.py)


class Reloader:
    def __init__(
        self,
        path: Path,
        local: LocalNode,
        supervisor: Supervisor,
        lock: threading.Lock,
        ha: HaLoop | None,
        config: ClusterConfig,
    ) -> None:
        self.path = path
        # The config in force, validated (LocalNode holds its pydantic-free form).
        self.config = config
        self.local = local
        self.supervisor = supervisor
        self.lock = lock
        self.ha = ha
        self._serial = threading.Lock()  # one reload at a time
        self._wanted = threading.Event()

    # ---- SIGHUP ------------------------------------------------------------------------

    def install_signal_handler(self) -> None:
        """SIGHUP asks for a reload (main thread only, as Python's signal module wants)."""

        def asked(_signum: int, _frame: FrameType | None) -> None:
            self._wanted.set()

        signal.signal(signal.SIGHUP, asked)

    def run(self, stop: threading.Event) -> None:
        """The reload thread: one reload per SIGHUP (several at once: one)."""
        while not stop.is_set():
            if not self._wanted.wait(1.0):
                continue
            self._wanted.clear()
            log.info("SIGHUP: reading %s again", self.path)
            try:
                self.reload()
            except PgherdError as exc:
                log.error("reload refused: %s", exc.one_line())  # noqa: TRY400 - one line
            except Exception:
                log.exception("reload failed")

    # ---- a reload ----------------------------------------------------------------------

    def reload(self) -> ReloadReport:
        """Read pgherd.yaml again and apply what may change now; raises Refused (nothing
        changed) when the file cannot be used."""
        with self._serial:
            old = self.config
            try:
                new = config_mod.load(self.path)
            except ConfigError as exc:
                raise Refused(
                    f"reload refused: {exc.message}",
                    "fix pgherd.yaml; the agent keeps the configuration it runs with",
                ) from None
            plan = reload_model.plan(
                old.model_dump(mode="json"), new.model_dump(mode="json"), self.local.node.name
            )
            if plan.refused is not None:
                raise Refused(f"reload refused: {plan.refused}", "fix pgherd.yaml")
            try:
                effective = config_mod.parse(plan.effective, source=str(self.path))
            except ConfigError as exc:
                raise Refused(f"reload refused: {exc.message}", "fix pgherd.yaml") from None
            settings = self._setting_changes(plan)
            if not self.lock.acquire(timeout=LOCK_WAIT):
                raise Refused(
                    f"reload refused: an operation on this node has held it for {LOCK_WAIT:.0f} s",
                    "retry when it has finished",
                )
            try:
                report = self._apply(old, effective, plan, settings, config_mod.fingerprint(new))
            finally:
                self.lock.release()
        for line in report.lines():
            log.info("reload: %s", line)
        return report

    def _setting_changes(self, plan: ReloadPlan) -> tuple[settings_model.SettingChange, ...]:
        contexts = binaries.parameter_contexts(self.local.pgbin.bindir)
        changes = settings_model.changes(plan.settings_before, plan.settings_after, contexts)
        unknown = [
            c.name
            for c in changes
            if c.after is not None and c.effect is settings_model.Effect.UNKNOWN
        ]
        if unknown:
            raise Refused(
                f"reload refused: settings: {', '.join(unknown)}: not a parameter of "
                f"PostgreSQL {self.local.pgbin.version} (it would refuse its configuration)",
                "fix the name in pgherd.yaml; nothing was changed",
            )
        return changes

    def _apply(
        self,
        old: ClusterConfig,
        effective: ClusterConfig,
        plan: ReloadPlan,
        settings: tuple[settings_model.SettingChange, ...],
        file_fingerprint: str,
    ) -> ReloadReport:
        self._reconfigure(effective)
        try:
            rewritten = self.rewrite_files()
        except PgherdError:
            self._reconfigure(old)
            raise
        server = self._reload_postgres(rewritten)
        return ReloadReport(
            node=self.local.node.name,
            unchanged=plan.unchanged and not rewritten.any and not server.tls_reasons,
            fingerprint_before=config_mod.fingerprint(old),
            fingerprint=config_mod.fingerprint(effective),
            file_fingerprint=file_fingerprint,
            settings=tuple(
                ReloadedSetting(name=s.name, before=s.before, after=s.after, effect=s.effect)
                for s in (*settings, *self._tls_changes(rewritten))
            ),
            postgres=server.said,
            pending_restart=server.pending_restart,
            overridden=dict(server.overridden),
            access_rules=rewritten.access,
            tls=plan.tls,
            tls_reload=server.tls_reasons,
            members=plan.members,
            this_node=plan.this_node,
            needs_agent_restart=plan.needs_restart,
            ignored=plan.ignored,
        )

    def _reconfigure(self, config: ClusterConfig) -> None:
        self.config = config
        self.local.reconfigure(config)
        if self.ha is not None:
            self.ha.reconfigure(config)

    # ---- the files and the server ------------------------------------------------------

    def rewrite_files(self) -> Rewritten:
        """pgherd.conf and the pgherd blocks of pg_hba.conf and pg_ident.conf, for the
        config in force; checked with ``postgres -C``, put back as they were if PostgreSQL
        would refuse them. Nothing for a data directory pgherd does not manage yet (no
        pgherd.conf: one being created, cloned or adopted)."""
        instance = self.local.instance
        data = instance.data_dir
        if not instance.exists or not (data / conf.INCLUDE_FILE).exists():
            return Rewritten(False, False)
        refused = server_tls.missing(tlsfiles.node_files(self.local.config, self.local.node.name))
        if refused is not None:
            raise Refused(
                refused,
                "make them with `pgherd secrets init` and copy them to this host "
                "(docs/deploy.md), or set tls: off; nothing was changed",
            )
        saved = {name: _read(data / name) for name in FILES}
        before = conf.read_include(data)
        after = self.local.settings_in_force()
        instance.write_settings(self.local.node.name, after)
        instance.write_access(*self.local.access_rules())
        changed = {name for name in FILES if _read(data / name) != saved[name]}
        settings = bool(changed & {conf.INCLUDE_FILE, "postgresql.conf"})
        if settings:
            try:
                instance.check_config()
            except Refused:
                for name in changed:
                    self._put_back(data / name, saved[name])
                raise
        return Rewritten(settings, bool(changed & {"pg_hba.conf", "pg_ident.conf"}), before, after)

    def _put_back(self, path: Path, text: str | None) -> None:
        if text is None:
            path.unlink(missing_ok=True)
        else:
            self.local.user.write_file(path, text)

    def _tls_changes(self, rewritten: Rewritten) -> tuple[settings_model.SettingChange, ...]:
        """pgherd.conf's TLS settings that the rewrite changed (tls switched on or off,
        its dir moved, a standby's primary_conninfo), with what each takes to apply."""
        if not rewritten.settings:
            return ()
        contexts = binaries.parameter_contexts(self.local.pgbin.bindir)
        return server_tls.changes(rewritten.before, rewritten.after, contexts)

    def _reload_postgres(self, rewritten: Rewritten) -> ServerReloaded:
        """Reload a running server when its files changed, or when its TLS is not what the
        config wants (switched, or certificates renewed since it read them:
        model/server_tls.py); what it says afterwards."""
        if self.supervisor.state() is not PgState.RUNNING:
            said = "not running: the files apply at its next start" if rewritten.any else ""
            return ServerReloaded(said)
        files = tlsfiles.node_files(self.local.config, self.local.node.name)
        contexts = binaries.parameter_contexts(self.local.pgbin.bindir)
        try:
            with self.local.instance.connect() as conn:
                tls = server_tls.decide(
                    files,
                    reload_sql.running_tls(conn),
                    rewritten.before,
                    rewritten.after,
                    contexts,
                )
                said = ""
                if rewritten.any or tls.reload:
                    confirmed = reload_sql.reload_and_wait(conn)
                    said = "reloaded" if confirmed else "asked to reload (not confirmed in 5 s)"
                pending = reload_sql.pending_restart(conn)
                overridden = reload_sql.overridden(conn, list(self.local.config.settings))
        except PgherdError as exc:
            return ServerReloaded(f"not reloaded: {exc.message}")
        return ServerReloaded(said, pending, overridden, tls.reasons)

    # ---- at boot -----------------------------------------------------------------------

    def rewrite_at_boot(self) -> Rewritten:
        """Before the agent starts or adopts PostgreSQL: the files as the config wants them
        (a setting, or the TLS, changed while the agent was down)."""
        try:
            rewritten = self.rewrite_files()
        except PgherdError as exc:
            log.error(  # noqa: TRY400 - one line, the error is the operator's to fix
                "pgherd.yaml's settings were not written: %s; PostgreSQL keeps its previous "
                "configuration",
                exc.one_line(),
            )
            return Rewritten(False, False)
        if rewritten.any:
            log.info("rewrote pgherd.conf and the access rules for the configuration in force")
        for change in self._tls_changes(rewritten):
            log.info("TLS: %s", change.sentence())
        return rewritten

    def reload_adopted(self, rewritten: Rewritten) -> None:
        """After boot: a running server adopted reloads when its files were rewritten, or
        when its TLS is not the config's (certificates renewed while the agent was down)."""
        server = self._reload_postgres(rewritten)
        for reason in server.tls_reasons:
            log.info("TLS: %s", reason)
        if server.said:
            log.info("PostgreSQL %s", server.said)
        if server.pending_restart:
            log.warning("pending restart: %s", ", ".join(server.pending_restart))
        for name, where in server.overridden.items():
            log.warning("%s is set in %s, which overrides pgherd.yaml", name, where)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
