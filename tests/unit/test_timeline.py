"""Timeline histories and the follow/rewind/re-clone verdict, table-driven."""

from __future__ import annotations

import pytest

from pgherd.model.lsn import Lsn
from pgherd.model.node_ops import timeline_at
from pgherd.model.timeline import (
    History,
    Switch,
    Verdict,
    WalPosition,
    compare,
    history_file_name,
    parse_history,
)

L = Lsn.parse

# Timeline 1 ended at 0/4028060 (a switchover); timeline 2 at 0/5000000.
TL2 = History(2, (Switch(1, L("0/4028060")),))
TL3 = History(3, (Switch(1, L("0/4028060")), Switch(2, L("0/5000000"))))
# Another standby promoted separately from timeline 1, at another point, also called 2.
TL2_ELSEWHERE = History(2, (Switch(1, L("0/4100000")),))
TL1 = History(1)


def test_parse_a_history_file_as_postgresql_writes_it() -> None:
    text = (
        "1\t0/4028060\tno recovery target specified\n"
        "\n"
        "# a comment\n"
        "2\t0/5000000\tno recovery target specified\n"
    )
    history = parse_history(3, text)
    assert history == History(
        3,
        (
            Switch(1, L("0/4028060"), "no recovery target specified"),
            Switch(2, L("0/5000000"), "no recovery target specified"),
        ),
    )
    assert history.switch_of(2) == Switch(2, L("0/5000000"), "no recovery target specified")
    assert history.switch_of(3) is None
    assert history.contains(3)
    assert history.contains(1)
    assert not history.contains(4)


@pytest.mark.parametrize(
    ("timeline", "text", "problem"),
    [
        (2, "x\t0/1\n", "line 1"),
        (2, "1\tnot-an-lsn\n", "not an LSN"),
        (3, "2\t0/1\n1\t0/2\n", "must increase"),
        (2, "2\t0/1\n", "not older"),
    ],
)
def test_malformed_histories_are_refused(timeline: int, text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_history(timeline, text)


def test_history_file_names_are_eight_hex_digits() -> None:
    assert history_file_name(2) == "00000002.history"
    assert history_file_name(26) == "0000001A.history"


@pytest.mark.parametrize(
    ("lsn", "timeline"),
    [("0/3000000", 1), ("0/4028060", 1), ("0/4028061", 2), ("0/5000000", 2), ("0/6000000", 3)],
)
def test_timeline_at_a_replay_position(lsn: str, timeline: int) -> None:
    assert timeline_at(TL3, L(lsn)) == timeline


CASES = [
    # (what, node history, node position, upstream history, upstream end, verdict, at)
    (
        "a standby on the upstream's own timeline",
        TL2,
        WalPosition(2, L("0/5000000")),
        TL2,
        None,
        Verdict.FOLLOW,
        None,
    ),
    (
        "an old primary shut down cleanly; its checkpoint record was replayed",
        TL1,
        WalPosition(1, L("0/4027FD0"), exact=False),
        TL2,
        None,
        Verdict.FOLLOW,
        None,
    ),
    (
        "its shutdown checkpoint starts exactly where the upstream left: not replayed",
        TL1,
        WalPosition(1, L("0/4028060"), exact=False),
        TL2,
        None,
        Verdict.REWIND,
        L("0/4028060"),
    ),
    (
        "a standby that replayed exactly up to the switch point",
        TL1,
        WalPosition(1, L("0/4028060")),
        TL2,
        None,
        Verdict.FOLLOW,
        None,
    ),
    (
        "an old primary that wrote past the switch point",
        TL1,
        WalPosition(1, L("0/4494378")),
        TL2,
        None,
        Verdict.REWIND,
        L("0/4028060"),
    ),
    (
        "two promotions later, a node still on timeline 1 before the first switch",
        TL1,
        WalPosition(1, L("0/4000000")),
        TL3,
        L("0/6000000"),
        Verdict.FOLLOW,
        None,
    ),
    (
        "a node on timeline 2 past where the upstream left timeline 2",
        TL2,
        WalPosition(2, L("0/5000100")),
        TL3,
        None,
        Verdict.REWIND,
        L("0/5000000"),
    ),
    (
        "a node on a newer timeline than its upstream",
        TL3,
        WalPosition(3, L("0/6000000")),
        TL2,
        None,
        Verdict.REWIND,
        L("0/5000000"),
    ),
    (
        "a node past the primary's write position on the same timeline",
        TL2,
        WalPosition(2, L("0/7000000")),
        TL2,
        L("0/6000000"),
        Verdict.RECLONE,
        L("0/6000000"),
    ),
    (
        "ahead of a standby upstream on the same timeline: it catches up",
        TL2,
        WalPosition(2, L("0/7000000")),
        TL2,
        None,
        Verdict.FOLLOW,
        None,
    ),
    (
        "timeline 2 twice, from two separate promotions: pg_rewind cannot tell",
        TL2_ELSEWHERE,
        WalPosition(2, L("0/4200000")),
        TL2,
        None,
        Verdict.RECLONE,
        L("0/4028060"),
    ),
    (
        "histories forked on timeline 1, the node now on timeline 3",
        History(3, (Switch(1, L("0/4100000")), Switch(2, L("0/4200000")))),
        WalPosition(3, L("0/4300000")),
        TL2,
        None,
        Verdict.REWIND,
        L("0/4028060"),
    ),
]


@pytest.mark.parametrize(
    ("what", "node", "position", "upstream", "end", "verdict", "at"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_compare(
    what: str,
    node: History,
    position: WalPosition,
    upstream: History,
    end: Lsn | None,
    verdict: Verdict,
    at: Lsn | None,
) -> None:
    result = compare(node, position, upstream, end, "node1", "node2")
    assert result.verdict is verdict, result.reason
    assert result.diverged_at == at
    assert "node1" in result.reason


def test_an_unknown_end_of_wal_needs_pg_rewind_to_decide() -> None:
    result = compare(TL1, None, TL2, None, "node1", "node2")
    assert result.verdict is Verdict.REWIND
    assert "not shut down cleanly" in result.reason


def test_reasons_carry_the_positions() -> None:
    result = compare(TL1, WalPosition(1, L("0/4494378")), TL2, None, "node1", "node2")
    assert result.reason == (
        "node1 is at 0/4494378 on timeline 1, past 0/4028060 where node2 left timeline 1 "
        "for timeline 2"
    )
