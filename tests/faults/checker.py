"""The fault suite's checker: pure rules over what clients were told and what the members
hold at the end. Each rule returns the violations it found, each with the exact excerpt of
the history that broke it, so that a failed run says what happened, not just that
something did.

The rules (docs/reliability.md states them as pgherd's promises):

- **kept**: every acknowledged write is on the final primary. Synchronous mode: always.
  Asynchronous mode: a write may be missing only if a primary that was later replaced
  acknowledged it at most ``async_window`` seconds before its last acknowledgement (what it
  took between the moment its standbys last received WAL and the moment it stopped
  taking writes); those are counted, never hidden;
- **one primary at a time**: no two primaries (a node on a timeline, as clients saw it)
  acknowledged writes in overlapping intervals: if a write on A was sent after a write on
  B was acknowledged, and a write on B was sent after a write on A was acknowledged, both
  took writes at once (split brain);
- **no phantom**: a write the server refused (an error reply) is nowhere;
- **members agree**: every member that streams from the final primary holds exactly its
  rows (of the writes in the history), once replay has caught up;
- **converged**: within ``bound`` seconds of the fault's end, one leader runs as the
  primary and every other member streams (from it, or down a cascade from it) or is
  reported failed with a reason;
- **archive** and **mesh**: ``backup verify`` found the archive continuous, ``mesh
  verify`` found the members equal (where a mesh runs).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tests.faults.history import Epoch, Outcome, Write

EXCERPT_LINES = 12


class Rule(StrEnum):
    KEPT = "acknowledged writes kept"
    ONE_PRIMARY = "one primary at a time"
    NO_PHANTOM = "no phantom writes"
    MEMBERS_AGREE = "members agree"
    CONVERGED = "converged"
    ARCHIVE = "archive continuous"
    MESH = "mesh equal"


class Mode(StrEnum):
    SYNC = "synchronous"
    ASYNC = "asynchronous"


@dataclass(frozen=True)
class Violation:
    rule: Rule
    message: str
    excerpt: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f"{self.rule}: {self.message}"]
        lines += [f"    {line}" for line in self.excerpt]
        return "\n".join(lines)


@dataclass(frozen=True)
class Interval:
    """Two primaries took writes at once, from ``start`` to ``end`` (wall seconds)."""

    first: Epoch
    second: Epoch
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


# ---- the members at the end --------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One member as the harness read it once the cluster settled."""

    name: str
    keys: frozenset[int] | None  # None: its rows could not be read (it is down)
    streaming: bool = False  # streams from the final primary (directly or down a cascade)
    reason: str | None = None  # why it is not streaming, as pgherd reports it


@dataclass(frozen=True)
class Final:
    primary: str
    timeline: int
    members: tuple[Member, ...]

    @property
    def epoch(self) -> Epoch:
        return Epoch(self.primary, self.timeline)

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)


# ---- what the harness saw while it waited for the cluster to settle -------------------------


@dataclass(frozen=True)
class MemberView:
    name: str
    role: str | None  # "primary", "standby", None (unknown)
    state: str  # "running", "streaming", "stopped", "unreachable"…
    upstream: str | None = None
    problem: str | None = None  # pgherd's reason when it is not well


@dataclass(frozen=True)
class Observation:
    at: float
    leader: str | None  # who holds the lease
    members: tuple[MemberView, ...]

    def line(self) -> str:
        parts = []
        for m in self.members:
            text = f"{m.name} {m.role or '?'} {m.state}"
            if m.upstream:
                text += f" ← {m.upstream}"
            if m.problem:
                text += f" ({m.problem})"
            parts.append(text)
        return f"leader {self.leader or 'none'}: " + "; ".join(parts)


# ---- the verdict --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    violations: tuple[Violation, ...]
    lost_in_window: int = 0  # asynchronous mode: acknowledged writes lost as documented
    overlaps: tuple[Interval, ...] = ()
    converged_after: float | None = None  # seconds from the fault's end

    lost: int = 0  # every acknowledged write missing from the final primary

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self) -> str:
        return "\n".join(str(v) for v in self.violations)


# ---- excerpts -----------------------------------------------------------------------------


@dataclass
class _Clock:
    """Times in excerpts, as seconds from the history's first write."""

    origin: float

    def at(self, t: float | None) -> str:
        return "never" if t is None else f"{t - self.origin:+.3f}s"

    def write(self, w: Write) -> str:
        if w.acked:
            told = f"acknowledged at {self.at(w.answered)} by {w.epoch}"
        elif w.outcome is Outcome.FAILED:
            told = f"refused at {self.at(w.answered)}: {w.error}"
        else:
            told = f"no answer ({w.error or 'connection lost'})"
        return f"key {w.key} [{w.client}] sent {self.at(w.sent)}, {told}"


def _clock(writes: Sequence[Write]) -> _Clock:
    return _Clock(min((w.sent for w in writes), default=0.0))


# ---- the rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lost:
    violations: list[Violation]
    missing: int = 0  # acknowledged writes not on the final primary
    in_window: int = 0  # of which lost as documented (asynchronous mode)


def kept(writes: Sequence[Write], final: Final, mode: Mode, async_window: float) -> Lost:
    """Acknowledged writes missing from the final primary; in asynchronous mode, how many
    of them were lost inside the documented window."""
    clock = _clock(writes)
    primary = final.member(final.primary)
    if primary.keys is None:
        return Lost([Violation(Rule.KEPT, f"the final primary {final.primary} could not be read")])
    missing = [w for w in writes if w.acked and w.key not in primary.keys]
    if not missing:
        return Lost([])
    if mode is Mode.SYNC:
        return Lost(
            [
                Violation(
                    Rule.KEPT,
                    f"{len(missing)} acknowledged writes are not on the final primary "
                    f"{final.epoch} (synchronous mode)",
                    tuple(clock.write(w) for w in missing[:EXCERPT_LINES]),
                )
            ],
            len(missing),
        )
    last_ack = _last_ack_by_epoch(writes)
    allowed: list[Write] = []
    broken: list[Write] = []
    for w in missing:
        epoch = w.epoch
        in_window = (
            epoch is not None
            and epoch != final.epoch
            and epoch.timeline < final.timeline
            and w.answered is not None
            and last_ack[epoch] - w.answered <= async_window
        )
        (allowed if in_window else broken).append(w)
    if not broken:
        return Lost([], len(missing), len(allowed))
    excerpt = []
    for w in broken[:EXCERPT_LINES]:
        epoch = w.epoch
        end = last_ack.get(epoch) if epoch is not None else None
        excerpt.append(f"{clock.write(w)}; its primary's last acknowledgement {clock.at(end)}")
    violation = Violation(
        Rule.KEPT,
        f"{len(broken)} acknowledged writes are not on the final primary {final.epoch} "
        f"and fall outside the asynchronous window ({async_window:g} s before their "
        "primary's last acknowledgement, on a primary that was replaced)",
        tuple(excerpt),
    )
    return Lost([violation], len(missing), len(allowed))


def _last_ack_by_epoch(writes: Iterable[Write]) -> dict[Epoch, float]:
    last: dict[Epoch, float] = {}
    for w in writes:
        epoch = w.epoch
        if epoch is not None and w.answered is not None:
            last[epoch] = max(last.get(epoch, w.answered), w.answered)
    return last


@dataclass
class _Reign:
    """What clients saw of one epoch: its first and last acknowledgement, the last write
    it acknowledged by send time."""

    first_ack: Write
    last_ack: Write
    last_sent: Write
    count: int = 0


def _reigns(writes: Iterable[Write]) -> dict[Epoch, _Reign]:
    reigns: dict[Epoch, _Reign] = {}
    for w in writes:
        epoch = w.epoch
        if epoch is None or w.answered is None:
            continue
        reign = reigns.get(epoch)
        if reign is None:
            reigns[epoch] = _Reign(w, w, w, 1)
            continue
        reign.count += 1
        if w.answered < (reign.first_ack.answered or 0.0):
            reign.first_ack = w
        if w.answered > (reign.last_ack.answered or 0.0):
            reign.last_ack = w
        if w.sent > reign.last_sent.sent:
            reign.last_sent = w
    return reigns


def one_primary_at_a_time(writes: Sequence[Write]) -> tuple[list[Violation], list[Interval]]:
    """Split brain, judged from what clients were told: epochs A and B overlap when A
    committed something after B committed something and B after A (a write's commit lies
    between its sending and its acknowledgement)."""
    clock = _clock(writes)
    reigns = _reigns(writes)
    epochs = sorted(reigns, key=lambda e: reigns[e].first_ack.answered or 0.0)
    violations: list[Violation] = []
    overlaps: list[Interval] = []
    for i, a in enumerate(epochs):
        for b in epochs[i + 1 :]:
            ra, rb = reigns[a], reigns[b]
            a_after_b = ra.last_sent.sent > (rb.first_ack.answered or 0.0)
            b_after_a = rb.last_sent.sent > (ra.first_ack.answered or 0.0)
            if not (a_after_b and b_after_a):
                continue
            start = max(ra.first_ack.answered or 0.0, rb.first_ack.answered or 0.0)
            end = min(ra.last_ack.answered or 0.0, rb.last_ack.answered or 0.0)
            interval = Interval(a, b, start, end)
            overlaps.append(interval)
            witnesses = sorted(
                {ra.first_ack, rb.first_ack, ra.last_sent, rb.last_sent}, key=lambda w: w.sent
            )
            violations.append(
                Violation(
                    Rule.ONE_PRIMARY,
                    f"{a} and {b} both acknowledged writes for {interval.seconds:.3f} s "
                    f"(from {clock.at(start)} to {clock.at(end)}): {a} acknowledged a write "
                    f"sent after {b} had acknowledged one, and the other way round",
                    tuple(clock.write(w) for w in witnesses),
                )
            )
    return violations, overlaps


def no_phantom(writes: Sequence[Write], final: Final) -> list[Violation]:
    """A write the server refused must be nowhere."""
    clock = _clock(writes)
    refused = [w for w in writes if w.outcome is Outcome.FAILED]
    found = []
    for member in final.members:
        if member.keys is None:
            continue
        found += [(member.name, w) for w in refused if w.key in member.keys]
    if not found:
        return []
    return [
        Violation(
            Rule.NO_PHANTOM,
            f"{len(found)} writes the server refused are present",
            tuple(f"on {name}: {clock.write(w)}" for name, w in found[:EXCERPT_LINES]),
        )
    ]


def members_agree(writes: Sequence[Write], final: Final) -> list[Violation]:
    """Every streaming member holds exactly the primary's rows (of this history's keys)."""
    primary = final.member(final.primary).keys
    if primary is None:
        return []
    ours = {w.key for w in writes}
    expected = primary & ours
    by_key = {w.key: w for w in writes}
    clock = _clock(writes)
    violations = []
    for member in final.members:
        if member.name == final.primary or not member.streaming or member.keys is None:
            continue
        have = member.keys & ours
        missing, extra = sorted(expected - have), sorted(have - expected)
        if not missing and not extra:
            continue
        excerpt = [f"missing {clock.write(by_key[k])}" for k in missing[: EXCERPT_LINES // 2]]
        excerpt += [f"extra {clock.write(by_key[k])}" for k in extra[: EXCERPT_LINES // 2]]
        violations.append(
            Violation(
                Rule.MEMBERS_AGREE,
                f"{member.name} streams from {final.primary} but lacks {len(missing)} of its "
                f"rows and has {len(extra)} it does not",
                tuple(excerpt),
            )
        )
    return violations


def settled(observation: Observation) -> bool:
    """One leader runs as the only primary; every other member streams from it (directly
    or down a cascade) or is reported failed with a reason."""
    leader = observation.leader
    rows = {m.name: m for m in observation.members}
    primaries = [m.name for m in observation.members if _runs_as_primary(m)]
    if leader is None or primaries != [leader]:
        return False
    for m in observation.members:
        if m.name == leader:
            continue
        if _streams_from(m, leader, rows):
            continue
        if m.problem and not _runs_as_primary(m):
            continue
        return False
    return True


def whole(observation: Observation) -> bool:
    """Settled with nobody failed: one leader, every other member streaming."""
    if not settled(observation) or observation.leader is None:
        return False
    rows = {m.name: m for m in observation.members}
    return all(
        m.name == observation.leader or _streams_from(m, observation.leader, rows)
        for m in observation.members
    )


def _runs_as_primary(m: MemberView) -> bool:
    return m.role == "primary" and m.state == "running"


def _streams_from(m: MemberView, leader: str, rows: dict[str, MemberView]) -> bool:
    seen = {m.name}
    while m.state == "streaming" and m.upstream is not None:
        if m.upstream == leader:
            return True
        upstream = rows.get(m.upstream)
        if upstream is None or upstream.name in seen:
            return False
        seen.add(upstream.name)
        m = upstream
    return False


def converged(
    observations: Sequence[Observation], since: float, bound: float
) -> tuple[list[Violation], float | None]:
    """How long after ``since`` the cluster first looked settled; a violation when it did
    not within ``bound`` seconds (or never, in what was observed)."""
    after = [o for o in observations if o.at >= since]
    for o in after:
        if settled(o):
            took = o.at - since
            if took <= bound:
                return [], took
            return [
                Violation(
                    Rule.CONVERGED,
                    f"the cluster settled {took:.1f} s after the fault ended, more than "
                    f"{bound:g} s",
                    tuple(f"{x.at - since:+.1f}s {x.line()}" for x in _spread(after, o)),
                )
            ], took
    return [
        Violation(
            Rule.CONVERGED,
            f"the cluster did not settle within {bound:g} s of the fault's end",
            tuple(f"{x.at - since:+.1f}s {x.line()}" for x in after[-EXCERPT_LINES:]),
        )
    ], None


def _spread(observations: Sequence[Observation], last: Observation) -> list[Observation]:
    """The observations up to ``last``, thinned to the excerpt's size (always the last)."""
    upto = [o for o in observations if o.at <= last.at]
    if len(upto) <= EXCERPT_LINES:
        return upto
    step = len(upto) / (EXCERPT_LINES - 1)
    picked = [upto[int(i * step)] for i in range(EXCERPT_LINES - 1)]
    return [*picked, last]


def archive_continuous(ok: bool, detail: str) -> list[Violation]:
    """``pgherd backup verify`` (with the WAL a restore needs): its verdict and message."""
    if ok:
        return []
    return [Violation(Rule.ARCHIVE, "backup verify found the archive broken", (detail,))]


def mesh_equal(ok: bool, detail: str) -> list[Violation]:
    """``pgherd mesh verify``: its verdict and message."""
    if ok:
        return []
    return [Violation(Rule.MESH, "mesh verify found the members' tables different", (detail,))]


# ---- everything at once -------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """What one run gives the checker."""

    writes: tuple[Write, ...]
    final: Final
    mode: Mode
    async_window: float
    observations: tuple[Observation, ...] = ()
    healed_at: float | None = None  # the fault's end: convergence counts from here
    converge_within: float = 120.0
    extra: tuple[Violation, ...] = field(default=())  # archive, mesh: judged by the harness


def check(run: Check) -> Verdict:
    lost = kept(run.writes, run.final, run.mode, run.async_window)
    violations = list(lost.violations)
    split, overlaps = one_primary_at_a_time(run.writes)
    violations += split
    violations += no_phantom(run.writes, run.final)
    violations += members_agree(run.writes, run.final)
    took = None
    if run.healed_at is not None:
        late, took = converged(run.observations, run.healed_at, run.converge_within)
        violations += late
    violations += run.extra
    return Verdict(tuple(violations), lost.in_window, tuple(overlaps), took, lost.missing)


# ---- what clients felt --------------------------------------------------------------------


def longest_wait(writes: Sequence[Write], since: float, until: float) -> float:
    """The longest time any one client went without an acknowledged write between
    ``since`` and ``until``: a failover's write unavailability as an application feels
    it (failed writes, and writes that hung, alike)."""
    by_client: dict[str, list[float]] = defaultdict(list)
    for w in writes:
        if w.acked and w.answered is not None:
            by_client[w.client].append(w.answered)
    worst = 0.0
    clients = {w.client for w in writes}
    for client in clients:
        acks = sorted(t for t in by_client.get(client, []) if since <= t <= until)
        marks = [since, *acks, until]
        worst = max(worst, max(b - a for a, b in itertools.pairwise(marks)))
    return worst
