"""``pgherd cluster restart``: a rolling restart for settings pending a restart.

model/restart.py decides the steps (standbys one at a time, a switchover, then the old
primary); this carries them out through the agents, each restart waited for until the
node streams again and reports nothing pending, the switchover being the one
``pgherd standby switchover`` runs. The whole operation is one event in the cluster's
history, besides the switchover's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgherd.clients.agent import AgentClient
from pgherd.errors import PgherdError, Refused
from pgherd.model import restart as model
from pgherd.model.events import Event, Outcome
from pgherd.model.status import NodeStatus, Role
from pgherd.ops.context import Operation, Step
from pgherd.ops.events import record_refusal
from pgherd.ops.switchover import switchover

DEFAULT_TIMEOUT = 120.0  # seconds for a restarted node to stream again


@dataclass
class RestartResult:
    dry_run: bool
    plan: list[str]
    outcome: Outcome = Outcome.RUNNING
    reason: str = ""
    hint: str = ""
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "operation": "cluster-restart",
            "dry_run": self.dry_run,
            "plan": self.plan,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "hint": self.hint,
            "steps": [s.as_json() for s in self.steps],
            "seconds": round(self.seconds, 4),
        }


def rolling(
    op: Operation,
    *,
    every_node: bool = False,
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> RestartResult:
    nofailover = {n.name for n in op.config.nodes if n.nofailover}
    decided = model.plan(op.snapshot(), op.node_at, every_node=every_node, nofailover=nofailover)
    result = RestartResult(dry_run, [s.sentence() for s in decided.steps], steps=op.steps)
    if decided.refused is not None:
        result.outcome, result.reason, result.hint = Outcome.REFUSED, decided.refused, decided.hint
        if dry_run:
            return result
        record_refusal(op.events, "cluster-restart", "cluster", op.requested_by, decided.refused)
        raise Refused(f"rolling restart refused: {decided.refused}", decided.hint)
    if decided.nothing_to_do:
        result.outcome = Outcome.SUCCEEDED
        result.reason = "no node has settings pending a restart"
        return result
    if dry_run:
        result.outcome, result.reason = Outcome.SUCCEEDED, "dry run: nothing done"
        return result
    event = Event(operation="cluster-restart", node="cluster", requested_by=op.requested_by)
    op.events.save(event)
    try:
        for step in decided.steps:
            if step.do is model.Do.SWITCHOVER:
                with op.step(f"switch over to {step.node}") as current:
                    current.detail = switchover(
                        op, step.node, siblings_follow=True, timeout=timeout
                    ).reason
            else:
                _restart(op, step.node, every_node, timeout)
    except PgherdError as exc:
        result.outcome, result.reason = Outcome.FAILED, exc.message
        op.events.save(event.finish(Outcome.FAILED, exc.message))
        raise
    finally:
        result.seconds = op.seconds
    result.outcome = Outcome.SUCCEEDED
    result.reason = (
        f"restarted {', '.join(s.node for s in decided.steps if s.do is model.Do.RESTART)}"
    )
    op.events.save(event.finish(Outcome.SUCCEEDED, result.reason))
    return result


def _status(op: Operation, name: str) -> NodeStatus:
    return next(s for s in op.snapshot() if s.name == name)


def _restart(op: Operation, name: str, every_node: bool, timeout: float) -> None:
    before = _status(op, name)
    with op.step(f"restart {name}") as current:
        if not every_node and not before.pending_restart:
            current.detail = "nothing pending any more (the switchover restarted it)"
            return
        upstream = (
            op.node_at(before.upstream_host, before.upstream_port)
            if before.role is Role.STANDBY
            else None
        )
        AgentClient(op.config.node(name), op.token).restart_postgres(timeout=timeout + 30)
        if upstream is not None:
            op.wait_streaming([name], upstream, timeout)
        after = _status(op, name)
        if after.pending_restart:
            raise PgherdError(
                f"{name} still has {', '.join(after.pending_restart)} pending after its restart",
                f"see {op.config.node(name).server_log} (is the value set elsewhere too?)",
            )
        current.detail = f"back, streaming from {upstream}" if upstream else "back"
