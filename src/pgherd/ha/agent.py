"""``pgherd agent run``: one per node; owns its PostgreSQL and serves the HTTP API."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from pgherd import config as config_mod
from pgherd.api.app import agent_app
from pgherd.api.credentials import GrantsFile, operator_only
from pgherd.api.serving import uvicorn_tls
from pgherd.archive import backup as backup_mod
from pgherd.archive import cleanup as archive_cleanup
from pgherd.archive import pusher as wal_pusher
from pgherd.archive import schedule as backup_schedule
from pgherd.archive.catalog import backup_to_json
from pgherd.clients.agent import AgentClient
from pgherd.clients.credential import Credential, TokenFile
from pgherd.config import ClusterConfig
from pgherd.dcs.open import open_store
from pgherd.dcs.store_events import StoreEventLog
from pgherd.errors import PgherdError, Refused
from pgherd.ha import facts as facts_mod
from pgherd.ha import handover, maintenance, peers, witness
from pgherd.ha import loop as ha_loop
from pgherd.ha import status as status_mod
from pgherd.ha.audit import AuditTrail
from pgherd.ha.bootstrap import Bootstrap
from pgherd.ha.checks import AgentChecks
from pgherd.ha.clock import SYSTEM, Clock
from pgherd.ha.history_store import HistoryStore, path_for
from pgherd.ha.metrics_source import NodeCollector
from pgherd.ha.operations import NodeOperations
from pgherd.ha.reload import Reloader
from pgherd.ha.sampler import Sampler
from pgherd.ha.slots import SlotKeeper
from pgherd.ha.supervisor import Supervisor
from pgherd.mesh.service import MeshService
from pgherd.mesh.workers import MeshWorkers
from pgherd.model.access import Grants
from pgherd.model.archive_api import BackupMade, PusherState
from pgherd.model.backup import BackupKind
from pgherd.model.doctor import NodeFacts
from pgherd.model.events import Event
from pgherd.model.status import Desired, NodeStatus, PgState
from pgherd.pg import process
from pgherd.pg.local_node import LocalNode
from pgherd.physical import events_store

log = logging.getLogger("pgherd.agent")

WATCH_INTERVAL = 0.5


class Agent:
    def __init__(
        self,
        local: LocalNode,
        token: Credential,
        config: ClusterConfig | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.local = local
        self.token = token
        automatic = config is not None and config.automatic
        # Under automatic failover the HA loop decides how a dead server comes back.
        self.supervisor = Supervisor(local.instance, auto_restart=not automatic, clock=clock)
        self._stop = threading.Event()
        self._action_lock = threading.Lock()
        self.operations = NodeOperations(local, self.supervisor, self._action_lock)
        self.mesh: MeshService | None = None  # set by run(): the mesh apply workers
        # set by run() when the cluster archives: its status() feeds the metrics
        self.pusher: wal_pusher.Pusher | None = None
        self.ha = None
        self.bootstrap = None
        if automatic:
            assert config is not None
            self.ha = ha_loop.build(config, local, self.supervisor, self._action_lock, token, clock)
            self.supervisor.on_exit = self.ha.wake
            # Until its data are the store's cluster, the node bootstraps; then the HA loop.
            self.bootstrap = Bootstrap(
                config,
                local,
                self.supervisor,
                self._action_lock,
                self.ha.executor.store,
                on_sentence=self.ha.say,
            )
            self.operations.on_promoted = self.ha.wake

    # ---- AgentPort ---------------------------------------------------------------------

    def status(self) -> NodeStatus:
        sup = self.supervisor
        status = status_mod.collect(
            self.local, sup.state(), sup.desired, sup.pid, sup.restarts, sup.last_error
        )
        if self.mesh is not None:
            status = status.model_copy(update={"mesh_workers": self.mesh.worker_rows()})
        if self.bootstrap is not None and not self.bootstrap.done:
            status = status.model_copy(update={"bootstrap": self.bootstrap.sentence})
        return status

    def facts(self) -> NodeFacts:
        return facts_mod.gather(self.local, self.supervisor.state() is PgState.RUNNING)

    def start_postgres(self) -> None:
        if self.ha is not None:
            self._start_through_ha()
            return
        with self._action_lock:
            log.info("starting postgres (asked through the API)")
            self.supervisor.start()

    def _start_through_ha(self, timeout: float = 60) -> None:
        """Under automatic failover a start is the HA loop's to carry out: a primary must
        not come up without its lease (it rejoins the leader instead)."""
        assert self.ha is not None
        if self.ha.status().maintenance:
            with self._action_lock:
                maintenance.start_by_hand(self.local, self.supervisor, self.ha.status().leader)
            return
        log.info("starting postgres (asked through the API; the HA loop decides how)")
        self.supervisor.mark_down()
        self.ha.wake()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.supervisor.state() is PgState.RUNNING:
                return
            time.sleep(0.05)
        raise Refused(
            f"PostgreSQL did not start within {timeout:.0f} s: {self.ha.sentence}",
            f"see {self.local.node.agent_log}",
        )

    def stop_postgres(self, mode: str) -> None:
        with self._action_lock:
            log.info("stopping postgres, %s mode (asked through the API)", mode)
            self.supervisor.stop(mode)

    def restart_postgres(self) -> None:
        if self.ha is not None:
            with self._action_lock:
                log.info("restarting postgres (asked through the API)")
                self.supervisor.stop(restart=True)  # never "stopped on purpose" meanwhile
            self._start_through_ha()
            return
        with self._action_lock:
            log.info("restarting postgres (asked through the API)")
            self.supervisor.restart()

    def restart_with(self, action: Callable[[], None]) -> None:
        """Stop PostgreSQL, run ``action`` on its files (a standby's copies of the
        primary's logical slots: ha/slots.py), and start it again, the way an API restart
        goes (through the HA loop under automatic failover)."""
        if self.ha is not None:
            try:
                with self._action_lock:
                    log.info("restarting postgres to load copied slots")
                    self.supervisor.stop(restart=True)
                    action()
            finally:
                self._start_through_ha()  # started again even when the action failed
            return
        with self._action_lock:
            log.info("restarting postgres to load copied slots")
            self.supervisor.stop()
            try:
                action()
            finally:
                self.supervisor.start()

    # ---- the loop ----------------------------------------------------------------------

    def boot(self) -> None:
        """Adopt a running postmaster, or start one if the data directory holds a cluster."""
        self.local.prepare_home()
        if self.supervisor.adopt():
            return
        if not self.local.instance.exists:
            if self.ha is None:  # under automatic failover the bootstrap says what it does
                log.warning(
                    "%s holds no cluster yet; waiting (clone it with pgherd standby clone)",
                    self.local.node.data_dir,
                )
            return
        if self.ha is not None:
            # The first HA cycle decides: restart in place, lead, follow or rejoin.
            self.supervisor.mark_down()
            return
        if not self.local.instance.standby_configured and self._second_primary():
            return
        try:
            self.supervisor.start()
        except PgherdError as exc:
            log.exception("could not start postgres: %s", exc.one_line())

    def _second_primary(self) -> bool:
        """Stay stopped when this node is configured as a primary while another node of
        the cluster runs as the primary (a failover happened while it was away)."""
        other = peers.other_primary(self.local)
        if other is None:
            return False
        self.supervisor.desired = Desired.STOPPED
        self.supervisor.last_error = (
            f"not started: {other.name} is the primary now (timeline {other.timeline}); "
            f"bring this node back with pgherd node rejoin {self.local.node.name}"
        )
        log.error("%s", self.supervisor.last_error)
        return True

    def watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                sentence = self.supervisor.tick()
            except Exception:
                log.exception("watch step failed")
                continue
            if sentence:
                log.warning("%s", sentence)
                if self.ha is not None:
                    self.ha.wake()
            if self.mesh is not None:
                try:
                    running = self.supervisor.state() is PgState.RUNNING
                    for said in self.mesh.workers.tick(running):
                        log.info("%s", said)
                except Exception:
                    log.exception("mesh worker step failed")

    def shutdown(self) -> str:
        """The agent stops; PostgreSQL runs on for the next agent (ha/handover.py)."""
        self._stop.set()
        if self.bootstrap is not None:
            self.bootstrap.stop()
        if self.mesh is not None:
            self.mesh.workers.stop_all()
        ha = self.local.config.ha
        grace = ha.agent_restart_grace if ha is not None else 0.0
        with self._action_lock:
            return handover.hand_over(self.ha, self.supervisor, grace)


def credentials(config: ClusterConfig, node_name: str) -> tuple[Credential, GrantsFile]:
    """This node's own credential for its calls to other agents (its node token, read
    again after a rotation), and the grants its API accepts (the grants file, read again
    when it changes). A cluster set up before node tokens has one token for both."""
    shared = config_mod.read_token(config) if not config.grants_file.exists() else None
    mine = config.node_token_file(node_name)
    own: Credential = TokenFile(mine) if mine.exists() else config_mod.read_token(config)
    fallback = operator_only(shared) if shared else Grants(())
    return own, GrantsFile(config.grants_file, fallback)


class AgentArchive:
    """The archive port of this agent's API: backups of its own node, its pusher."""

    def __init__(self, config: ClusterConfig, node: str, agent: Agent) -> None:
        self.config = config
        self.node = node
        self.agent = agent

    def take_backup(self, kind: str, repository: str | None, checksum: bool = False) -> BackupMade:
        log.info("taking a %s backup (asked through the API)", kind)
        made = backup_mod.create(
            self.config,
            self.node,
            BackupKind(kind),
            False,
            False,
            repository,
            lambda _done, _total: None,
            lambda text: log.info("backup: %s", text),
            checksum,
        )
        return BackupMade.model_validate(backup_to_json(made))

    def pusher_status(self) -> PusherState:
        pusher = self.agent.pusher
        if pusher is None:
            return PusherState(running=False)
        status = pusher.status()
        return PusherState(**asdict(status), over_limit=status.over_limit)


def _event_recorder(config: ClusterConfig, local: LocalNode) -> Callable[[Event], object]:
    """Where this agent records cluster events (the scheduled backups it takes): the
    coordination store if the cluster has one, else its own primary's events table."""
    if config.ha is not None:
        store_log = StoreEventLog(open_store(config, timeout=5.0))
        return store_log.save
    return lambda event: events_store.save(local, event)


def _rewrite_at_boot(reloader: Reloader, supervisor: Supervisor) -> None:
    """pgherd.conf and the access rules as pgherd.yaml wants them now (a setting changed
    while the agent was down); a running server, adopted, reloads them."""
    rewritten = reloader.rewrite_at_boot()
    if supervisor.pid is not None:
        reloader.reload_adopted(rewritten)


class _AgentServer(uvicorn.Server):
    """uvicorn, telling the agent the moment SIGTERM comes: its graceful shutdown (open
    requests, then the lifespan's hand-over) takes a while, and the HA loop, still
    running meanwhile, must not start PostgreSQL in it."""

    def __init__(self, on_signal: Callable[[], None], config: uvicorn.Config) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_signal()
        super().handle_exit(sig, frame)


def run(config_path: Path, node_name: str, clock: Clock = SYSTEM) -> None:
    """The agent of ``node_name``, until SIGTERM. ``clock``: the time it reads (tests give
    an agent a clock of its own: ha/clock.py)."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {node_name} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per etcd request
    config = config_mod.load(config_path)
    if config.witness(node_name) is not None:
        witness.run(config, node_name)
        return
    local = LocalNode.open(config, node_name)
    tls = uvicorn_tls(config, node_name)  # before anything starts: missing files refuse
    if config.tls_on and config.tls_settings.client_certs:
        AgentClient.client_cert = config.cert_files(node_name)
    own, grants = credentials(config, node_name)
    AgentClient.default_token = own  # reads of other agents (api.auth_reads) name this node
    agent = Agent(local, own, config, clock)
    agent.mesh = MeshService(local, MeshWorkers(local, config_path))
    reloader = Reloader(config_path, local, agent.supervisor, agent._action_lock, agent.ha, config)
    reloader.install_signal_handler()  # SIGHUP re-reads pgherd.yaml, never stops anything
    process.set_process_name(process.AGENT_PROCESS_NAME)
    pid_file = local.node.agent_pid_file
    local.prepare_home()
    local.user.write_file(pid_file, f"{os.getpid()}\n", mode=0o644)
    log.info(
        "agent for %s: PostgreSQL %s in %s as OS user %s; API on %s",
        node_name,
        local.pgbin.version,
        local.node.data_dir,
        local.user.name,
        local.node.api_url,
    )
    if agent.bootstrap is None:
        _rewrite_at_boot(reloader, agent.supervisor)  # settings changed while it was down
    else:
        # Only once the data directory holds the store's cluster: another cluster's files
        # (refused), or files being created, cloned or adopted, are not pgherd's to rewrite.
        agent.bootstrap.on_member = lambda: _rewrite_at_boot(reloader, agent.supervisor)
    agent.boot()
    threading.Thread(target=reloader.run, args=(agent._stop,), name="reload", daemon=True).start()
    watcher = threading.Thread(target=agent.watch, name="watch", daemon=True)
    watcher.start()
    if agent.ha is not None and agent.bootstrap is not None:
        # Until its data are the store's cluster the node bootstraps, then the HA loop runs.
        threading.Thread(
            target=agent.bootstrap.run, args=(agent.ha.run,), name="ha", daemon=True
        ).start()
    if config.archive is not None:
        agent.pusher = wal_pusher.start(
            local.node.data_dir,
            local.spool,
            config.archive.specs(),
            config.archive.push_workers,
            config.archive.queue_max,
        )
    threading.Thread(
        target=archive_cleanup.run_on_schedule,
        args=(config, node_name, threading.Event()),
        name="archive-cleanup",
        daemon=True,
    ).start()

    trail = AuditTrail(config, node_name, own)
    auditing = threading.Event()
    threading.Thread(target=trail.run, args=(auditing,), name="audit", daemon=True).start()
    if config.backup.schedule:
        threading.Thread(
            target=backup_schedule.run_on_schedule,
            args=(config, node_name, threading.Event(), _event_recorder(config, local)),
            name="backup-schedule",
            daemon=True,
        ).start()

    keeper = SlotKeeper(
        local,
        lambda: agent.supervisor.state() is PgState.RUNNING,
        agent.restart_with,
        lambda: agent.ha is not None and agent.ha.status().maintenance,
        store=agent.ha.executor.store if agent.ha is not None else None,
    )
    threading.Thread(target=keeper.run, args=(agent._stop,), name="slots", daemon=True).start()

    history = HistoryStore(path_for(local.node), node_name)
    sampler = Sampler(local, history, config.history, agent.supervisor.state)
    sampling = threading.Event()
    threading.Thread(target=sampler.run, args=(sampling,), name="history", daemon=True).start()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        sampling.set()
        auditing.set()
        # uvicorn re-raises SIGTERM once it has shut down, which ends the process before
        # a `finally` after server.run() could run: hand over here instead.
        log.info("agent stopping")
        said = agent.shutdown()
        if agent.pusher is not None:
            agent.pusher.stop()
        pid_file.unlink(missing_ok=True)
        log.info("agent stopped: %s", said)

    checks = AgentChecks(config, local, agent.status, agent.ha)
    archive_port = AgentArchive(config, node_name, agent)
    app = agent_app(
        agent,
        lifespan,
        agent.mesh,
        local,
        agent.operations,
        history,
        config.history.interval,
        reloader,
        checks,
        [
            NodeCollector(
                local,
                agent.status,
                agent.ha,
                archive_port.pusher_status,
                keeper.copies_ready,
                lambda: keeper.waiting,
            )
        ],
        archive_port,
        grants=grants,
        auth_reads=config.api.auth_reads,
        audit=trail,
        bind_peers=config.tls_on and config.tls_settings.client_certs,
    )
    server = _AgentServer(
        agent.supervisor.close,
        uvicorn.Config(
            app,
            host=local.node.api_host,
            port=local.node.api_port,
            log_level="warning",
            access_log=False,
            **tls,
        ),
    )
    server.run()
