"""The fault suite's checker on hand-made histories: clean failovers pass, and every rule
fails on a history that breaks it, with the excerpt that shows how."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import checker
from tests.faults.checker import (
    Check,
    Final,
    Member,
    MemberView,
    Mode,
    Observation,
    Rule,
    check,
    converged,
    kept,
    longest_wait,
    members_agree,
    no_phantom,
    one_primary_at_a_time,
    settled,
)
from tests.faults.history import Epoch, Outcome, Write, read

T0 = 1_000_000.0


def ack(
    key: int, sent: float, server: str, timeline: int, took: float = 0.01, client: str = "uri"
) -> Write:
    return Write(key, client, T0 + sent, T0 + sent + took, Outcome.ACKED, server, timeline)


def lost_answer(key: int, sent: float, client: str = "uri") -> Write:
    return Write(
        key, client, T0 + sent, None, Outcome.UNKNOWN, error="server closed the connection"
    )


def refused(key: int, sent: float, client: str = "uri") -> Write:
    return Write(
        key, client, T0 + sent, T0 + sent + 0.01, Outcome.FAILED, error="read-only transaction"
    )


def final(primary: str, timeline: int, **keys: set[int] | None) -> Final:
    members = tuple(
        Member(name, None if got is None else frozenset(got), streaming=name != primary)
        for name, got in keys.items()
    )
    return Final(primary, timeline, members)


# A clean failover: node1 acknowledges 1-3, a write is lost in flight, node2 takes over on
# timeline 2 and acknowledges 5-6. Every acknowledged write is on node2 and node3.
CLEAN = (
    ack(1, 0.0, "node1", 1),
    ack(2, 0.1, "node1", 1),
    ack(3, 0.2, "node1", 1),
    lost_answer(4, 0.3),
    refused(7, 3.0),
    ack(5, 3.5, "node2", 2),
    ack(6, 3.6, "node2", 2),
)
CLEAN_FINAL = final("node2", 2, node2={1, 2, 3, 5, 6}, node3={1, 2, 3, 5, 6}, node1={1, 2, 3, 5, 6})


def test_a_clean_failover_passes_every_rule() -> None:
    verdict = check(Check(CLEAN, CLEAN_FINAL, Mode.SYNC, async_window=3.0))
    assert verdict.ok, verdict.report()
    assert verdict.lost == 0 and verdict.overlaps == ()


def test_an_unanswered_write_may_be_there_or_not() -> None:
    with_it = final("node2", 2, node2={1, 2, 3, 4, 5, 6})
    assert check(Check(CLEAN, with_it, Mode.SYNC, 3.0)).ok


def test_sync_mode_loses_nothing_acknowledged() -> None:
    gone = final("node2", 2, node2={1, 2, 5, 6})
    found = kept(CLEAN, gone, Mode.SYNC, async_window=3.0)
    assert found.missing == 1
    (violation,) = found.violations
    assert violation.rule is Rule.KEPT
    assert "1 acknowledged writes are not on the final primary node2 (timeline 2)" in str(violation)
    assert "key 3 [uri] sent +0.200s, acknowledged at +0.210s by node1 (timeline 1)" in str(
        violation
    )


def test_async_mode_counts_losses_inside_the_window() -> None:
    gone = final("node2", 2, node2={1, 5, 6})
    found = kept(CLEAN, gone, Mode.ASYNC, async_window=3.0)
    assert found.violations == [] and found.missing == 2 and found.in_window == 2


def test_async_mode_refuses_a_loss_older_than_the_window() -> None:
    history = (ack(1, 0.0, "node1", 1), *CLEAN[1:])
    gone = final("node2", 2, node2={2, 3, 5, 6})
    found = kept(history, gone, Mode.ASYNC, async_window=0.15)
    (violation,) = found.violations
    assert "outside the asynchronous window (0.15 s" in violation.message
    assert "key 1 [uri]" in violation.excerpt[0]
    assert "its primary's last acknowledgement +0.210s" in violation.excerpt[0]


def test_async_mode_never_forgives_a_loss_on_the_final_primary() -> None:
    gone = final("node2", 2, node2={1, 2, 3, 6})
    found = kept(CLEAN, gone, Mode.ASYNC, async_window=100)
    assert len(found.violations) == 1 and "key 5" in found.violations[0].excerpt[0]


def test_a_handover_is_not_split_brain() -> None:
    violations, overlaps = one_primary_at_a_time(CLEAN)
    assert violations == [] and overlaps == []


def test_the_same_node_on_two_timelines_in_turn_is_two_reigns_not_split_brain() -> None:
    history = (*CLEAN, ack(8, 10.0, "node1", 3), ack(9, 10.1, "node1", 3))
    assert one_primary_at_a_time(history) == ([], [])


def test_two_primaries_taking_writes_at_once_is_split_brain() -> None:
    # node1 keeps acknowledging a second client's writes after node2 acknowledged its first.
    history = (
        ack(1, 0.0, "node1", 1),
        ack(2, 0.1, "node1", 1),
        ack(5, 3.5, "node2", 2),
        ack(3, 3.6, "node1", 1, client="haproxy"),
        ack(6, 3.7, "node2", 2),
    )
    violations, overlaps = one_primary_at_a_time(history)
    (interval,) = overlaps
    assert {interval.first, interval.second} == {Epoch("node1", 1), Epoch("node2", 2)}
    assert interval.seconds == pytest.approx(0.1, abs=1e-6)
    (violation,) = violations
    assert violation.rule is Rule.ONE_PRIMARY
    text = str(violation)
    assert "node1 (timeline 1) and node2 (timeline 2) both acknowledged writes" in text
    assert "key 3 [haproxy] sent +3.600s, acknowledged at +3.610s by node1 (timeline 1)" in text
    assert "key 5 [uri] sent +3.500s, acknowledged at +3.510s by node2 (timeline 2)" in text


def test_a_write_sent_to_the_old_primary_before_the_new_one_acknowledged_is_no_overlap() -> None:
    # Sent at 3.4 to node1, acknowledged late (3.55), after node2's first ack (3.51): its
    # commit may have come before node2's, so nothing proves two primaries at once.
    history = (
        ack(1, 0.0, "node1", 1),
        ack(2, 3.4, "node1", 1, took=0.15),
        ack(5, 3.5, "node2", 2),
    )
    assert one_primary_at_a_time(history) == ([], [])


def test_a_refused_write_must_be_nowhere() -> None:
    phantom = final("node2", 2, node2={1, 2, 3, 5, 6}, node3={1, 2, 3, 5, 6, 7})
    (violation,) = no_phantom(CLEAN, phantom)
    assert violation.rule is Rule.NO_PHANTOM
    assert "on node3: key 7 [uri] sent +3.000s, refused at +3.010s: read-only transaction" in str(
        violation
    )


def test_a_streaming_member_must_hold_the_primarys_rows_exactly() -> None:
    diverged = final("node2", 2, node2={1, 2, 3, 5, 6}, node1={1, 2, 3, 4, 5})
    (violation,) = members_agree(CLEAN, diverged)
    assert "node1 streams from node2 but lacks 1 of its rows and has 1 it does not" in str(
        violation
    )
    assert "missing key 6" in violation.excerpt[0]
    assert "extra key 4" in violation.excerpt[1]


def test_a_member_that_is_down_is_not_compared() -> None:
    down = final("node2", 2, node2={1, 2, 3, 5, 6}, node1=None)
    assert members_agree(CLEAN, down) == []


def view(
    leader: str | None, *rows: tuple[str, str | None, str, str | None, str | None]
) -> tuple[str | None, tuple[MemberView, ...]]:
    return leader, tuple(MemberView(*row) for row in rows)


HEALTHY = view(
    "node2",
    ("node1", "standby", "streaming", "node2", None),
    ("node2", "primary", "running", None, None),
    ("node3", "standby", "streaming", "node1", None),  # a cascade through node1
)
ONE_DOWN = view(
    "node2",
    ("node1", None, "unreachable", None, "the agent does not answer"),
    ("node2", "primary", "running", None, None),
    ("node3", "standby", "streaming", "node2", None),
)
TWO_PRIMARIES = view(
    "node2",
    ("node1", "primary", "running", None, "runs as a primary without the lease"),
    ("node2", "primary", "running", None, None),
    ("node3", "standby", "streaming", "node2", None),
)
CATCHING_UP = view(
    "node2",
    ("node1", "standby", "running", "node2", None),
    ("node2", "primary", "running", None, None),
    ("node3", "standby", "streaming", "node2", None),
)


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (HEALTHY, True),
        (ONE_DOWN, True),
        (TWO_PRIMARIES, False),
        (CATCHING_UP, False),
        ((None, HEALTHY[1]), False),
    ],
)
def test_settled(seen: tuple[str | None, tuple[MemberView, ...]], expected: bool) -> None:
    assert settled(Observation(0.0, *seen)) is expected


def test_converged_within_the_bound() -> None:
    seen = [
        Observation(T0 + 1, *TWO_PRIMARIES),
        Observation(T0 + 4, *CATCHING_UP),
        Observation(T0 + 7, *HEALTHY),
    ]
    assert converged(seen, T0, bound=10) == ([], 7.0)
    (violation,), took = converged(seen, T0, bound=5)
    assert took == 7.0
    assert "settled 7.0 s after the fault ended, more than 5 s" in violation.message
    assert "+1.0s leader node2: node1 primary running (runs as a primary" in violation.excerpt[0]


def test_never_converged_shows_the_last_views() -> None:
    seen = [Observation(T0 + i, *CATCHING_UP) for i in range(20)]
    (violation,), took = converged(seen, T0, bound=30)
    assert took is None and len(violation.excerpt) == checker.EXCERPT_LINES
    assert "node1 standby running ← node2" in violation.excerpt[-1]


def test_archive_and_mesh_verdicts_are_carried_through() -> None:
    extra = (
        *checker.archive_continuous(False, "WAL 000000010000000000000004 missing"),
        *checker.mesh_equal(True, ""),
    )
    verdict = check(Check(CLEAN, CLEAN_FINAL, Mode.SYNC, 3.0, extra=extra))
    assert [v.rule for v in verdict.violations] == [Rule.ARCHIVE]
    assert "000000010000000000000004" in verdict.report()


def test_longest_wait_is_the_worst_client_gap() -> None:
    history = (
        ack(1, 0.0, "node1", 1),
        ack(2, 0.0, "node1", 1, client="haproxy"),
        ack(3, 1.0, "node1", 1),
        ack(4, 2.0, "node2", 2),
        ack(5, 4.0, "node2", 2, client="haproxy"),
    )
    assert longest_wait(history, T0, T0 + 5) == pytest.approx(4.0)  # haproxy: 0.01 → 4.01


def test_history_lines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "uri.jsonl"
    path.write_text("".join(w.to_json() + "\n" for w in reversed(CLEAN)))
    assert read([path, tmp_path / "absent.jsonl"]) == CLEAN
