"""pg_rewind's output as PostgreSQL 15 prints it; events; sizes on the command line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pgherd.errors import InvalidInput
from pgherd.model.events import Event, Outcome
from pgherd.model.lsn import Lsn
from pgherd.model.size import parse_size
from pgherd.pg import rewind

REWOUND = """pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/4474988 on timeline 3
pg_rewind: rewinding from last common checkpoint at 0/4474918 on timeline 3
pg_rewind: reading source file list
pg_rewind: reading target file list
pg_rewind: reading WAL in target
pg_rewind: need to copy 101 MB (total source directory size is 138 MB)
pg_rewind: creating backup label and updating control file
pg_rewind: syncing target data directory
pg_rewind: Done!
"""

NOT_NEEDED = """pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/4028060 on timeline 1
pg_rewind: no rewind required
"""


def test_a_rewind_that_copied() -> None:
    out = rewind.parse_output(REWOUND)
    assert out == rewind.RewindOutput(True, Lsn.parse("0/4474988"), 3, 101, 138)


def test_a_rewind_that_was_not_needed() -> None:
    out = rewind.parse_output(NOT_NEEDED)
    assert not out.rewound
    assert out.diverged_at == Lsn.parse("0/4028060")


def test_missing_wal_is_recognised() -> None:
    assert rewind.missing_wal("pg_rewind: error: could not find previous WAL record at 0/3000028")
    assert not rewind.missing_wal("pg_rewind: error: connection refused")


def test_an_event_keeps_its_id_and_start_when_it_finishes() -> None:
    event = Event(operation="switchover", node="node2", requested_by="root@vm")
    assert event.outcome is Outcome.RUNNING
    assert event.seconds is None
    done = event.finish(Outcome.SUCCEEDED, "node2 is the primary", timeline=2, lsn=None)
    assert (done.id, done.started_at) == (event.id, event.started_at)
    assert done.details == {"timeline": "2"}
    assert done.seconds is not None
    assert done.seconds >= 0
    assert done.finished_at is not None
    assert done.finished_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("text", "size"),
    [("16MB", 16 * 1024**2), ("512kB", 512 * 1024), ("1GB", 1024**3), ("100", 100)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text, "--max-lag") == size


def test_a_bad_size_names_the_option() -> None:
    with pytest.raises(InvalidInput, match="--max-lag 'lots' is not a size"):
        parse_size("lots", "--max-lag")


def test_rewind_fetches_missing_wal_from_the_archive_only_when_there_is_one() -> None:
    from pathlib import Path

    from pgherd.pg.binaries import PgBin

    pgbin = PgBin(Path("/usr/lib/postgresql/15/bin"), 15, "15.18")
    plain = rewind.argv(pgbin, Path("/d"), "host=h")
    assert "--restore-target-wal" not in plain
    assert plain[:5] == [
        "/usr/lib/postgresql/15/bin/pg_rewind",
        "--target-pgdata",
        "/d",
        "--source-server",
        "host=h",
    ]
    assert rewind.argv(pgbin, Path("/d"), "host=h", restore_target_wal=True)[-1] == (
        "--restore-target-wal"
    )
