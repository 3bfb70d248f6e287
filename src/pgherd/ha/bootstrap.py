"""Until its data directory holds the store's cluster, an agent bootstraps its node.

Each cycle (every ``loop_wait``) it reads its data directory, the store (its ``initialize``
key, leader and check-ins, once) and its peers' agents, lets
:func:`pgherd.model.bootstrap.decide` choose, and carries the plan out: initdb under a
claim in the store, adopt or register the data it holds, clone the leader, clean what an
interrupted initdb or clone left, or refuse another cluster's data. It logs the plan's
sentence when it changes and checks in to the store with it. Once the node is a member,
the same thread runs the HA loop (ha/loop.py).

Work that changes the data directory leaves a marker in the node's home first
(``bootstrap.json``) and removes it last: an agent killed half-way finds it at its next
start and cleans up before anything else (model/bootstrap.py explains which work is
cleaned and which resumed).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from pgherd.archive import setup
from pgherd.clients.agent import statuses
from pgherd.config import ClusterConfig
from pgherd.config_lite import LiteConfig
from pgherd.dcs.base import Snapshot, Store, StoreUnavailable
from pgherd.dcs.checkin import CHECKIN_TTL_FACTOR, CheckIn
from pgherd.errors import PgherdError, Refused
from pgherd.ha import adopt as ha_adopt
from pgherd.ha.supervisor import Supervisor
from pgherd.model.backoff import Backoff
from pgherd.model.bootstrap import (
    BootWorld,
    ClusterRecord,
    DataState,
    LocalData,
    Marker,
    Origin,
    PeerData,
    Plan,
    Step,
    Work,
    decide,
    parse_record,
)
from pgherd.model.status import Desired, NodeStatus, PgState, Role
from pgherd.pg import conf, process
from pgherd.pg.basebackup import Progress
from pgherd.pg.controldata import read_system_identifier
from pgherd.pg.local_node import LocalNode
from pgherd.physical import adopt, bootstrap, clone

log = logging.getLogger("pgherd.bootstrap")

MARKER_FILE = "bootstrap.json"
PROGRESS_EVERY = 10.0  # seconds between two progress lines of a clone


class ClaimLost(PgherdError):
    """Another agent took over this agent's claim while its initdb ran."""


class Bootstrap:
    def __init__(
        self,
        config: ClusterConfig,
        local: LocalNode,
        supervisor: Supervisor,
        lock: threading.Lock,
        store: Callable[[], Store],
        on_sentence: Callable[[str], None] = lambda _s: None,
    ) -> None:
        assert config.ha is not None
        self.local = local
        self.supervisor = supervisor
        self.lock = lock
        self.store = store
        self.on_sentence = on_sentence
        self.me = local.node.name
        self.ttl = config.ha.ttl
        self.interval = config.ha.loop_wait
        self.peer_timeout = min(config.ha.retry_timeout, 1.0)
        self.sentence = "bootstrap: starting"
        self._backoff = Backoff(limit=30.0)
        self._retry_at = 0.0
        self._stop = threading.Event()
        self._last_checkin = 0.0
        self.done = False  # the node is a member: the HA loop runs
        self.on_member: Callable[[], None] = lambda: None  # told once it is a member

    def config(self) -> LiteConfig:
        """The config in force (a reload gives the node a new one: ha/reload.py), in the
        form the node holds it (pgherd.config_lite)."""
        return self.local.config

    @property
    def marker_path(self) -> Path:
        return self.local.node.home_dir / MARKER_FILE

    # ---- the thread ------------------------------------------------------------------

    def run(self, then: Callable[[], None]) -> None:
        """Bootstrap cycles until the node is a member, then ``then`` (the HA loop)."""
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self.cycle():
                    break
            except Exception:
                log.exception("bootstrap cycle failed")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        # Even when stopped: the HA loop then returns at once, telling whoever waits for it.
        then()

    def stop(self) -> None:
        self._stop.set()

    # ---- one cycle -------------------------------------------------------------------

    def cycle(self) -> bool:
        """One observe → decide → act; True once the node is a member."""
        data = self.read_data()
        world, found = self.observe()
        plan = decide(self.me, data, world)
        self._say(plan)
        if plan.step is Step.MEMBER:
            self._become_member(data)
            self.done = True
            return True
        self._check_in(world.store_ok)
        if plan.step is Step.WAIT or time.monotonic() < self._retry_at:
            return False
        try:
            self._act(plan, data, world, found)
        except Exception as exc:
            self._failed(plan, exc)
        else:
            self._backoff.failures = 0
        return False

    def _failed(self, plan: Plan, exc: Exception) -> None:
        delay = self._backoff.next_delay(time.monotonic())
        self._retry_at = time.monotonic() + delay
        why = exc.one_line() if isinstance(exc, PgherdError) else f"{type(exc).__name__}: {exc}"
        log.error("bootstrap: %s failed: %s (next try in %.0f s)", plan.step, why, delay)
        if not isinstance(exc, PgherdError | OSError):
            log.error("bootstrap step %s failed", plan.step, exc_info=exc)

    def read_data(self) -> LocalData:
        data_dir = self.local.node.data_dir
        try:
            entries = any(data_dir.iterdir())
        except FileNotFoundError:
            entries = False
        cluster = (data_dir / "PG_VERSION").is_file() and (data_dir / "global/pg_control").is_file()
        state = DataState.CLUSTER if cluster else DataState.FILES if entries else DataState.EMPTY
        main_conf = data_dir / "postgresql.conf"
        return LocalData(
            path=data_dir,
            state=state,
            system_identifier=read_system_identifier(data_dir) if cluster else None,
            standby=cluster and self.local.instance.standby_configured,
            running=self.local.instance.postmaster() is not None,
            pgherd_made=cluster and main_conf.is_file() and conf.has_include(main_conf.read_text()),
            marker=self.read_marker(),
        )

    def observe(self) -> tuple[BootWorld, dict[str, NodeStatus]]:
        """The store read once, and the other data nodes' agents asked at once."""
        try:
            snapshot = self.store().snapshot()
        except StoreUnavailable:
            return BootWorld(store_ok=False, cluster=self.config().cluster, now=time.time()), {}
        others = [n for n in self.config().nodes if n.name != self.me]
        found = {s.name: s for s in statuses(others, timeout=self.peer_timeout)}
        checked_in = {m.name for m in snapshot.members}
        peers = tuple(_peer(found[n.name], n.name in checked_in) for n in others)
        return self._world(snapshot, peers), found

    def _world(self, snapshot: Snapshot, peers: tuple[PeerData, ...]) -> BootWorld:
        record = None
        problem = None
        if snapshot.initialize is not None:
            record = parse_record(snapshot.initialize.value)
            if record is None:
                problem = (
                    "the store's initialize key holds something pgherd did not write there: "
                    "not creating or joining anything (see docs/deploy.md)"
                )
        return BootWorld(
            store_ok=True,
            cluster=self.config().cluster,
            record=record,
            record_version=snapshot.initialize.version if snapshot.initialize else 0,
            record_problem=problem,
            leader=snapshot.leader.name if snapshot.leader else None,
            peers=peers,
            now=time.time(),
            stale_after=max(60.0, 2 * CHECKIN_TTL_FACTOR * self.ttl),
        )

    def _say(self, plan: Plan) -> None:
        sentence = f"bootstrap: {plan.reason}"
        if sentence != self.sentence:
            level = logging.WARNING if plan.step in (Step.REFUSE, Step.CLEAN) else logging.INFO
            log.log(level, "%s", sentence)
            self.sentence = sentence
            self.on_sentence(sentence)

    def _check_in(self, store_ok: bool, force: bool = False) -> None:
        """Check in with the bootstrap's sentence: others see this agent is alive (a claim
        of a live agent is never taken over) and what it does."""
        now = time.monotonic()
        if not store_ok or (not force and now - self._last_checkin < self.ttl / 2):
            return
        self._last_checkin = now
        checkin = CheckIn(
            name=self.me,
            api_url=self.local.node.api_url,
            state=self.supervisor.state(),
            role=Role.UNKNOWN,
            decision=self.sentence,
            at=time.time(),
        )
        with contextlib.suppress(StoreUnavailable):
            self.store().touch_member(
                self.me, checkin.model_dump_json(), self.ttl * CHECKIN_TTL_FACTOR
            )

    # ---- acting ----------------------------------------------------------------------

    def _act(
        self, plan: Plan, data: LocalData, world: BootWorld, found: dict[str, NodeStatus]
    ) -> None:
        step = plan.step
        if step is Step.REFUSE:
            self._refuse(plan)
        elif step is Step.CLEAN:
            self._clean()
        elif step is Step.INITDB:
            self._initdb(world)
        elif step is Step.REGISTER:
            assert data.system_identifier is not None
            self._claim(world, data.system_identifier)
        elif step is Step.ADOPT:
            self._adopt(world, data)
        elif step is Step.CLONE:
            assert plan.source is not None
            self._clone(found[plan.source])

    def _become_member(self, data: LocalData) -> None:
        if data.marker is not None:
            self.clear_marker()  # an initdb that published its cluster before it stopped
        if self.supervisor.last_error and self.supervisor.last_error.startswith("not starting"):
            self.supervisor.last_error = None
        self.on_member()
        log.info("bootstrap: done; the HA loop takes over")

    def _refuse(self, plan: Plan) -> None:
        """Never run another cluster's data as a member: stop a server running on it."""
        pm = self.local.instance.postmaster()
        if pm is not None:
            with self.lock:
                if self.supervisor.pid is None:
                    self.supervisor.adopt()
                self.supervisor.stop("fast")
            log.warning("bootstrap: stopped the PostgreSQL that ran on it (pid %d)", pm.pid)
        self.supervisor.desired = Desired.STOPPED
        self.supervisor.last_error = plan.reason

    def _clean(self) -> None:
        with self.lock:
            self._stop_writers()
            clone.empty_directory(self.local.node.data_dir)
            for leftover in self.local.node.home_dir.glob(".initdb-pw-*"):
                leftover.unlink(missing_ok=True)  # an interrupted initdb's password file
            self.supervisor.forget_cluster()
            self.clear_marker()
        log.warning("bootstrap: removed what the interrupted work left; deciding again")

    def _stop_writers(self) -> None:
        """Nothing may still write into the data directory while it is emptied: a server
        started on it, or what an agent that died left running (pg_basebackup's WAL
        streaming child outlives its parent, and holds the slot on the leader)."""
        pm = self.local.instance.postmaster()
        if pm is not None:
            process.signal_pid(pm.pid, signal.SIGQUIT)
            process.wait_gone(pm.pid, 30)
        programs = ("initdb", "pg_basebackup", "postgres")
        data_dir, uid = self.local.node.data_dir, self.local.user.uid
        for pid in process.working_in(data_dir, programs, uid):
            log.warning("bootstrap: stopping pid %d, left writing into %s", pid, data_dir)
            process.signal_pid(pid, signal.SIGTERM)
            if not process.wait_gone(pid, 10):
                process.signal_pid(pid, signal.SIGKILL)
                process.wait_gone(pid, 5)

    def _claim(self, world: BootWorld, sysid: str | None, origin: Origin = Origin.ADOPT) -> int:
        """Claim the cluster in the store (create-if-absent, or compare-and-set on the
        version this cycle read); returns the version of the claim written."""
        record = ClusterRecord(
            cluster=self.config().cluster,
            by=self.me,
            origin=origin,
            at=time.time(),
            system_identifier=sysid,
        )
        if not self.store().initialize(record.model_dump_json(), world.record_version):
            raise Refused("another agent wrote the cluster's record first", "deciding again")
        found = self.store().initialization()
        if found is None or parse_record(found.value) != record:
            raise Refused(
                "the cluster's record changed right after it was written", "deciding again"
            )
        log.info(
            "bootstrap: claimed the cluster %r in the store (%s%s)",
            self.config().cluster,
            origin,
            f", system identifier {sysid}" if sysid else "",
        )
        return found.version

    def _initdb(self, world: BootWorld) -> None:
        version = self._claim(world, None, Origin.INITDB)
        self.write_marker(Marker(work=Work.INITDB, at=time.time()))
        self.supervisor.desired = Desired.STOPPED  # nothing runs while the data are written
        store = self.store()
        try:
            with self.lock:
                self.supervisor.forget_cluster()
                bootstrap.init_primary(self.local, prefix=process.pdeathsig_prefix("TERM"))
                if self.config().archive is not None:
                    self._init_archive()
                self.supervisor.start()
                bootstrap.create_replication_role(self.local)
            sysid = read_system_identifier(self.local.node.data_dir)
            self._publish(store, sysid)
        except BaseException:
            self._discard_initdb(version)
            raise
        self.clear_marker()
        log.info(
            "bootstrap: initialised the cluster %r: system identifier %s (PostgreSQL %s)",
            self.config().cluster,
            sysid,
            self.local.pgbin.version,
        )

    def _publish(self, store: Store, sysid: str | None) -> None:
        """Write the new cluster's system identifier into my claim, if it is still mine."""
        claim = store.initialization()
        record = parse_record(claim.value) if claim is not None else None
        if claim is None or record is None or record.by != self.me or sysid is None:
            raise ClaimLost(
                "another agent took over the claim while initdb ran: discarding this initdb",
                "this node clones the cluster instead",
            )
        published = record.model_copy(update={"system_identifier": sysid})
        if not store.initialize(published.model_dump_json(), claim.version):
            raise ClaimLost(
                "the claim changed while its system identifier was written: discarding this initdb",
                "this node clones the cluster instead",
            )

    def _discard_initdb(self, version: int) -> None:
        with self.lock:
            with contextlib.suppress(PgherdError):
                self.supervisor.stop("immediate", timeout=10)
            clone.empty_directory(self.local.node.data_dir)
            self.supervisor.forget_cluster()
        with contextlib.suppress(StoreUnavailable):
            self.store().cancel_initialization(version)
        self.clear_marker()

    def _init_archive(self) -> None:
        control = self.local.instance.controldata()
        setup.init(
            self.config(),
            control.system_identifier,
            self.local.pgbin.major,
            control.wal_segment_size,
        )

    def _adopt(self, world: BootWorld, data: LocalData) -> None:
        adoption = adopt.inspect(self.local)
        if adoption.problems:
            raise Refused(
                f"cannot adopt {data.path}: {adoption.problems[0]}", "then restart the agent"
            )
        record = world.record
        if record is None or record.by != self.me or record.system_identifier is None:
            self._claim(world, data.system_identifier)
        if data.marker is None:
            self.write_marker(Marker(work=Work.ADOPT, at=time.time()))
        with self.lock:
            summary = ha_adopt.carry_out(self.local, self.supervisor, adoption)
        self.clear_marker()
        log.info("bootstrap: %s", summary)

    def _clone(self, leader: NodeStatus) -> None:
        self.write_marker(Marker(work=Work.CLONE, at=time.time(), source=leader.name))
        self.supervisor.desired = Desired.STOPPED  # nothing runs while the data are written
        reporter = _CloneProgress(leader.name, lambda s: self._progress(s))
        with self.lock:
            self.supervisor.forget_cluster()
            try:
                result = clone.clone(
                    self.config(),
                    self.me,
                    leader,
                    False,
                    reporter,
                    prefix=process.pdeathsig_prefix("TERM"),
                )
            except BaseException:
                # It failed (it was not interrupted): nothing of it is kept, nothing to
                # clean at the next cycle, which tries again after the backoff.
                self._stop_writers()
                clone.empty_directory(self.local.node.data_dir)
                self.clear_marker()
                raise
        self.clear_marker()
        log.info(
            "bootstrap: cloned %s from %s in %.1f s (slot %r on %s%s)",
            _mb(result.bytes_copied),
            result.upstream,
            result.seconds,
            result.slot,
            result.upstream,
            ", created" if result.slot_created else ", reused",
        )
        with self.lock:
            self.supervisor.start()

    def _progress(self, sentence: str) -> None:
        log.info("bootstrap: %s", sentence)
        self.sentence = f"bootstrap: {sentence}"
        self.on_sentence(self.sentence)
        self._check_in(True, force=True)

    # ---- the marker --------------------------------------------------------------------

    def read_marker(self) -> Marker | None:
        try:
            text = self.marker_path.read_text()
        except FileNotFoundError:
            return None
        try:
            return Marker.model_validate_json(text)
        except ValidationError:
            # Written atomically, so this is not ours half-written: treat it as a clone's,
            # whose leftovers are always removed (never adopted data: those have no marker
            # of this kind, and a cluster of the store's is cloned again).
            log.warning(
                "bootstrap: %s is unreadable; treating it as an interrupted clone", self.marker_path
            )
            return Marker(work=Work.CLONE, at=0.0)

    def write_marker(self, marker: Marker) -> None:
        self.local.prepare_home()
        self.local.user.write_file(self.marker_path, marker.model_dump_json() + "\n")

    def clear_marker(self) -> None:
        self.marker_path.unlink(missing_ok=True)


class _CloneProgress:
    """pg_basebackup's progress as a log line every PROGRESS_EVERY seconds."""

    def __init__(self, source: str, say: Callable[[str], None]) -> None:
        self.source = source
        self.say = say
        self.started = time.monotonic()
        self.last = 0.0
        self.finished = False

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        done = progress.done_bytes >= progress.total_bytes
        if self.finished or (now - self.last < PROGRESS_EVERY and not done):
            return
        self.last = now
        self.finished = done
        elapsed = max(now - self.started, 0.001)
        percent = 100 * progress.done_bytes / max(progress.total_bytes, 1)
        self.say(
            f"cloning {self.source}: {percent:.0f}% of {_mb(progress.total_bytes)} "
            f"({progress.done_bytes / elapsed / 1e6:.1f} MB/s)"
        )


def _peer(status: NodeStatus, checked_in: bool) -> PeerData:
    reachable = status.state is not PgState.UNREACHABLE
    return PeerData(
        name=status.name,
        reachable=reachable,
        system_identifier=status.system_identifier,
        standby=status.role is Role.STANDBY,
        running_primary=status.state is PgState.RUNNING and status.role is Role.PRIMARY,
        checked_in=checked_in,
    )


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"
