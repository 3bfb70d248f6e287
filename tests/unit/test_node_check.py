"""``pgherd node check`` reads the archiver's answer without pydantic as the agent's
model writes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pgherd.model.lsn import Lsn
from pgherd.ops.node_check import archive_facts
from pgherd.pg.archive_sql import ArchiverState


def state(**over: object) -> ArchiverState:
    fields: dict[str, object] = {
        "in_recovery": False,
        "archive_mode": "on",
        "current_lsn": Lsn.parse("0/5000060"),
        "current_segment": "000000010000000000000005",
        "timeline": 1,
        "archived_count": 4,
        "last_archived_wal": "000000010000000000000004",
        "last_archived_time": datetime(2026, 12, 6, 9, 0, 1, 250000, tzinfo=UTC),
        "failed_count": 2,
        "last_failed_wal": "000000010000000000000003",
        "last_failed_time": datetime(2026, 12, 6, 8, 59, tzinfo=UTC),
        "ready_count": 3,
    }
    return ArchiverState.model_validate(fields | over)


@pytest.mark.parametrize(
    "written",
    [state(), state(last_failed_time=None, last_archived_time=None, archive_mode="off")],
)
def test_the_archivers_answer_reads_as_the_model_wrote_it(written: ArchiverState) -> None:
    facts = archive_facts(json.loads(written.model_dump_json()))
    assert (facts.mode, facts.failed_count, facts.ready_count) == (
        written.archive_mode,
        written.failed_count,
        written.ready_count,
    )
    assert facts.last_failed == written.last_failed_time
    assert facts.last_archived == written.last_archived_time
    assert facts.failing is False


def test_what_is_not_an_archivers_answer() -> None:
    for doc in (
        {"archive_mode": "on"},
        ["x"],
        {**state().model_dump(mode="json"), "ready_count": "3"},
    ):
        with pytest.raises(ValueError, match=r"^not an archiver's state"):
            archive_facts(doc)
