"""pg_controldata's report, parsed: what a data directory says about itself, even stopped."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pgherd.model.lsn import Lsn
from pgherd.pg.binaries import PgBin
from pgherd.pg.osuser import OsUser
from pgherd.pg.run import run

# "Database cluster state" values that mean the server was (or is) in recovery.
RECOVERY_STATES = frozenset({"in archive recovery", "shut down in recovery", "in crash recovery"})


@dataclass(frozen=True)
class ControlData:
    system_identifier: str
    cluster_state: str
    timeline: int
    checkpoint_lsn: Lsn
    redo_lsn: Lsn
    min_recovery_end_lsn: Lsn
    min_recovery_end_timeline: int
    data_checksums: bool
    wal_log_hints: bool
    wal_segment_size: int
    next_xid: int  # the latest checkpoint's NextXID, without its epoch

    @property
    def in_recovery(self) -> bool:
        return self.cluster_state in RECOVERY_STATES

    @property
    def cleanly_shut_down(self) -> bool:
        return self.cluster_state in ("shut down", "shut down in recovery")


def parse_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def parse(text: str) -> ControlData:
    fields = parse_fields(text)
    try:
        return ControlData(
            system_identifier=fields["Database system identifier"],
            cluster_state=fields["Database cluster state"],
            timeline=int(fields["Latest checkpoint's TimeLineID"]),
            checkpoint_lsn=Lsn.parse(fields["Latest checkpoint location"]),
            redo_lsn=Lsn.parse(fields["Latest checkpoint's REDO location"]),
            min_recovery_end_lsn=Lsn.parse(fields["Minimum recovery ending location"]),
            min_recovery_end_timeline=int(fields["Min recovery ending loc's timeline"]),
            data_checksums=fields.get("Data page checksum version", "0") != "0",
            wal_log_hints=fields.get("wal_log_hints setting") == "on",
            wal_segment_size=int(fields.get("Bytes per WAL segment", str(16 * 1024 * 1024))),
            next_xid=int(fields.get("Latest checkpoint's NextXID", "0:0").split(":")[-1]),
        )
    except KeyError as missing:
        raise ValueError(f"pg_controldata output lacks {missing}") from None


def read(pgbin: PgBin, data_dir: Path, user: OsUser, timeout: float = 30) -> ControlData:
    """Run pg_controldata on ``data_dir`` (as ``user``) and parse its report."""
    return parse(run([pgbin["pg_controldata"], "-D", data_dir], user, timeout=timeout).stdout)


def read_system_identifier(data_dir: Path) -> str | None:
    """The system identifier stored first in ``global/pg_control`` (a native-endian
    uint64), read without running pg_controldata: cheap enough for every start."""
    try:
        with (data_dir / "global" / "pg_control").open("rb") as handle:
            raw = handle.read(8)
    except OSError:
        return None
    if len(raw) != 8:
        return None
    return str(int.from_bytes(raw, sys.byteorder))
