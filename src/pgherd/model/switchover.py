"""Switchover: whether handing the primary role to a standby is safe now, and the plan.

A switchover stops the primary cleanly, waits until the chosen standby has replayed the
primary's shutdown checkpoint (so it holds every committed transaction), promotes it and
makes the old primary its standby. It is refused unless the target is a running standby
that streams from the one running primary, replays (not paused) and is close behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgherd.model.checks import (
    Check,
    by_name,
    downstream_of,
    failed,
    known,
    passed,
    reachable,
    running_primaries,
    streaming_from,
    upstream_of,
)
from pgherd.model.cluster import NodeAt
from pgherd.model.lsn import Lsn
from pgherd.model.status import NodeStatus, PgState, Role

DEFAULT_MAX_LAG = 16 * 1024 * 1024  # one WAL segment: replayed in well under a second
DEFAULT_TIMEOUT = 30.0


def mb(value: int) -> str:
    return f"{value / (1024 * 1024):.1f} MB"


@dataclass(frozen=True)
class SwitchoverAssessment:
    primary: str | None
    target: str
    siblings: tuple[str, ...]  # the primary's other standbys
    checks: tuple[Check, ...]


def assess(
    statuses: Sequence[NodeStatus],
    target: str,
    node_at: NodeAt,
    max_lag: int = DEFAULT_MAX_LAG,
    siblings_follow: bool = False,
) -> SwitchoverAssessment:
    nodes = by_name(statuses)
    checks: list[Check] = [known(target, statuses)]
    primaries = running_primaries(statuses)
    primary = primaries[0] if len(primaries) == 1 else None
    checks.append(_one_primary(primaries, statuses))
    siblings: tuple[str, ...] = ()
    if primary is not None:
        siblings = tuple(n for n in downstream_of(statuses, primary.name, node_at) if n != target)
    status = nodes.get(target)
    if status is None:
        return SwitchoverAssessment(
            primary.name if primary else None, target, siblings, tuple(checks)
        )
    involved = [target] + ([primary.name] if primary else [])
    if siblings_follow:
        # An agent that does not answer may be a sibling that would be left behind.
        involved += [s.name for s in statuses]
    checks.extend(reachable(n, nodes[n]) for n in dict.fromkeys(involved))
    if primary is None or status.state is PgState.UNREACHABLE:
        return SwitchoverAssessment(
            primary.name if primary else None, target, siblings, tuple(checks)
        )
    if status.name == primary.name:
        checks.append(
            failed(
                "target",
                f"{target} is already the primary",
                "name a standby: pgherd standby switchover --to STANDBY",
            )
        )
        return SwitchoverAssessment(primary.name, target, siblings, tuple(checks))
    checks.extend(_target_checks(status, primary, node_at, max_lag))
    return SwitchoverAssessment(primary.name, target, siblings, tuple(checks))


def _one_primary(primaries: list[NodeStatus], statuses: Sequence[NodeStatus]) -> Check:
    if len(primaries) == 1:
        return passed("one-primary", f"{primaries[0].name} is the one running primary")
    if not primaries:
        unreachable = [s.name for s in statuses if s.state is PgState.UNREACHABLE]
        more = f" (agents not answering: {', '.join(unreachable)})" if unreachable else ""
        return failed(
            "one-primary",
            f"no running primary to switch over from{more}",
            "if the primary is gone, promote a standby: pgherd standby promote NODE",
        )
    return failed(
        "one-primary",
        "more than one running primary: " + ", ".join(p.name for p in primaries),
        "stop all but one, then rejoin the others: pgherd node rejoin NODE",
    )


def _target_checks(
    status: NodeStatus, primary: NodeStatus, node_at: NodeAt, max_lag: int
) -> list[Check]:
    name = status.name
    checks: list[Check] = []
    if status.state is not PgState.RUNNING:
        checks.append(
            failed(
                "target-running",
                f"{name} is {status.state}",
                f"start it first: pgherd node start {name}",
            )
        )
        return checks
    checks.append(passed("target-running", f"{name} is running"))
    if status.role is not Role.STANDBY:
        checks.append(failed("target-standby", f"{name} is not a standby (it is {status.role})"))
        return checks
    if primary.system_identifier and status.system_identifier != primary.system_identifier:
        checks.append(
            failed(
                "same-cluster",
                f"{name}'s system identifier {status.system_identifier} differs from "
                f"{primary.name}'s {primary.system_identifier}",
                f"re-clone it: pgherd node rejoin {name} --force-clone",
            )
        )
        return checks
    upstream = upstream_of(status, node_at)
    if upstream != primary.name:
        checks.append(
            failed(
                "target-upstream",
                f"{name} streams from {upstream or 'nowhere'}, not from the primary {primary.name}",
                f"point it at the primary first: pgherd standby follow {name}",
            )
        )
    elif not streaming_from(status, primary.name, node_at):
        checks.append(
            failed(
                "target-streaming",
                f"{name} is not streaming from {primary.name} right now",
                f"see {name}'s postgresql.log; pgherd doctor {name}",
            )
        )
    else:
        checks.append(passed("target-streaming", f"{name} streams from {primary.name}"))
    if status.timeline != primary.timeline:
        checks.append(
            failed(
                "timeline",
                f"{name} is on timeline {status.timeline}, {primary.name} on {primary.timeline}",
                f"let it catch up, or rejoin it: pgherd node rejoin {name}",
            )
        )
    if status.replay_paused:
        checks.append(
            failed(
                "replay-running",
                f"replay is paused on {name}",
                f"resume it: SELECT pg_wal_replay_resume() on {name}",
            )
        )
    checks.append(_lag(status, primary, max_lag))
    return checks


def _lag(status: NodeStatus, primary: NodeStatus, max_lag: int) -> Check:
    name = status.name
    if primary.current_lsn is None or status.replay_lsn is None:
        return failed(
            "lag",
            f"the replay position of {name} or the write position of {primary.name} is unknown",
        )
    behind = max(primary.current_lsn - status.replay_lsn, 0)
    numbers = (
        f"{name} has replayed up to {status.replay_lsn}, {behind} bytes ({mb(behind)}) "
        f"behind {primary.name} at {primary.current_lsn}"
    )
    if behind > max_lag:
        return failed(
            "lag",
            f"{numbers}; the limit is {max_lag} bytes ({mb(max_lag)})",
            "wait until it catches up (pgherd cluster show), or raise --max-lag",
        )
    return passed("lag", numbers)


def plan(assessment: SwitchoverAssessment, siblings_follow: bool, timeout: float) -> list[str]:
    """The steps a switchover takes, in order, as sentences for --dry-run and the log."""
    old = assessment.primary or "the primary"
    new = assessment.target
    steps = [
        f"create a replication slot for {old} on {new}"
        + (f" (and for {', '.join(assessment.siblings)})" if siblings_follow else ""),
        f"CHECKPOINT on {old}, so that its shutdown checkpoint is quick",
        f"stop {old} (fast shutdown: sessions end, shutdown checkpoint)",
        f"wait up to {timeout:g} s for {new} to replay {old}'s shutdown checkpoint; "
        f"if it does not, start {old} again as the primary and stop (nothing changed)",
        f"promote {new} (a new timeline begins)",
        f"restart {old} as a standby of {new} (pg_rewind only if its WAL diverged)",
    ]
    if assessment.siblings:
        if siblings_follow:
            steps.append(f"point {', '.join(assessment.siblings)} at {new}")
        else:
            steps.append(
                f"{', '.join(assessment.siblings)} will stream from {old} again (now a "
                f"cascading standby); --siblings-follow would point them at {new}"
            )
    steps.append("drop replication slots nobody streams from any more")
    return steps


def caught_up(shutdown_checkpoint: Lsn, replay_lsn: Lsn | None) -> bool:
    """Whether a standby has replayed a checkpoint record that starts at ``shutdown_checkpoint``
    (replay positions are record ends, so it must be strictly past the start)."""
    return replay_lsn is not None and replay_lsn > shutdown_checkpoint
