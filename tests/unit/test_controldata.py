"""pg_controldata's report as PostgreSQL 15 prints it."""

from __future__ import annotations

import re

import pytest

from pgherd.model.lsn import Lsn
from pgherd.pg import controldata

# A standby's data directory after a clean shutdown, as pg_controldata 15 prints it.
PG15_OUTPUT = (
    """\
pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7642011472967116994
Database cluster state:               shut down in recovery
pg_control last modified:             Wed May 20 16:27:30 2026
Latest checkpoint location:           0/5000060
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's REDO WAL file:    000000020000000000000005
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:743
Latest checkpoint's NextOID:          16393
Latest checkpoint's NextMultiXactId:  1
Latest checkpoint's NextMultiOffset:  0
Latest checkpoint's oldestXID:        716
Latest checkpoint's oldestXID's DB:   1
Latest checkpoint's oldestActiveXID:  743
Latest checkpoint's oldestMultiXid:   1
Latest checkpoint's oldestMulti's DB: 1
Latest checkpoint's oldestCommitTsXid:716
Latest checkpoint's newestCommitTsXid:742
Time of latest checkpoint:            Wed May 20 16:27:29 2026
Fake LSN counter for unlogged rels:   0/3E8
Minimum recovery ending location:     0/5000110
Min recovery ending loc's timeline:   2
Backup start location:                0/0
Backup end location:                  0/0
End-of-backup record required:        no
wal_level setting:                    logical
wal_log_hints setting:                on
max_connections setting:              100
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       on
Maximum data alignment:               8
Database block size:                  8192
Blocks per segment of large relation: 131072
WAL block size:                       8192
Bytes per WAL segment:                16777216
Maximum length of identifiers:        64
Maximum columns in an index:          32
Maximum size of a TOAST chunk:        1996
Size of a large-object chunk:         2048
Date/time type storage:               64-bit integers
Float8 argument passing:              by value
Data page checksum version:           1
Mock authentication nonce:            """
    + "1ac5a5573661edc753938a3ae00c1de0627abb9f90164c6ff5e8fbc5084db297\n"
)


def _with(field: str, value: str, text: str = PG15_OUTPUT) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith(field + ":"):
            line = f"{field}:{' ' * max(1, 38 - len(field))}{value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _without(field: str) -> str:
    return "".join(
        line + "\n" for line in PG15_OUTPUT.splitlines() if not line.startswith(field + ":")
    )


def test_parse_reads_identity_position_and_settings() -> None:
    data = controldata.parse(PG15_OUTPUT)
    assert data.system_identifier == "7642011472967116994"
    assert data.cluster_state == "shut down in recovery"
    assert data.timeline == 2
    assert data.checkpoint_lsn == Lsn.parse("0/5000060")
    assert data.redo_lsn == Lsn.parse("0/5000028")
    assert data.min_recovery_end_lsn == Lsn.parse("0/5000110")
    assert data.min_recovery_end_timeline == 2
    assert data.data_checksums is True
    assert data.wal_log_hints is True
    assert data.wal_segment_size == 16 * 1024 * 1024


def test_parse_of_a_cluster_without_checksums_or_hints() -> None:
    text = _with("wal_log_hints setting", "off", _with("Data page checksum version", "0"))
    data = controldata.parse(text)
    assert data.data_checksums is False
    assert data.wal_log_hints is False


def test_parse_of_another_wal_segment_size() -> None:
    data = controldata.parse(_with("Bytes per WAL segment", "67108864"))
    assert data.wal_segment_size == 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("state", "in_recovery", "clean"),
    [
        ("in production", False, False),
        ("shut down", False, True),
        ("shut down in recovery", True, True),
        ("in archive recovery", True, False),
        ("in crash recovery", True, False),
        ("shutting down", False, False),
        ("starting up", False, False),
    ],
)
def test_cluster_states(state: str, in_recovery: bool, clean: bool) -> None:
    data = controldata.parse(_with("Database cluster state", state))
    assert data.cluster_state == state
    assert data.in_recovery is in_recovery
    assert data.cleanly_shut_down is clean


@pytest.mark.parametrize(
    "field",
    [
        "Database system identifier",
        "Database cluster state",
        "Latest checkpoint's TimeLineID",
        "Latest checkpoint location",
        "Minimum recovery ending location",
    ],
)
def test_a_missing_field_is_named(field: str) -> None:
    with pytest.raises(ValueError, match=f"pg_controldata output lacks .*{re.escape(field)}"):
        controldata.parse(_without(field))


def test_output_that_is_not_pg_controldata_is_refused() -> None:
    with pytest.raises(ValueError, match="pg_controldata output lacks"):
        controldata.parse('pg_controldata: fatal: could not open file "global/pg_control"\n')
