"""The monitoring history of one node: a small sqlite file in the node's home.

Why sqlite beside the node rather than a table in PostgreSQL: a standby cannot write to
its own database, samples written on the primary would themselves be WAL that every
standby must replay (the measurement would move what it measures), and the history must
survive, and keep being written, while PostgreSQL is down or being replaced by a clone.
The file is the agent's alone (mode 0600); the console reads it through ``GET /history``.

The store is bounded by time: the sampler trims what is older than ``history.keep_days``
once an hour, and ``pgherd cluster cleanup --keep-days N`` trims on demand. At the
default 5 s interval, a standby costs about 17,000 rows (~1.5 MB) a day.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pgherd.config_lite import DataNode
from pgherd.model.history import MAX_LIMIT, Sample, SampleKind

FILE_NAME = "history.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT,
    lag_bytes INTEGER,
    lag_seconds REAL,
    write_lag_bytes INTEGER,
    flush_lag_bytes INTEGER,
    write_lag_seconds REAL,
    flush_lag_seconds REAL
);
CREATE INDEX IF NOT EXISTS samples_at ON samples (at);
CREATE INDEX IF NOT EXISTS samples_stream ON samples (kind, subject, at);
"""
_COLUMNS = (
    "at, kind, subject, state, lag_bytes, lag_seconds, write_lag_bytes, flush_lag_bytes, "
    "write_lag_seconds, flush_lag_seconds"
)


def path_for(node: DataNode) -> Path:
    return node.home_dir / FILE_NAME


class HistoryStore:
    """Samples in a sqlite file; a connection per call (the sampler thread writes, API
    threads read; WAL journaling lets readers run beside the writer)."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self._ready = False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._create()
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _create(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        finally:
            conn.close()
        self._ready = True

    def add(self, samples: Iterable[Sample]) -> int:
        rows = [
            (
                s.at.timestamp(),
                str(s.kind),
                s.subject,
                s.state,
                s.lag_bytes,
                s.lag_seconds,
                s.write_lag_bytes,
                s.flush_lag_bytes,
                s.write_lag_seconds,
                s.flush_lag_seconds,
            )
            for s in samples
        ]
        if rows:
            with self._connect() as conn:
                conn.executemany(
                    f"INSERT INTO samples ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                    rows,
                )
        return len(rows)

    def read(
        self,
        since: datetime | None = None,
        kind: SampleKind | None = None,
        subject: str | None = None,
        limit: int = 10_000,
    ) -> list[Sample]:
        """The newest ``limit`` samples matching, returned oldest first."""
        where: list[str] = []
        params: list[object] = []
        if since is not None:
            where.append("at >= ?")
            params.append(since.timestamp())
        if kind is not None:
            where.append("kind = ?")
            params.append(str(kind))
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (
            f"SELECT {_COLUMNS} FROM samples {clause} "  # noqa: S608 (fixed column names)
            "ORDER BY at DESC LIMIT ?"
        )
        with self._connect() as conn:
            rows = conn.execute(sql, [*params, min(limit, MAX_LIMIT)]).fetchall()
        return [self._sample(row) for row in reversed(rows)]

    def _sample(self, row: Sequence[object]) -> Sample:
        at, kind, subject, state, lag_b, lag_s, w_b, f_b, w_s, f_s = row
        return Sample.model_validate(
            {
                "at": datetime.fromtimestamp(float(str(at)), UTC),
                "kind": kind,
                "subject": subject,
                "source": self.source,
                "state": state,
                "lag_bytes": lag_b,
                "lag_seconds": lag_s,
                "write_lag_bytes": w_b,
                "flush_lag_bytes": f_b,
                "write_lag_seconds": w_s,
                "flush_lag_seconds": f_s,
            }
        )

    def oldest(self) -> datetime | None:
        with self._connect() as conn:
            (value,) = conn.execute("SELECT min(at) FROM samples").fetchone()
        return None if value is None else datetime.fromtimestamp(float(value), UTC)

    def trim(self, before: datetime) -> tuple[int, int]:
        """Delete samples taken before ``before``; (removed, kept)."""
        with self._connect() as conn:
            removed = conn.execute("DELETE FROM samples WHERE at < ?", (before.timestamp(),))
            (kept,) = conn.execute("SELECT count(*) FROM samples").fetchone()
        return removed.rowcount, int(kept)
