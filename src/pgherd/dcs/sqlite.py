"""A store on a local sqlite file, for a lab whose agents all run on one machine.

Atomicity comes from sqlite's write lock (``BEGIN IMMEDIATE``); expiry from the wall clock,
which every agent on the machine shares. Not for multi-host clusters: use etcd there.

Keys carry the cluster's name as a prefix (``main/leader``) and events a ``cluster`` column,
so that two clusters on one file never see each other's state.

Each store object keeps one connection open (used under a lock): a connection opened and
closed per call makes every close the *last* one now and then, and sqlite then checkpoints
and removes the WAL file under an exclusive lock, which a busy disk can stretch past a
lease renewal's time limit. Commits do not wait for fsync (``synchronous=NORMAL``): the
store lives and dies with the one machine whose agents use it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pgherd.dcs.base import Leader, Member, Snapshot, StoreUnavailable, Versioned

LEADER = "leader"
CONFIG = "config"
INITIALIZE = "initialize"
MEMBER = "members/"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        expires_at REAL,
        version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        body TEXT NOT NULL,
        cluster TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER)",
    "INSERT OR IGNORE INTO counter VALUES (1, 0)",
)


class SqliteStore:
    def __init__(self, path: Path, busy_timeout: float = 5.0, cluster: str = "") -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.cluster = cluster
        self.prefix = f"{cluster}/" if cluster else ""
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        fresh = not path.exists()
        with self._tx() as db:
            (exists,) = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'counter'"
            ).fetchone()
            if not exists:
                for statement in SCHEMA:
                    db.execute(statement)
            columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
            if "cluster" not in columns:  # a store file written before clusters were named
                db.execute("ALTER TABLE events ADD COLUMN cluster TEXT NOT NULL DEFAULT ''")
        if fresh:
            os.chmod(path, 0o600)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            (mode,) = db.execute("PRAGMA journal_mode").fetchone()
            if mode != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._db = db
        return self._db

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                self._drop()
                raise StoreUnavailable(f"cannot open the store {self.path}: {exc}") from None
            try:
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise StoreUnavailable(f"the store {self.path} failed: {exc}") from None

    def _drop(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _k(self, name: str) -> str:
        return self.prefix + name

    @staticmethod
    def _live(db: sqlite3.Connection, key: str) -> tuple[str, float | None, int] | None:
        row = db.execute(
            "SELECT value, expires_at, version FROM kv WHERE key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (key, time.time()),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    @staticmethod
    def _put(db: sqlite3.Connection, key: str, value: str, ttl: float | None) -> None:
        (version,) = db.execute(
            "UPDATE counter SET version = version + 1 RETURNING version"
        ).fetchone()
        expires = None if ttl is None else time.time() + ttl
        db.execute(
            "INSERT INTO kv VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value, expires_at = excluded.expires_at, version = excluded.version",
            (key, value, expires, version),
        )

    def acquire_leader(self, name: str, ttl: float) -> bool:
        with self._tx() as db:
            if self._live(db, self._k(LEADER)) is not None:
                return False
            self._put(db, self._k(LEADER), name, ttl)
            return True

    def renew_leader(self, name: str, ttl: float) -> bool:
        with self._tx() as db:
            entry = self._live(db, self._k(LEADER))
            if entry is None or entry[0] != name:
                return False
            self._put(db, self._k(LEADER), name, ttl)
            return True

    def release_leader(self, name: str) -> bool:
        with self._tx() as db:
            entry = self._live(db, self._k(LEADER))
            if entry is None or entry[0] != name:
                return False
            db.execute("DELETE FROM kv WHERE key = ?", (self._k(LEADER),))
            return True

    def leader(self) -> Leader | None:
        with self._tx(write=False) as db:
            return self._leader(db)

    def _leader(self, db: sqlite3.Connection) -> Leader | None:
        entry = self._live(db, self._k(LEADER))
        if entry is None:
            return None
        return Leader(entry[0], None if entry[1] is None else entry[1] - time.time())

    def touch_member(self, name: str, data: str, ttl: float) -> None:
        with self._tx() as db:
            self._put(db, self._k(MEMBER + name), data, ttl)

    def remove_member(self, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM kv WHERE key = ?", (self._k(MEMBER + name),))

    def members(self) -> tuple[Member, ...]:
        with self._tx(write=False) as db:
            return self._members(db)

    def _members(self, db: sqlite3.Connection) -> tuple[Member, ...]:
        now = time.time()
        start = self._k(MEMBER)
        # A range, not LIKE: a cluster's name may hold "_", which LIKE reads as a wildcard.
        rows = db.execute(
            "SELECT key, value, expires_at FROM kv WHERE substr(key, 1, ?) = ? "
            "AND (expires_at IS NULL OR expires_at > ?) ORDER BY key",
            (len(start), start, now),
        ).fetchall()
        return tuple(
            Member(key.removeprefix(start), value, None if exp is None else exp - now)
            for key, value, exp in rows
        )

    def config(self) -> Versioned | None:
        with self._tx(write=False) as db:
            return self._config(db)

    def _config(self, db: sqlite3.Connection) -> Versioned | None:
        entry = self._live(db, self._k(CONFIG))
        return None if entry is None else Versioned(entry[0], entry[2])

    def set_config(self, value: str, expected_version: int) -> bool:
        with self._tx() as db:
            entry = self._live(db, self._k(CONFIG))
            if (0 if entry is None else entry[2]) != expected_version:
                return False
            self._put(db, self._k(CONFIG), value, None)
            return True

    def initialize(self, value: str, expected_version: int = 0) -> bool:
        with self._tx() as db:
            entry = self._live(db, self._k(INITIALIZE))
            if (0 if entry is None else entry[2]) != expected_version:
                return False
            self._put(db, self._k(INITIALIZE), value, None)
            return True

    def initialization(self) -> Versioned | None:
        with self._tx(write=False) as db:
            return self._initialization(db)

    def _initialization(self, db: sqlite3.Connection) -> Versioned | None:
        entry = self._live(db, self._k(INITIALIZE))
        return None if entry is None else Versioned(entry[0], entry[2])

    def cancel_initialization(self, expected_version: int) -> bool:
        with self._tx() as db:
            entry = self._live(db, self._k(INITIALIZE))
            if entry is None or entry[2] != expected_version:
                return False
            db.execute("DELETE FROM kv WHERE key = ?", (self._k(INITIALIZE),))
            return True

    def append_event(self, event: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events (body, cluster) VALUES (?, ?)", (event, self.cluster))

    def events(self, limit: int = 100) -> tuple[str, ...]:
        with self._tx(write=False) as db:
            rows = db.execute(
                "SELECT body FROM (SELECT id, body FROM events WHERE cluster = ? "
                "ORDER BY id DESC LIMIT ?) ORDER BY id",
                (self.cluster, limit),
            ).fetchall()
        return tuple(row[0] for row in rows)

    def snapshot(self) -> Snapshot:
        with self._tx(write=False) as db:
            return Snapshot(
                self._leader(db),
                self._members(db),
                self._config(db),
                time.time(),
                self._initialization(db),
            )

    def close(self) -> None:
        with self._lock:
            self._drop()
