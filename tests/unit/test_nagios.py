"""pgherd node check: the Nagios verdict of one node, table-driven (model/nagios.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pgherd.model.cluster import NodeRow
from pgherd.model.lsn import Lsn
from pgherd.model.nagios import ArchiveFacts, State, check
from pgherd.model.status import Desired, NodeStatus, PgState, Role, Slot

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PRIMARY = NodeStatus(
    name="node1",
    state=PgState.RUNNING,
    desired=Desired.RUNNING,
    role=Role.PRIMARY,
    timeline=1,
    current_lsn=Lsn(1 << 30),
    slots=(
        Slot(
            name="node2",
            slot_type="physical",
            active=True,
            restart_lsn=None,
            wal_status="reserved",
            retained_bytes=4096,
        ),
    ),
)
STANDBY = NodeStatus(
    name="node2", state=PgState.RUNNING, desired=Desired.RUNNING, role=Role.STANDBY, timeline=1
)
ROW = NodeRow("node2", Role.STANDBY, "streaming", "node1", 1, Lsn(1 << 30), 0, 0.0, None, None)
ARCHIVE = ArchiveFacts("on", 0, 1, None, NOW)


def slot(retained: int) -> Slot:
    return Slot(
        name="old",
        slot_type="physical",
        active=False,
        restart_lsn=None,
        wal_status="extended",
        retained_bytes=retained,
    )


@pytest.mark.parametrize(
    ("case", "status", "row", "archive", "state", "says"),
    [
        ("healthy primary", PRIMARY, None, ARCHIVE, State.OK, "node1 primary"),
        ("healthy standby", STANDBY, ROW, None, State.OK, "standby of node1, streaming"),
        (
            "lag warning",
            STANDBY,
            replace(ROW, lag_bytes=20 << 20),
            None,
            State.WARNING,
            "lag 20.0 MB",
        ),
        (
            "lag critical",
            STANDBY,
            replace(ROW, lag_bytes=300 << 20),
            None,
            State.CRITICAL,
            "critical above",
        ),
        ("lag in time", STANDBY, replace(ROW, lag_seconds=45.0), None, State.WARNING, "lag 45.0 s"),
        (
            "not streaming",
            STANDBY,
            replace(ROW, state="not streaming"),
            None,
            State.CRITICAL,
            "does not stream",
        ),
        (
            "slot warning",
            PRIMARY.model_copy(update={"slots": (slot(2 << 30),)}),
            None,
            ARCHIVE,
            State.WARNING,
            "slot old retains 2.0 GB",
        ),
        (
            "slot critical",
            PRIMARY.model_copy(update={"slots": (slot(9 << 30),)}),
            None,
            ARCHIVE,
            State.CRITICAL,
            "slot old",
        ),
        (
            "archive failing",
            PRIMARY,
            None,
            replace(ARCHIVE, failed_count=3, last_failed=NOW + timedelta(seconds=5)),
            State.CRITICAL,
            "archive_command fails",
        ),
        (
            "archive recovered",
            PRIMARY,
            None,
            replace(ARCHIVE, failed_count=3, last_failed=NOW - timedelta(hours=1)),
            State.OK,
            "node1 primary",
        ),
        (
            "archive queue",
            PRIMARY,
            None,
            replace(ARCHIVE, ready_count=50),
            State.WARNING,
            "50 (warning above 10)",
        ),
        (
            "postgres down",
            PRIMARY.model_copy(update={"state": PgState.CRASHED}),
            None,
            None,
            State.CRITICAL,
            "PostgreSQL is crashed",
        ),
        (
            "agent gone",
            NodeStatus(
                name="node3", state=PgState.UNREACHABLE, desired=Desired.RUNNING, error="refused"
            ),
            None,
            None,
            State.CRITICAL,
            "the agent does not answer",
        ),
    ],
)
def test_each_check(
    case: str,
    status: NodeStatus,
    row: NodeRow | None,
    archive: ArchiveFacts | None,
    state: State,
    says: str,
) -> None:
    result = check(status, row, archive)
    assert result.state is state, (case, result.summary)
    assert says in result.summary, (case, result.summary)
    assert result.line().startswith(f"PGHERD {state.name} - ")


def test_perfdata_follows_the_plugins_format() -> None:
    result = check(STANDBY, replace(ROW, lag_bytes=1234, lag_seconds=0.5), None)
    perf = result.line().split(" | ", 1)[1].split()
    pattern = re.compile(r"^'[a-z_]+'=-?[0-9.]+(B|s|c|%)?(;[0-9.]*){0,4}$")
    assert perf and all(pattern.match(p) for p in perf), perf
    assert "'lag'=1234B;16777216;268435456;0" in perf
    assert "'primary'=0" in perf
    archive = check(PRIMARY, None, ARCHIVE).line()
    assert "'archive_pending'=1;10;100;0" in archive and "'archive_failed'=0c;;;0" in archive


def test_the_worst_problem_comes_first() -> None:
    status = PRIMARY.model_copy(update={"slots": (slot(2 << 30),)})
    result = check(status, None, replace(ARCHIVE, last_failed=NOW + timedelta(seconds=1)))
    assert result.state is State.CRITICAL
    assert result.problems[0].startswith("archive_command fails")
    assert result.as_json()["exit_code"] == 2
