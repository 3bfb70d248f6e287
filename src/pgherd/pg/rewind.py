"""pg_rewind: its command line and what its output says.

pg_rewind connects to the source (the new primary) as the superuser over TCP, with the
passfile named in the connection string; the target must be shut down (PostgreSQL 13+
runs crash recovery on it first when it was not shut down cleanly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pgherd.model.lsn import Lsn
from pgherd.pg.binaries import PgBin

# pg_rewind lists the source's files with one recursive query (pg_ls_dir, pg_stat_file)
# whose row estimate (50 million) passes jit_above_cost: with JIT on (the default) the
# server compiles it first, 0.46 s of a 0.48 s query on a lab node, against 14 ms without.
SOURCE_SESSION_OPTIONS = "-c jit=off"

_TO_COPY = re.compile(r"need to copy (\d+) MB \(total source directory size is (\d+) MB\)")
_DIVERGED = re.compile(
    r"servers diverged at WAL location ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)", re.I
)


@dataclass(frozen=True)
class RewindOutput:
    rewound: bool
    diverged_at: Lsn | None
    diverged_timeline: int | None
    copied_mb: int | None = None  # what pg_rewind had to copy from the source
    source_mb: int | None = None  # the size of the source's data directory


def argv(
    pgbin: PgBin, target: Path, source_conninfo: str, restore_target_wal: bool = False
) -> list[str]:
    """``restore_target_wal``: fetch the WAL the target lacks with its own
    restore_command (from the archive) instead of failing for want of it."""
    args = [
        str(pgbin["pg_rewind"]),
        "--target-pgdata",
        str(target),
        "--source-server",
        source_conninfo,
        "--progress",
    ]
    if restore_target_wal:
        args.append("--restore-target-wal")
    return args


def parse_output(text: str) -> RewindOutput:
    """What pg_rewind reported (it writes its messages to stderr)."""
    match = _DIVERGED.search(text)
    diverged = Lsn.parse(match.group(1)) if match else None
    timeline = int(match.group(2)) if match else None
    not_needed = "no rewind required" in text
    sizes = _TO_COPY.search(text)
    return RewindOutput(
        rewound=not not_needed,
        diverged_at=diverged,
        diverged_timeline=timeline,
        copied_mb=int(sizes.group(1)) if sizes else None,
        source_mb=int(sizes.group(2)) if sizes else None,
    )


def missing_wal(stderr: str) -> bool:
    """pg_rewind failed because the target's WAL before the divergence is gone."""
    return "could not find previous WAL record" in stderr or "could not open file" in stderr
