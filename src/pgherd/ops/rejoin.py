"""``pgherd node rejoin NODE [--force-clone]``: bring a failed or old primary (or a
diverged standby) back as a standby of the current primary.

Nothing diverged: it is configured as a standby and started. Diverged: pg_rewind copies
back what changed on the primary since the two parted (the node's own WAL kept by
``wal_keep_size``, or fetched from the WAL archive, covers the gap), right after a
checkpoint on the primary. Only when
pg_rewind cannot help, or fails, or ``--force-clone`` asks for it, is the node cloned
anew. The node is set up as a standby before it starts, so a diverged node never runs as
a writable primary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgherd.errors import AgentError, CommandFailed, PgherdError, Refused
from pgherd.model.checks import Check, by_name, refusal, streaming_from, upstream_of
from pgherd.model.events import Event, Outcome
from pgherd.model.follow import RejoinMethod, rejoin_checks, rejoin_plan
from pgherd.model.node_ops import RewindResult
from pgherd.model.slots import stale_slots
from pgherd.model.status import PgState
from pgherd.ops.context import Operation, Step, best_effort
from pgherd.ops.events import record_refusal
from pgherd.ops.follow import divergence
from pgherd.ops.pause import paused

# How long the rejoined standby's agent may take to answer that its server started: the
# agent waits while recovery advances (pg/instance.py wait_ready), and a standby rewound
# or cloned from a busy 20 GB primary replays for minutes before it takes connections.
CATCH_UP_TIMEOUT = 3600.0


@dataclass
class RejoinOutcome:
    node: str
    primary: str
    method: RejoinMethod
    reason: str
    checks: tuple[Check, ...]
    rewind: RewindResult | None = None
    fallback: str | None = None  # why a planned rewind became a clone
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "operation": "rejoin",
            "node": self.node,
            "primary": self.primary,
            "method": str(self.method),
            "outcome": "succeeded",
            "reason": self.reason,
            "fallback": self.fallback,
            "rewind": self.rewind.model_dump(mode="json") if self.rewind else None,
            "steps": [s.as_json() for s in self.steps],
            "seconds": round(self.seconds, 4),
        }


def rejoin(op: Operation, node: str, force_clone: bool = False) -> RejoinOutcome:
    with paused(op.config, f"rejoin of {node} by {op.requested_by}", 3600):
        return _rejoin(op, node, force_clone)


def _rejoin(op: Operation, node: str, force_clone: bool) -> RejoinOutcome:
    current = op.snapshot()
    primary, checks = rejoin_checks(current, node, op.node_at)
    refused = refusal("rejoin", checks)
    if refused:
        record_refusal(op.events, "rejoin", node, op.requested_by, refused[0])
        raise Refused(*refused)
    assert primary is not None
    status = by_name(current)[node]
    if not force_clone and streaming_from(status, primary, op.node_at):
        already = RejoinOutcome(
            node, primary, RejoinMethod.FOLLOW, f"{node} already streams from {primary}", checks
        )
        already.seconds = op.seconds
        return already
    event = Event(
        operation="rejoin",
        node=node,
        requested_by=op.requested_by,
        details={"primary": primary},
    )
    op.events.save(event, primary)
    previous = upstream_of(status, op.node_at)
    running = status.state is PgState.RUNNING
    try:
        verdict, mine, _ = divergence(op, node, primary)
        if running and not verdict.can_follow and not force_clone:
            # Shut down, its control file tells where its WAL ends, as pg_rewind reads it.
            with op.step(f"stop {node}") as step:
                op.client(node, timeout=120).stop_postgres("fast")
                step.detail = verdict.reason
            running = False
            verdict, mine, _ = divergence(op, node, primary)
        plan = rejoin_plan(verdict, force_clone, mine.rewindable)
        outcome = RejoinOutcome(node, primary, plan.method, plan.reason, checks, steps=op.steps)
        _carry_out(op, outcome, running)
        with op.step(f"wait for {node} to stream from {primary}"):
            op.wait_streaming([node], primary, timeout=120)
        _tidy_slots(op, node, previous)
    except PgherdError as exc:
        op.events.save(event.finish(Outcome.FAILED, exc.message), primary)
        raise
    reason = f"{node} streams from {primary} ({outcome.method}: {outcome.reason})"
    outcome.reason = reason
    outcome.seconds = op.seconds
    op.events.save(
        event.finish(
            Outcome.SUCCEEDED,
            reason,
            method=outcome.method,
            diverged_at=outcome.rewind.diverged_at if outcome.rewind else None,
            fallback=outcome.fallback,
        ),
        primary,
    )
    return outcome


def _carry_out(op: Operation, outcome: RejoinOutcome, running: bool) -> None:
    node, primary = outcome.node, outcome.primary
    client = op.client(node, timeout=120)
    if outcome.method is RejoinMethod.FOLLOW:
        with op.step(f"create slot {node} on {primary}") as step:
            step.detail = op.client(primary).create_slot(node).detail
        with op.step(f"configure {node} as a standby of {primary} and start it"):
            client.follow(primary, start=True, timeout=CATCH_UP_TIMEOUT)
        return
    if running:
        with op.step(f"stop {node}"):
            client.stop_postgres("fast")
    if outcome.method is RejoinMethod.REWIND:
        # The slot first: it holds the primary's WAL from its last checkpoint on, so that
        # the segments the rewound node replays after pg_rewind's copy are still there
        # when it connects. Made after pg_rewind, at 20 GB the primary had recycled them
        # meanwhile (bench/scale.py: "requested WAL segment … has already been removed").
        with op.step(f"create slot {node} on {primary}") as step:
            step.detail = op.client(primary).create_slot(node).detail
        with op.step(f"CHECKPOINT on {primary}") as step:
            # pg_rewind reads the primary's timeline from its control file, which a new
            # primary updates only at its first checkpoint; the checkpoint also removes the
            # WAL the primary no longer keeps, which pg_rewind would otherwise copy.
            step.detail = f"redo at {op.client(primary, timeout=300).checkpoint().redo_lsn}"
        try:
            with op.step(f"pg_rewind {node} from {primary}") as step:
                outcome.rewind = op.client(node, timeout=3600).rewind(primary)
                step.detail = outcome.rewind.output
        except (CommandFailed, AgentError) as exc:
            # The agent reports pg_rewind's own failure (its stderr); the data directory
            # may be half-rewound now, so a new clone is the way back.
            outcome.fallback = f"pg_rewind failed ({exc.message}); cloned instead"
            outcome.method = RejoinMethod.CLONE
        else:
            try:
                with op.step(f"configure {node} as a standby of {primary} and start it"):
                    client.follow(primary, start=True, timeout=CATCH_UP_TIMEOUT)
            except AgentError as exc:
                # Rewound, but it cannot become consistent: most often the primary recycled
                # WAL of its new timeline before pg_rewind copied it (no slot held it, no
                # archive has it). The data directory is rewound already, nothing of the
                # node's own is left to keep: a new clone is the way back.
                outcome.fallback = (
                    f"{node} did not start after pg_rewind ({exc.message}); cloned instead"
                )
                outcome.method = RejoinMethod.CLONE
                with op.step(f"stop {node}"):
                    client.stop_postgres("immediate")
            else:
                return
    with op.step(f"clone {node} anew from {primary}") as step:
        fresh = op.client(primary).status()
        copied = op.client(node, timeout=7200).clone(fresh)
        step.detail = f"{copied.bytes_copied / 1e6:.0f} MB in {copied.seconds:.1f} s"
    with op.step(f"start {node}"):
        client.start_postgres(timeout=CATCH_UP_TIMEOUT)


def _tidy_slots(op: Operation, node: str, previous: str | None) -> None:
    with op.step("drop replication slots nobody streams from") as step:
        current = op.snapshot()
        dropped = []
        problems = []
        places = [node] + ([previous] if previous else [])
        for place in places:
            if by_name(current)[place].state is not PgState.RUNNING:
                continue
            for slot in stale_slots(current, place, op.node_at):
                problem = best_effort(lambda p=place, s=slot: op.drop_slot(p, s))  # type: ignore[misc]
                if problem:
                    problems.append(problem)
                else:
                    dropped.append(f"{slot} on {place}")
        step.detail = ", ".join(dropped) if dropped else "none left over"
        if problems:
            step.detail += "; " + "; ".join(problems)
