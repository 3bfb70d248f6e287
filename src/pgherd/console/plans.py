"""What an action would do, shown before the operator confirms it: the checks the CLI
runs (the same functions of ``pgherd.model`` on a fresh snapshot) and the steps.

Switchover has its own ``--dry-run`` in ``pgherd.ops.switchover``, used as is; promote,
follow, rejoin and replay pause/resume are previewed from the checks their operations
run first, so a preview refuses exactly when the operation would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pgherd.errors import PgherdError
from pgherd.model import promote as promote_model
from pgherd.model.checks import Check, by_name, failed, passed, refusal, upstream_of
from pgherd.model.follow import default_upstream, follow_checks, rejoin_checks, rejoin_plan
from pgherd.model.status import PgState, Role
from pgherd.ops import switchover as switchover_ops
from pgherd.ops.context import Operation
from pgherd.ops.follow import divergence


class ActionKind(StrEnum):
    SWITCHOVER = "switchover"
    PROMOTE = "promote"
    FOLLOW = "follow"
    REJOIN = "rejoin"
    PAUSE_REPLAY = "pause-replay"
    RESUME_REPLAY = "resume-replay"


@dataclass(frozen=True)
class ActionRequest:
    kind: ActionKind
    node: str
    upstream: str | None = None  # follow: the new upstream (default: the primary)
    siblings_follow: bool = False  # switchover

    @property
    def title(self) -> str:
        if self.kind is ActionKind.SWITCHOVER:
            return f"switchover to {self.node}"
        if self.kind is ActionKind.FOLLOW:
            return f"{self.node} follows {self.upstream or 'the primary'}"
        return f"{self.kind.replace('-', ' ')} {self.node}"

    @property
    def cli(self) -> str:
        """The same action on the command line."""
        return {
            ActionKind.SWITCHOVER: f"pgherd standby switchover --to {self.node}"
            + (" --siblings-follow" if self.siblings_follow else ""),
            ActionKind.PROMOTE: f"pgherd standby promote {self.node}",
            ActionKind.FOLLOW: f"pgherd standby follow {self.node}"
            + (f" --upstream {self.upstream}" if self.upstream else ""),
            ActionKind.REJOIN: f"pgherd node rejoin {self.node}",
            ActionKind.PAUSE_REPLAY: f"pgherd replay pause {self.node}",
            ActionKind.RESUME_REPLAY: f"pgherd replay resume {self.node}",
        }[self.kind]


@dataclass
class Preview:
    request: ActionRequest
    checks: list[Check] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    refused: str | None = None  # the refusal the operation would raise, with its hint

    @property
    def allowed(self) -> bool:
        return self.refused is None


def preview(op: Operation, request: ActionRequest) -> Preview:
    try:
        return _PREVIEWS[request.kind](op, request)
    except PgherdError as exc:
        return Preview(request, refused=exc.one_line())


def _with_refusal(result: Preview, operation: str) -> Preview:
    refused = refusal(operation, result.checks)
    if refused:
        message, hint = refused
        result.refused = f"{message} — {hint}" if hint else message
    return result


def _switchover(op: Operation, request: ActionRequest) -> Preview:
    found = switchover_ops.switchover(
        op, request.node, dry_run=True, siblings_follow=request.siblings_follow
    )
    return _with_refusal(
        Preview(request, checks=list(found.checks), plan=list(found.plan)), "switchover"
    )


def _promote(op: Operation, request: ActionRequest) -> Preview:
    node = request.node
    checks = list(promote_model.assess(op.snapshot(), node, False))
    plan = [
        f"promote {node} (pg_promote): it leaves recovery on a new timeline and takes writes",
        "the other standbys keep their upstream: point them at it with follow, "
        "and bring the old primary back with rejoin",
    ]
    return _with_refusal(Preview(request, checks=checks, plan=plan), "promote")


def _follow(op: Operation, request: ActionRequest) -> Preview:
    node = request.node
    current = op.snapshot()
    upstream = request.upstream or default_upstream(current, node)
    if upstream is None:
        return Preview(
            request,
            refused=f"there is no single running primary for {node} to follow — name the upstream",
        )
    checks = follow_checks(current, node, upstream, op.node_at, None)
    if refusal("follow", checks) is None:
        verdict, _, _ = divergence(op, node, upstream)
        checks = follow_checks(current, node, upstream, op.node_at, verdict)
    previous = upstream_of(by_name(current)[node], op.node_at)
    plan = [
        f"create replication slot {node} on {upstream}",
        f"point {node} at {upstream} (primary_conninfo, primary_slot_name) and reload",
        f"wait until {node} streams from {upstream}",
    ]
    if previous and previous != upstream:
        plan.append(f"drop slot {node} on {previous}")
    return _with_refusal(Preview(request, checks=list(checks), plan=plan), "follow")


def _rejoin(op: Operation, request: ActionRequest) -> Preview:
    node = request.node
    current = op.snapshot()
    primary, checks = rejoin_checks(current, node, op.node_at)
    result = _with_refusal(Preview(request, checks=list(checks)), "rejoin")
    if not result.allowed or primary is None:
        return result
    verdict, mine, _ = divergence(op, node, primary)
    method = rejoin_plan(verdict, False, mine.rewindable)
    result.plan = [
        f"method: {method.method} — {method.reason}",
        *(
            [f"stop {node}, CHECKPOINT on {primary}, pg_rewind {node} from {primary}"]
            if method.method == "rewind"
            else [f"clone {node} anew from {primary} (pg_basebackup)"]
            if method.method == "clone"
            else []
        ),
        f"configure {node} as a standby of {primary} and start it",
        f"wait until {node} streams from {primary}; drop slots nobody streams from",
    ]
    return result


def _replay(op: Operation, request: ActionRequest) -> Preview:
    node = request.node
    status = by_name(op.snapshot())[node]
    verb = "pause" if request.kind is ActionKind.PAUSE_REPLAY else "resume"
    if status.state is not PgState.RUNNING or status.role is not Role.STANDBY:
        check = failed(
            "standby",
            f"{node} is not a running standby ({status.role}, {status.state}): there is no "
            f"replay to {verb}",
            "replay control works on standbys",
        )
    else:
        paused = "paused" if status.replay_paused else "replaying"
        check = passed("standby", f"{node} is a running standby ({paused})")
    plan = [
        f"pg_wal_replay_{verb}() on {node}"
        + (
            ": it keeps receiving WAL but applies none; queries see the data as it is now"
            if verb == "pause"
            else ": it applies the WAL received meanwhile"
        )
    ]
    return _with_refusal(Preview(request, checks=[check], plan=plan), f"replay {verb}")


_PREVIEWS = {
    ActionKind.SWITCHOVER: _switchover,
    ActionKind.PROMOTE: _promote,
    ActionKind.FOLLOW: _follow,
    ActionKind.REJOIN: _rejoin,
    ActionKind.PAUSE_REPLAY: _replay,
    ActionKind.RESUME_REPLAY: _replay,
}
