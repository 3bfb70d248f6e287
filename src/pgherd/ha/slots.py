"""The agent's slot keeper: slots that survive a failover (model/failover_slots.py decides
what to do; this reads the servers and does it).

Every few seconds, while this node's PostgreSQL runs in a streaming cluster: a primary
creates the permanent slots of pgherd.yaml it lacks; a standby reads the primary's slots
from the primary's agent (``GET /status``) and keeps a copy of each logical one — copied
once from the primary's state file (``GET /ops/slot-state``, written while this server is
stopped, under the agent's action lock: the HA loop acts on nothing meanwhile), advanced
as the subscriber confirms (never past what this standby replayed), dropped when the
primary drops it — and of each permanent physical one.

With a coordination store (``ha:``), each agent records there the permanent slots it
creates or copies (dcs/state.py ``owned_slots``) before it does, and drops them once
``slots:`` no longer declares them (not while a consumer is connected: it waits, says so
once, and ``/metrics`` shows ``pgherd_slot_drop_waiting``). While the store does not
answer, nothing is created or copied. Without a store nothing records what pgherd made,
and a removed permanent slot stays.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable

import psycopg

from pgherd.clients.ops import OpsClient
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.errors import PgherdError
from pgherd.ha import peers
from pgherd.model.failover_slots import (
    Declared,
    SlotAction,
    SlotDo,
    SlotKind,
    SlotSeen,
    copy_delay,
    decide,
    unready_copies,
)
from pgherd.model.lsn import Lsn
from pgherd.model.status import Slot
from pgherd.pg import queries, replication, slot_files
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.slots")

INTERVAL = 3.0  # seconds between looks: what a subscriber confirmed reaches the copies


def seen(slot: Slot) -> SlotSeen:
    return SlotSeen(
        name=slot.name,
        kind=SlotKind.LOGICAL if slot.slot_type == "logical" else SlotKind.PHYSICAL,
        active=slot.active,
        temporary=slot.temporary,
        database=slot.database,
        plugin=slot.plugin,
        restart_lsn=slot.restart_lsn,
        confirmed_flush=slot.confirmed_flush_lsn,
        catalog_xmin=slot.catalog_xmin,
    )


def _needs_record(action: SlotAction) -> bool:
    """A slot made here (created, or copied from the primary) waits for the store: a
    permanent one is recorded there first, and a copy could be of a permanent slot removed
    from ``slots:`` (which only the store's record tells)."""
    return action.do in (SlotDo.CREATE, SlotDo.COPY)


class SlotKeeper:
    def __init__(
        self,
        local: LocalNode,
        running: Callable[[], bool],
        restart_with: Callable[[Callable[[], None]], None],
        paused: Callable[[], bool] = lambda: False,
        interval: float = INTERVAL,
        store: Callable[[], Store] | None = None,
    ) -> None:
        """``running``: PostgreSQL runs here; ``restart_with(action)``: stop it, run
        ``action`` on its files, start it again (the agent's way, under its lock);
        ``paused``: maintenance mode, in which nothing restarts (copies wait); ``store``:
        the coordination store, where the permanent slots pgherd made are recorded (None:
        the cluster has none, and removed permanent slots are left alone)."""
        self.local = local
        self.running = running
        self.restart_with = restart_with
        self.paused = paused
        self.interval = interval
        self.store = store
        self.waiting: tuple[str, ...] = ()  # removed permanent slots whose consumer reads
        self._store_down = False  # the store did not answer at the last look (said once)
        self._failing: str | None = None  # the last failure logged, not repeated
        self.unready: list[str] = []  # copies a failover could not use yet
        self.broken: set[str] = set()  # copies that could not be advanced: copied again
        self.copies: tuple[str, ...] = ()  # this standby's copies, at the last look
        self._lacking_since: float | None = None  # when it first lacked a copy (its turn)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                for sentence in self.cycle():
                    log.info("%s", sentence)
                self._failing = None
            except (PgherdError, psycopg.Error, OSError) as exc:
                text = exc.one_line() if isinstance(exc, PgherdError) else str(exc).strip()
                if text != self._failing:
                    log.warning("keeping the slots failed: %s", text)
                    self._failing = text
            except Exception:
                log.exception("keeping the slots failed")

    def cycle(self) -> list[str]:
        """One look: decide, act; what was done, for the log."""
        config = self.local.config
        if config.topology != "streaming" or not self.running():
            return []
        declared = [
            Declared(name, SlotKind(s.type), s.database, s.plugin)
            for name, s in config.slots.items()
        ]
        owned: frozenset[str] = frozenset()
        retired: frozenset[str] = frozenset()
        unrecorded = False  # the store does not answer: nothing is made that it must record
        if self.store is not None:
            try:
                state = dcs_state.parse(self.store().config())
            except StoreUnavailable as exc:
                unrecorded = True
                self._store_failed(exc)
            else:
                self._store_down = False
                owned = state.slots_owned_by(self.local.node.name)
                retired = frozenset(o.name for o in state.owned_slots) - set(config.slots)
        with self.local.instance.connect() as conn:
            row = conn.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
            found = row.fetchone()
            assert found is not None
            primary = not found[0]
            replayed = Lsn.parse_optional(str(found[1]) if found[1] is not None else None)
            mine = [seen(s) for s in queries.slots(conn)]
        leader = None if primary else peers.other_primary(self.local)
        if not primary and leader is None:
            return []  # no primary answers: nothing to follow (and nothing to drop)
        actions = decide(
            primary,
            mine,
            declared,
            config.node_names,
            [seen(s) for s in leader.slots] if leader is not None else None,
            replayed,
            self.broken,
            owned,
            retired,
        )
        if unrecorded:
            # The copies keep moving; nothing is made until the store answers.
            actions = [a for a in actions if not _needs_record(a)]
        said = self._waiting([a for a in actions if a.do is SlotDo.WAIT])
        said += [self._act(a) for a in actions if a.do not in (SlotDo.COPY, SlotDo.WAIT)]
        if leader is None:
            self.copies = ()
        else:
            theirs = {s.name for s in leader.slots if s.slot_type == "logical"}
            self.copies = tuple(
                s.name for s in mine if s.kind is SlotKind.LOGICAL and s.name in theirs
            )
            said += self._readiness(
                unready_copies(mine, [seen(s) for s in leader.slots], self.local.node.name)
            )
        copies = [a for a in actions if a.do is SlotDo.COPY]
        if not copies or leader is None:
            self._lacking_since = None
            return said
        now = time.monotonic()
        if self._lacking_since is None:
            self._lacking_since = now
        wait = copy_delay(self.local.node.name, leader.name, config.node_names)
        if now - self._lacking_since >= wait and not self.paused():
            said.append(self._copy(leader.name, copies))
            self._lacking_since = None
        return said

    def copies_ready(self) -> tuple[tuple[str, bool], ...]:
        """Each copy of the primary's logical slots here, and whether a failover could use
        it (``/metrics``: pgherd_slot_copy_ready)."""
        return tuple((name, name not in self.unready) for name in self.copies)

    def _store_failed(self, exc: StoreUnavailable) -> None:
        """Say once that permanent slots wait for the store (the copies keep moving)."""
        if not self._store_down:
            log.warning("the store did not answer (%s): permanent slots wait", exc.one_line())
        self._store_down = True

    def _waiting(self, waits: list[SlotAction]) -> list[str]:
        """Say once that a removed permanent slot waits for its consumer to disconnect
        (``/metrics``: pgherd_slot_drop_waiting), and when it stops waiting."""
        names = tuple(a.slot for a in waits)
        for action in waits:
            if action.slot not in self.waiting:
                log.warning("%s", action.reason)
        said = [
            f"removed permanent slot {name} no longer waits for its consumer"
            for name in self.waiting
            if name not in names
        ]
        self.waiting = names
        return said

    def _own(self, name: str, owned: bool) -> None:
        """Record in the store that this node holds permanent slot ``name`` (before it
        makes it: a slot pgherd made is never missing from the record), or no longer."""
        if self.store is None:
            return
        me = self.local.node.name
        dcs_state.update(self.store(), lambda s: s.with_slot(name, me, owned))

    def _readiness(self, unready: list[str]) -> list[str]:
        """Say when a copy becomes safe for a failover, or stops being so."""
        said = [
            f"the copy of logical slot {name} is safe to use after a failover"
            for name in self.unready
            if name not in unready
        ]
        fresh = [name for name in unready if name not in self.unready]
        if fresh:
            log.warning(
                "copies of logical slot %s are not safe for a failover yet: the primary does "
                "not yet keep their catalog rows (hot_standby_feedback)",
                ", ".join(fresh),
            )
        self.unready = unready
        return said

    def _act(self, action: SlotAction) -> str:
        if action.do is SlotDo.FORGET:
            self._own(action.slot, False)
            return f"slot {action.slot}: {action.do} ({action.reason})"
        if action.do is SlotDo.CREATE:
            self._own(action.slot, True)  # CREATE is for permanent slots only
        dbname = action.database or "postgres"
        with self.local.instance.connect(dbname) as conn:
            if action.do is SlotDo.CREATE and action.kind is SlotKind.PHYSICAL:
                replication.create_physical_slot(conn, action.slot)
            elif action.do is SlotDo.CREATE:
                replication.create_logical_slot(conn, action.slot, action.plugin or "pgoutput")
            elif action.do is SlotDo.ADVANCE and action.kind is SlotKind.LOGICAL:
                assert action.lsn is not None
                try:
                    replication.advance_slot(conn, action.slot, action.lsn)
                except psycopg.Error as exc:
                    # WAL this standby no longer has, a copy from before a timeline change:
                    # the next look copies it again from the primary.
                    self.broken.add(action.slot)
                    return (
                        f"slot {action.slot}: could not advance it to {action.lsn} "
                        f"({str(exc).strip().splitlines()[0]}): copying it again"
                    )
            elif action.do is SlotDo.ADVANCE:
                assert action.lsn is not None
                replication.advance_slot(conn, action.slot, action.lsn)
            elif action.do is SlotDo.DROP:
                replication.drop_slot(conn, action.slot)
        where = f" to {action.lsn}" if action.lsn is not None else ""
        return f"slot {action.slot}: {action.do}{where} ({action.reason})"

    def _copy(self, leader: str, copies: list[SlotAction]) -> str:
        """Copy the primary's logical slots here: their state files, written while this
        server is stopped (one restart for all of them)."""
        client = OpsClient(self.local.config.node(leader))
        states: dict[str, bytes] = {}
        for action in copies:
            found = client.slot_state(action.slot)
            states[action.slot] = base64.b64decode(found.state)
        for name in states:
            if name in self.local.config.slots:
                self._own(name, True)  # a copy of a permanent slot is pgherd's too
        names = ", ".join(states)
        log.info(
            "copying logical slot %s from %s: restarting this standby to load it", names, leader
        )
        node = self.local.node
        self.restart_with(lambda: slot_files.install_states(node.data_dir, self.local.user, states))
        self.broken -= set(states)
        return f"copied logical slot {names} from {leader} (the standby restarted to load it)"
