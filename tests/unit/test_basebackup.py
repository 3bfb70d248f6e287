"""pg_basebackup's command line and the progress lines it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd.pg import basebackup
from pgherd.pg.basebackup import Progress
from pgherd.pg.binaries import PgBin

PGBIN = PgBin(Path("/usr/lib/postgresql/15/bin"), 15, "15.18")
CONNINFO = "host=127.0.0.1 port=5441 user=replicator passfile=/var/tmp/lab/secrets/pgpass"


def test_argv_streams_wal_with_a_fast_checkpoint_and_never_prompts() -> None:
    args = basebackup.argv(PGBIN, CONNINFO, Path("/var/tmp/lab/n2/data"), None, False)
    assert args[0] == "/usr/lib/postgresql/15/bin/pg_basebackup"
    assert args[args.index("--dbname") + 1] == CONNINFO
    assert args[args.index("--pgdata") + 1] == "/var/tmp/lab/n2/data"
    for flag in ("--wal-method=stream", "--checkpoint=fast", "--progress", "--no-password"):
        assert flag in args
    assert "--slot" not in args
    assert "--create-slot" not in args
    assert not any("password=" in arg for arg in args)


@pytest.mark.parametrize(
    ("slot", "create", "tail"),
    [
        ("node2", False, ["--slot", "node2"]),
        ("node2", True, ["--slot", "node2", "--create-slot"]),
        (None, True, []),  # no slot: nothing to create
        (None, False, []),
    ],
)
def test_argv_slot_options(slot: str | None, create: bool, tail: list[str]) -> None:
    without = basebackup.argv(PGBIN, CONNINFO, Path("/d"), None, False)
    assert basebackup.argv(PGBIN, CONNINFO, Path("/d"), slot, create) == without + tail


def test_argv_appends_extra_options_last() -> None:
    args = basebackup.argv(PGBIN, CONNINFO, Path("/d"), "node2", True, ("--verbose",))
    assert args[-4:] == ["--slot", "node2", "--create-slot", "--verbose"]


@pytest.mark.parametrize(
    ("line", "progress"),
    [
        ("  1234/56789 kB (2%), 0/1 tablespace", Progress(1234 * 1024, 56789 * 1024)),
        ("     0/22945 kB (0%), 0/1 tablespace\n", Progress(0, 22945 * 1024)),
        (
            "22954/22954 kB (100%), 1/1 tablespace                                         ",
            Progress(22954 * 1024, 22954 * 1024),
        ),
        (
            "  1234/56789 kB (2%), 0/1 tablespace (/var/tmp/lab/n2/data/base/5/1259)",
            Progress(1234 * 1024, 56789 * 1024),
        ),
        (
            # the size is an estimate: pg_basebackup may copy more than it announced
            "57000/56789 kB (100%), 1/1 tablespace",
            Progress(57000 * 1024, 57000 * 1024),
        ),
    ],
)
def test_parse_progress(line: str, progress: Progress) -> None:
    assert basebackup.parse_progress(line) == progress


@pytest.mark.parametrize(
    "line",
    [
        "",
        "pg_basebackup: initiating base backup, waiting for checkpoint to complete",
        "pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1",
        "pg_basebackup: starting background WAL receiver",
        'pg_basebackup: created replication slot "node2"',
        "pg_basebackup: error: could not connect to server: Connection refused",
    ],
)
def test_other_lines_are_not_progress(line: str) -> None:
    assert basebackup.parse_progress(line) is None
