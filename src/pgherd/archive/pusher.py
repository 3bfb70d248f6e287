"""The agent's resident WAL pusher: archives ahead of PostgreSQL, in parallel.

PostgreSQL's archiver calls archive_command for one segment at a time and waits for it;
against an object store 50–200 ms away that caps archiving at a few segments a second,
below what a busy primary writes. The pusher watches ``pg_wal/archive_status`` for every
``.ready`` file, pushes up to ``workers`` of them at once to every repository, and
leaves its answer in the spool (:mod:`pgherd.archive.spool`); archive_command, when
PostgreSQL gets to a segment, usually finds the answer waiting and returns at once.
It works only while archive_command comes through the spool (it touches ``in-use``):
a node whose archive_command was changed is left alone.

It never acknowledges early: the ``.ok`` answer is written after every repository
confirmed the segment (fsynced and linked; or stored with its checksum verified). It
never drops WAL either: when it falls behind, the ``.ready`` files and pg_wal grow, and
:meth:`Pusher.status` (the agent's metrics, ``archive status``) says by how much and
whether that passes ``archive.queue_max``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from pgherd.archive import spool as spool_mod
from pgherd.archive.storage import LocalStorage
from pgherd.archive.wal_repos import WalRepositories
from pgherd.errors import PgherdError
from pgherd.model.repository import RepositorySpec
from pgherd.model.wal import DEFAULT_SEGMENT_SIZE

log = logging.getLogger(__name__)

SCAN_INTERVAL = 0.05
SWEEP_INTERVAL = 600.0


@dataclass(frozen=True)
class PushStatus:
    """The pusher's figures; the agent's /metrics and ``archive status`` read them."""

    running: bool
    workers: int
    waiting: int  # .ready files PostgreSQL has not had acknowledged yet
    waiting_bytes: int
    queue_max_bytes: int
    in_flight: int
    pushed: int  # segments made durable since the pusher started
    pushed_bytes: int
    failures: int  # since the pusher started
    last_error: str | None  # while a segment still fails (None once every one was pushed)
    last_pushed: str | None
    oldest_waiting: str | None
    seconds_per_segment: float | None  # mean over the last 64 pushes

    @property
    def over_limit(self) -> bool:
        return self.waiting_bytes > self.queue_max_bytes


class Pusher:
    def __init__(
        self,
        data_dir: Path,
        spool: Path,
        repositories: WalRepositories,
        workers: int = 4,
        queue_max: int = 1024**3,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.status_dir = data_dir / "pg_wal" / "archive_status"
        self.wal_dir = data_dir / "pg_wal"
        self.spool = spool
        self.repositories = repositories
        self.workers = workers
        self.queue_max = queue_max
        self.segment_size = segment_size
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[None]] = {}
        self._pushed = 0
        self._pushed_bytes = 0
        self._failures = 0
        self._last_error: str | None = None
        self._last_pushed: str | None = None
        self._durations: list[float] = []
        self._waiting: list[str] = []
        # a segment whose push failed is tried again after 1, 2, 4… up to 30 s, so that
        # a failing repository is not hammered every scan
        self._retry_at: dict[str, tuple[float, int]] = {}
        self._lock_fd: int | None = None
        self._running = False

    # ---- the loop --------------------------------------------------------------------

    def run(self) -> None:
        """Until :meth:`stop`; holds the spool's lock so that archive_command waits
        for it rather than pushing itself."""
        # readable by all: archive_command (the PostgreSQL OS user) tests the lock
        self._lock_fd = os.open(self.spool / spool_mod.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        os.fchmod(self._lock_fd, 0o644)
        # archive_command tests the lock with a brief shared lock, and another pusher may
        # hold it: wait our turn rather than give up (and take over when it exits).
        waited = 0.0
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self._halt.wait(0.1):
                    os.close(self._lock_fd)
                    return
                waited += 0.1
                if round(waited, 1) == 5.0:
                    log.warning(
                        "waiting for %s: another pusher holds it", self.spool / spool_mod.LOCK
                    )
        self._running = True
        self.write_status()  # the heartbeat archive_command looks for
        last_sweep = last_status = 0.0
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="wal-push") as pool:
                while not self._halt.is_set():
                    try:
                        self._step(pool)
                        if time.monotonic() - last_sweep > SWEEP_INTERVAL:
                            last_sweep = time.monotonic()
                            self._sweep()
                        if time.monotonic() - last_status > 1:  # the heartbeat
                            last_status = time.monotonic()
                            self.write_status()
                    except Exception:
                        log.exception("WAL pusher step failed")
                    self._halt.wait(SCAN_INTERVAL)
        finally:
            self._running = False
            # archive_command pushes by itself from now on
            (self.spool / spool_mod.STATUS).unlink(missing_ok=True)
            os.close(self._lock_fd)

    def stop(self) -> None:
        self._halt.set()

    def _ready(self) -> list[str]:
        try:
            names = [
                e.name[: -len(".ready")]
                for e in os.scandir(self.status_dir)
                if e.name.endswith(".ready")
            ]
        except FileNotFoundError:
            return []
        # history files first (a promotion waits for them), then in WAL order
        return sorted(names, key=lambda n: (not n.endswith(".history"), n))

    def _step(self, pool: ThreadPoolExecutor) -> None:
        ready = self._ready()
        with self._lock:
            self._waiting = ready
            for name in [n for n, f in self._in_flight.items() if f.done()]:
                del self._in_flight[name]
            room = self.workers * 2 - len(self._in_flight)
        answered = self._answered()
        if not spool_mod.in_use(self.spool, time.time()):
            ready = []  # archive_command does not come through the spool: stay idle
        for name in ready:
            if room <= 0:
                break
            if name in self._in_flight or name in answered:
                continue
            retry = self._retry_at.get(name)
            if retry is not None and time.monotonic() < retry[0]:
                continue
            with self._lock:
                self._in_flight[name] = pool.submit(self._push, name)
            room -= 1
        self._forget_stale(answered, set(ready))

    def _answered(self) -> set[str]:
        try:
            return {
                e.name[: -len(spool_mod.OK)]
                for e in os.scandir(self.spool)
                if e.name.endswith(spool_mod.OK)
            }
        except FileNotFoundError:
            return set()

    def _forget_stale(self, answered: set[str], ready: set[str]) -> None:
        """An answer for a segment that is no longer .ready was given by an earlier
        archive_command that died before reading it: remove it."""
        for name in answered - ready:
            (self.spool / f"{name}{spool_mod.OK}").unlink(missing_ok=True)

    def _push(self, name: str) -> None:
        started = time.monotonic()
        try:
            results = self.repositories.push(self.wal_dir / name)
        except (PgherdError, OSError) as exc:
            text = exc.one_line() if isinstance(exc, PgherdError) else f"{exc.strerror or exc}"
            with self._lock:
                self._failures += 1
                self._last_error = f"{name}: {text}"
                count = self._retry_at.get(name, (0.0, 0))[1] + 1
                self._retry_at[name] = (time.monotonic() + min(2.0 ** (count - 1), 30.0), count)
            log.warning("archiving %s failed: %s", name, text)
            spool_mod.write_answer(self.spool, name, spool_mod.ERROR, text)
            return
        spool_mod.write_answer(self.spool, name, spool_mod.OK)
        with self._lock:
            self._retry_at.pop(name, None)
            if not self._retry_at:
                # Nothing fails any more: the error was history (``failures`` keeps the
                # count). Kept, ``archive status`` said "the pusher failed" for good after
                # one full disk that was freed long ago (the fault suite's archive-full run).
                self._last_error = None
            self._pushed += 1
            self._pushed_bytes += results[0].result.original_bytes if results else 0
            self._last_pushed = name
            self._durations = [*self._durations[-63:], time.monotonic() - started]

    def _sweep(self) -> None:
        for repo in self.repositories.repositories:
            if isinstance(repo.raw, LocalStorage):
                for key in repo.raw.sweep_temporary():
                    log.warning("removed a stale temporary file %s from %s", key, repo.describe())

    # ---- figures ---------------------------------------------------------------------

    def status(self) -> PushStatus:
        with self._lock:
            waiting = list(self._waiting)
            segments = [n for n in waiting if len(n) == 24]
            durations = list(self._durations)
            return PushStatus(
                running=self._running,
                workers=self.workers,
                waiting=len(waiting),
                waiting_bytes=len(segments) * self.segment_size,
                queue_max_bytes=self.queue_max,
                in_flight=sum(1 for f in self._in_flight.values() if not f.done()),
                pushed=self._pushed,
                pushed_bytes=self._pushed_bytes,
                failures=self._failures,
                last_error=self._last_error,
                last_pushed=self._last_pushed,
                oldest_waiting=waiting[0] if waiting else None,
                seconds_per_segment=sum(durations) / len(durations) if durations else None,
            )

    def write_status(self) -> None:
        """status.json in the spool: the heartbeat, and the figures for tools outside the
        agent (readable by all, like the lock)."""
        text = json.dumps(asdict(self.status()))
        tmp = self.spool / f".{spool_mod.STATUS}.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.spool / spool_mod.STATUS)


def start(
    data_dir: Path, spool: Path, specs: tuple[RepositorySpec, ...], workers: int, queue_max: int
) -> Pusher | None:
    """The agent's pusher, running in a thread; None (logged) when the repositories
    cannot be opened: archive_command then pushes by itself and reports why it fails."""
    try:
        repositories = WalRepositories.open(specs)
    except (PgherdError, OSError) as exc:
        log.warning("the WAL pusher does not run: %s", exc)
        return None
    pusher = Pusher(data_dir, spool, repositories, workers, queue_max)
    threading.Thread(target=pusher.run, name="wal-pusher", daemon=True).start()
    return pusher
