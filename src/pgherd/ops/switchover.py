"""``pgherd standby switchover --to NODE``: hand the primary role to a standby, losing
nothing, through the agents.

Writes pause from the old primary's shutdown to the end of the promotion. A CHECKPOINT
first keeps the shutdown checkpoint short; the promotion is polled every 10 ms. If the
target does not replay the old primary's shutdown checkpoint in time, the old primary is
started again as the primary and nothing has changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NoReturn

from pgherd.dcs.base import Store
from pgherd.errors import PgherdError, Refused
from pgherd.model import switchover as model
from pgherd.model.checks import Check, refusal, streaming_from
from pgherd.model.events import Event, Outcome
from pgherd.model.haproxy import DRAIN_SECONDS
from pgherd.model.node_ops import NodeWal, ReplayWait
from pgherd.model.slots import stale_slots
from pgherd.model.status import PgState, Role
from pgherd.model.timeline import Verdict, compare
from pgherd.ops.context import Operation, Step, best_effort
from pgherd.ops.events import record_refusal
from pgherd.ops.pause import hand_over, paused, release_stopped_leader


class SwitchoverAborted(PgherdError):
    """The target could not catch up; the old primary runs again as before."""

    def __init__(self, message: str, hint: str, result: SwitchoverResult) -> None:
        super().__init__(message, hint)
        self.result = result


class SwitchoverFailed(PgherdError):
    def __init__(self, message: str, hint: str, result: SwitchoverResult) -> None:
        super().__init__(message, hint)
        self.result = result


@dataclass
class SwitchoverResult:
    old_primary: str | None
    new_primary: str
    dry_run: bool
    checks: tuple[Check, ...]
    plan: list[str]
    outcome: Outcome = Outcome.RUNNING
    reason: str = ""
    steps: list[Step] = field(default_factory=list)
    timeline: int | None = None
    writes_paused_seconds: float | None = None
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "operation": "switchover",
            "from": self.old_primary,
            "to": self.new_primary,
            "dry_run": self.dry_run,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "checks": [
                {"check": c.name, "ok": c.ok, "reason": c.reason, "hint": c.hint}
                for c in self.checks
            ],
            "plan": self.plan,
            "steps": [s.as_json() for s in self.steps],
            "timeline": self.timeline,
            "writes_paused_seconds": self.writes_paused_seconds,
            "seconds": round(self.seconds, 4),
        }


def switchover(
    op: Operation,
    target: str,
    *,
    dry_run: bool = False,
    siblings_follow: bool = False,
    timeout: float = model.DEFAULT_TIMEOUT,
    max_lag: int = model.DEFAULT_MAX_LAG,
) -> SwitchoverResult:
    current = op.snapshot()
    assessment = model.assess(current, target, op.node_at, max_lag, siblings_follow)
    result = SwitchoverResult(
        old_primary=assessment.primary,
        new_primary=target,
        dry_run=dry_run,
        checks=assessment.checks,
        plan=model.plan(assessment, siblings_follow, timeout),
        steps=op.steps,
    )
    refused = refusal("switchover", assessment.checks)
    if dry_run:
        result.outcome = Outcome.REFUSED if refused else Outcome.SUCCEEDED
        result.reason = refused[0] if refused else "every check passed (dry run: nothing done)"
        return result
    if refused:
        record_refusal(op.events, "switchover", target, op.requested_by, refused[0])
        raise Refused(*refused)
    assert assessment.primary is not None
    run = _Run(op, result, assessment.primary, target, timeout)
    moving = assessment.siblings if siblings_follow else ()
    # Only standbys that stream now are waited for afterwards (a stopped one is re-pointed
    # and stays stopped).
    streaming = tuple(
        s.name
        for s in current
        if s.name in assessment.siblings and streaming_from(s, assessment.primary, op.node_at)
    )
    # Under automatic failover the agents hold still meanwhile (ops/pause.py).
    with paused(op.config, f"switchover to {target} by {op.requested_by}", timeout + 300) as store:
        run.store = store
        return run.execute(moving, streaming)


class _Run:
    def __init__(
        self, op: Operation, result: SwitchoverResult, old: str, new: str, timeout: float
    ) -> None:
        self.op = op
        self.result = result
        self.old = old
        self.new = new
        self.timeout = timeout
        self.created_slots: list[str] = []
        self.promote_requested = False
        self.store: Store | None = None  # the coordination store, under automatic failover
        self.event = Event(
            operation="switchover",
            node=new,
            requested_by=op.requested_by,
            details={"from": old, "to": new},
        )

    def execute(self, moving: tuple[str, ...], streaming: tuple[str, ...]) -> SwitchoverResult:
        op, old, new = self.op, self.old, self.new
        op.events.save(self.event, old)
        try:
            self._prepare(moving)
            paused_at = time.monotonic()
            shutdown = self._stop_old()
            stopped_at = time.monotonic()
            wait = self._wait_target(shutdown)
            if not wait.reached:
                self._abort(shutdown, wait)
            if self.store is not None:
                # The old primary is down for good: free its lease now, so that the new
                # one's HA loop takes it the moment it is promoted (its load-balancer check
                # answers 200 once it holds it). Paused, nobody else takes a free lease.
                release_stopped_leader(self.store, old)
            with op.step(f"promote {new}") as step:
                self.promote_requested = True
                promoted = op.client(new).promote()
                step.detail = (
                    f"timeline {promoted.timeline_before} → {promoted.timeline_after}, "
                    f"in {promoted.seconds * 1000:.0f} ms"
                )
            self.result.writes_paused_seconds = round(time.monotonic() - paused_at, 4)
            self.result.timeline = promoted.timeline_after
        except SwitchoverAborted:
            raise
        except PgherdError as exc:
            self._fail_before_promotion(exc)
        try:
            if self.store is not None:
                with op.step(f"hand the leader lease to {new}") as step:
                    step.detail = hand_over(
                        self.store, op.config, new, wake=op.client(new, 5).cycle_now
                    )
            self._drain(stopped_at)
            self._old_follows(shutdown)
            for sibling in moving:
                with op.step(f"point {sibling} at {new}"):
                    op.client(sibling).follow(new, start=False)
            staying = tuple(n for n in streaming if n not in moving)
            followers = (old, *(n for n in streaming if n in moving))
            with op.step(f"wait for {', '.join(followers)} to stream from {new}"):
                op.wait_streaming(followers, new)
            if staying:
                with op.step(f"wait for {', '.join(staying)} to stream from {old} again"):
                    op.wait_streaming(staying, old)
            self._drop_stale_slots()
        except PgherdError as exc:
            return self._finish_incomplete(exc)
        return self._finish(
            Outcome.SUCCEEDED,
            f"{new} is the primary (timeline {self.result.timeline}); {old} streams from it; "
            f"writes paused {self.result.writes_paused_seconds:.2f} s",
        )

    def _prepare(self, moving: tuple[str, ...]) -> None:
        op, old, new = self.op, self.old, self.new
        with op.step(f"create replication slots on {new}") as step:
            made = []
            for name in (old, *moving):
                if op.client(new).create_slot(name).changed:
                    self.created_slots.append(name)
                    made.append(name)
            step.detail = f"created {', '.join(made)}" if made else "already there"
        with op.step(f"CHECKPOINT on {old}") as step:
            done = op.client(old, timeout=300).checkpoint()
            step.detail = f"redo at {done.redo_lsn}"

    def _stop_old(self) -> NodeWal:
        op, old = self.op, self.old
        with op.step(f"stop {old} (fast)") as step:
            op.client(old, timeout=90).stop_postgres("fast")
            shutdown = op.client(old).wal()
            step.detail = f"shutdown checkpoint at {shutdown.lsn}"
        if not shutdown.clean_shutdown or shutdown.lsn is None:
            raise PgherdError(
                f"{old} did not shut down cleanly (state {shutdown.cluster_state!r})",
                f"see {old}'s postgresql.log",
            )
        return shutdown

    def _wait_target(self, shutdown: NodeWal) -> ReplayWait:
        op, old, new = self.op, self.old, self.new
        assert shutdown.lsn is not None
        with op.step(f"wait for {new} to replay {old}'s shutdown checkpoint") as step:
            wait = op.client(new).wait_replay(shutdown.lsn, self.timeout)
            step.detail = f"replayed up to {wait.replay_lsn}"
            if not wait.reached:
                step.ok = False
                step.detail += f", not past {shutdown.lsn} after {self.timeout:g} s"
        return wait

    def _abort(self, shutdown: NodeWal, wait: ReplayWait) -> NoReturn:
        op, old, new = self.op, self.old, self.new
        reason = (
            f"switchover aborted, nothing changed: {new} replayed up to {wait.replay_lsn} "
            f"(received up to {wait.receive_lsn}) in {self.timeout:g} s, short of {old}'s "
            f"shutdown checkpoint at {shutdown.lsn}; {old} is the primary again"
        )
        self._undo()
        self.result.outcome = Outcome.ABORTED
        self.result.reason = reason
        self.result.seconds = op.seconds
        op.events.save(self.event.finish(Outcome.ABORTED, reason), old)
        raise SwitchoverAborted(
            reason,
            f"see why {new} replays slowly (pgherd cluster show), then retry, perhaps with a "
            "longer --timeout",
            self.result,
        )

    def _undo(self) -> None:
        """Start the old primary again (it is still configured as the primary) and drop the
        slots made for the switchover."""
        op, old, new = self.op, self.old, self.new
        with op.step(f"start {old} again as the primary"):
            op.client(old, timeout=90).start_postgres()
        if self.created_slots:
            with op.step(f"drop the slots created on {new}") as step:
                problems = [
                    p
                    for name in self.created_slots
                    if (p := best_effort(lambda n=name: op.drop_slot(new, n))) is not None  # type: ignore[misc]
                ]
                step.detail = "; ".join(problems) if problems else ", ".join(self.created_slots)

    def _fail_before_promotion(self, exc: PgherdError) -> NoReturn:
        if self.promote_requested and not self._still_standby():
            # The promotion may have happened: starting the old primary again could make
            # two primaries. It stays stopped; the operator looks first.
            reason = (
                f"switchover failed while promoting {self.new} ({exc.message}); {self.new} "
                f"may be the primary now, so {self.old} stays stopped"
            )
            self._record_failure(reason)
            raise SwitchoverFailed(
                reason,
                f"see pgherd cluster show; then pgherd node rejoin {self.old}, or "
                f"pgherd node start {self.old} if {self.new} is still a standby",
                self.result,
            ) from None
        problem = best_effort(self._undo)
        reason = f"switchover failed before {self.new} was promoted: {exc.message}"
        if problem:
            reason += f"; starting {self.old} again failed too: {problem}"
        else:
            reason += f"; {self.old} is the primary again"
        self._record_failure(reason)
        raise SwitchoverFailed(reason, exc.hint, self.result) from None

    def _still_standby(self) -> bool:
        try:
            status = self.op.client(self.new).status()
        except PgherdError:
            return False
        return status.state is PgState.RUNNING and status.role is Role.STANDBY

    def _record_failure(self, reason: str) -> None:
        self.result.outcome = Outcome.FAILED
        self.result.reason = reason
        self.result.seconds = self.op.seconds
        self.op.events.save(self.event.finish(Outcome.FAILED, reason))

    def _drain(self, stopped_at: float) -> None:
        """Load balancers drop the old primary from the write pool a few checks after its
        agent answers 503 (model/haproxy.py): keep it closed to clients until then, so that
        no write reaches it once it runs again as a standby ("read-only transaction")."""
        left = stopped_at + DRAIN_SECONDS - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _old_follows(self, shutdown: NodeWal) -> None:
        op, old, new = self.op, self.old, self.new
        with op.step(f"restart {old} as a standby of {new}") as step:
            upstream = op.client(new).wal()
            verdict = compare(
                shutdown.parsed_history(),
                shutdown.position(),
                upstream.parsed_history(),
                None,
                old,
                new,
            )
            if verdict.verdict is Verdict.REWIND:
                op.client(new, timeout=300).checkpoint()
                rewound = op.client(old, timeout=3600).rewind(new)
                step.detail = f"pg_rewind: {rewound.output}; "
            elif verdict.verdict is Verdict.RECLONE:
                raise PgherdError(verdict.reason, f"pgherd node rejoin {old} --force-clone")
            op.client(old, timeout=120).follow(new, start=True)
            step.detail += verdict.reason

    def _drop_stale_slots(self) -> None:
        op = self.op
        with op.step("drop replication slots nobody streams from") as step:
            current = op.snapshot()
            dropped = []
            for node in (self.old, self.new):
                for slot in stale_slots(current, node, op.node_at):
                    if op.drop_slot(node, slot):
                        dropped.append(f"{slot} on {node}")
            step.detail = ", ".join(dropped) if dropped else "none left over"

    def _finish_incomplete(self, exc: PgherdError) -> NoReturn:
        reason = (
            f"{self.new} is the primary (timeline {self.result.timeline}), but the switchover "
            f"did not finish: {exc.message}"
        )
        self._finish(Outcome.FAILED, reason)
        raise SwitchoverFailed(
            reason, exc.hint or f"bring {self.old} back: pgherd node rejoin {self.old}", self.result
        ) from None

    def _finish(self, outcome: Outcome, reason: str) -> SwitchoverResult:
        self.result.outcome = outcome
        self.result.reason = reason
        self.result.seconds = self.op.seconds
        self.op.events.save(
            self.event.finish(
                outcome,
                reason,
                timeline=self.result.timeline,
                writes_paused_seconds=self.result.writes_paused_seconds,
            ),
            self.new,
        )
        return self.result
