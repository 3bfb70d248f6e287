"""Timelines: whether a node's WAL is a prefix of an upstream's, so that it can follow it.

PostgreSQL starts a new timeline at every promotion and writes a history file
(``00000002.history``) with one line per earlier timeline: its ID, the LSN where it ended
(the switch point) and why. A standby can stream from an upstream only if everything it
has replayed is also in the upstream's past: its timeline must be in the upstream's
history and its position must not be past the point where the upstream left that timeline
("new timeline 2 forked off current database system timeline 1 before current recovery
point"). A node that went past that point has diverged: pg_rewind (or a new clone) must
bring it back first.

pg_rewind itself decides from the two servers' control files; in PostgreSQL 15 it reports
"same timeline, no rewind required" whenever both are on the same timeline *ID*, even when
two standbys were promoted separately and each numbered its new timeline 2. Comparing the
whole histories here catches that case, which only a new clone repairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pgherd.model.lsn import Lsn


@dataclass(frozen=True)
class Switch:
    """One line of a history file: ``timeline`` ended at ``lsn`` (the next one began there)."""

    timeline: int
    lsn: Lsn
    reason: str = ""


@dataclass(frozen=True)
class History:
    """A node's newest timeline and the switches that led to it (oldest first)."""

    timeline: int
    switches: tuple[Switch, ...] = ()

    def switch_of(self, timeline: int) -> Switch | None:
        """Where ``timeline`` ended in this history; None if it did not (or never existed)."""
        for switch in self.switches:
            if switch.timeline == timeline:
                return switch
        return None

    def contains(self, timeline: int) -> bool:
        return timeline == self.timeline or self.switch_of(timeline) is not None


def history_file_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


def parse_history(timeline: int, text: str) -> History:
    """The history of ``timeline`` from its history file's text (empty for timeline 1).

    Lines are ``<parent timeline> <switch LSN> <reason>`` separated by tabs; comments and
    blank lines are allowed, as PostgreSQL's own reader allows them.
    """
    switches: list[Switch] = []
    for number, line in enumerate(text.splitlines(), start=1):
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        fields = body.split(None, 2)
        if len(fields) < 2 or not fields[0].isdigit():
            raise ValueError(f"history of timeline {timeline}, line {number}: {line!r}")
        parent = int(fields[0])
        if switches and parent <= switches[-1].timeline:
            raise ValueError(
                f"history of timeline {timeline}, line {number}: timeline IDs must increase"
            )
        reason = fields[2].strip() if len(fields) > 2 else ""
        switches.append(Switch(parent, Lsn.parse(fields[1]), reason))
    if switches and switches[-1].timeline >= timeline:
        raise ValueError(
            f"history of timeline {timeline} lists timeline {switches[-1].timeline}, "
            "which is not older"
        )
    return History(timeline, tuple(switches))


@dataclass(frozen=True)
class WalPosition:
    """How far a node's WAL goes, on which timeline.

    ``exact``: ``lsn`` is the end of the node's WAL (a running server's replay or write
    position). Otherwise a record *starts* at ``lsn`` (a cleanly shut down primary's
    shutdown checkpoint) and the WAL ends a little after it.
    """

    timeline: int
    lsn: Lsn
    exact: bool = True

    def past(self, point: Lsn) -> bool:
        """Whether the node has WAL beyond ``point``."""
        return self.lsn > point if self.exact else self.lsn >= point

    def __str__(self) -> str:
        return f"{self.lsn} on timeline {self.timeline}"


class Verdict(StrEnum):
    FOLLOW = "follow"  # the node's WAL is a prefix of the upstream's: it can stream from it
    REWIND = "rewind"  # diverged: pg_rewind can bring it back
    RECLONE = "reclone"  # diverged in a way pg_rewind cannot see: only a new copy helps


@dataclass(frozen=True)
class Divergence:
    verdict: Verdict
    reason: str
    diverged_at: Lsn | None = None

    @property
    def can_follow(self) -> bool:
        return self.verdict is Verdict.FOLLOW


def compare(
    node: History,
    position: WalPosition | None,
    upstream: History,
    upstream_end: Lsn | None = None,
    node_name: str = "the node",
    upstream_name: str = "the upstream",
    unknown: str = "it was not shut down cleanly",
) -> Divergence:
    """Can a node whose newest history is ``node`` and whose WAL reaches ``position`` stream
    from ``upstream``?

    ``position`` None means the end of the node's WAL is unknown (``unknown`` says why:
    it crashed, or it is a standby that lost its upstream); shut down, its control file
    tells, and pg_rewind (which runs crash recovery first) finds out. ``upstream_end``
    is the upstream's write position when it is a primary (a standby upstream may still be
    catching up, so being ahead of it on the same timeline is not divergence).
    """
    if position is None:
        return Divergence(
            Verdict.REWIND,
            f"where {node_name}'s WAL ends is unknown: {unknown}",
        )
    tli = position.timeline
    # Every timeline the node left before its current one must have ended at the same
    # point in the upstream's history.
    for switch in node.switches:
        if switch.timeline >= tli:
            break
        theirs = upstream.switch_of(switch.timeline)
        if theirs is not None and theirs.lsn == switch.lsn:
            continue
        return _forked_earlier(node, position, upstream, switch, theirs, node_name, upstream_name)
    if tli == upstream.timeline:
        if upstream_end is not None and position.past(upstream_end):
            return Divergence(
                Verdict.RECLONE,
                f"{node_name} is at {position}, past {upstream_name}'s write position "
                f"{upstream_end} on the same timeline: its WAL is not {upstream_name}'s",
                upstream_end,
            )
        return Divergence(
            Verdict.FOLLOW, f"{node_name} is on {upstream_name}'s timeline {tli} at {position.lsn}"
        )
    ended = upstream.switch_of(tli)
    if ended is None:
        return Divergence(
            Verdict.REWIND,
            f"{node_name}'s timeline {tli} is not in the history of {upstream_name}'s "
            f"timeline {upstream.timeline}",
        )
    if position.past(ended.lsn):
        return Divergence(
            Verdict.REWIND,
            f"{node_name} is at {position}, past {ended.lsn} where {upstream_name} left "
            f"timeline {tli} for timeline {_next_after(upstream, tli)}",
            ended.lsn,
        )
    return Divergence(
        Verdict.FOLLOW,
        f"{node_name} is at {position}, not past {ended.lsn} where {upstream_name} "
        f"left timeline {tli}",
    )


def _next_after(history: History, timeline: int) -> int:
    """The timeline that followed ``timeline`` in ``history``."""
    later = [s.timeline for s in history.switches if s.timeline > timeline]
    return min(later) if later else history.timeline


def _forked_earlier(
    node: History,
    position: WalPosition,
    upstream: History,
    mine: Switch,
    theirs: Switch | None,
    node_name: str,
    upstream_name: str,
) -> Divergence:
    if theirs is None:
        if upstream.timeline == mine.timeline:
            at = mine.lsn
            what = (
                f"{node_name} left timeline {mine.timeline} at {mine.lsn} for timeline "
                f"{_next_after(node, mine.timeline)}; {upstream_name} is still on timeline "
                f"{mine.timeline}"
            )
        else:
            at = None
            what = (
                f"{node_name} went through timeline {mine.timeline}, which is not in "
                f"{upstream_name}'s history"
            )
        return Divergence(Verdict.REWIND, what, at)
    at = min(mine.lsn, theirs.lsn)
    what = (
        f"{node_name} left timeline {mine.timeline} at {mine.lsn}, {upstream_name} at "
        f"{theirs.lsn}: their histories diverged at {at}"
    )
    if position.timeline == upstream.timeline:
        return Divergence(
            Verdict.RECLONE,
            f"{what}, yet both now call their timeline {upstream.timeline} "
            "(two separate promotions): pg_rewind cannot tell them apart",
            at,
        )
    return Divergence(Verdict.REWIND, what, at)
