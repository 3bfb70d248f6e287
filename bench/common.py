"""What every benchmark needs: timing, machine facts, labs driven through the CLI, runs of
PostgreSQL's own programs as the OS user ``postgres``, a table on screen and JSON on disk.

Benchmarks drive pgherd as a user does (the ``pgherd`` command in a separate process) and
time PostgreSQL's own programs in the same run, on the same data, in alternating order:
the machine is small and shared, so only a ratio measured side by side means something.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from rich.console import Console
from rich.table import Table

from pgherd.lab.layout import API_PORT_OFFSET
from pgherd.pg import binaries, process

T = TypeVar("T")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
OS_USER = "postgres"
# Wide enough for the tables when the output goes to a file (rich would wrap at 80).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


# ---- timing and summaries ---------------------------------------------------------------


def timed(call: Callable[[], T]) -> tuple[float, T]:
    """Wall-clock seconds of ``call()`` and what it returned."""
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def timed_cpu(call: Callable[[], T]) -> tuple[float, float, T]:
    """Wall-clock seconds of ``call()``, the CPU seconds its child processes used (user +
    system, of children waited for meanwhile), and what it returned."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    value = call()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, value


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(values: Sequence[float]) -> dict[str, Any]:
    """The runs and their median, min and max (what the JSON keeps for every figure)."""
    return {
        "runs": [round(v, 4) for v in values],
        "median": round(median(values), 4),
        "min": round(min(values), 4) if values else None,
        "max": round(max(values), 4) if values else None,
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [round(v, 2) for v in os.getloadavg()]


def now() -> datetime:
    return datetime.now(UTC)


def result_header(benchmark: str, started: datetime, parameters: dict[str, Any]) -> dict[str, Any]:
    """The head of a benchmark's JSON result: what ran, when, on what machine, with which
    parameters, and the load when it started (the caller adds the figures, the end load and
    the finish time)."""
    return {
        "benchmark": benchmark,
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": parameters,
        "load_average_start": load_average(),
    }


# ---- the machine ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Facts a reader needs to compare figures across runs."""
    return {
        "hostname": socket.gethostname(),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": _memory_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": binaries.find(None).version,
        "commit": _git_commit(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


# ---- ports and processes ----------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(count: int, spread: tuple[int, ...] = (0, API_PORT_OFFSET)) -> int:
    """A port P with P+offset+i free on 127.0.0.1 for every offset in ``spread``, i < count
    (a lab takes P.. for PostgreSQL and P+1000.. for its agents)."""
    for _ in range(200):
        # Below the kernel's ephemeral range (32768+ here): a port picked there may be taken
        # by an outgoing connection between the check and the bind.
        base = random.randrange(20000, 31000)
        if all(port_is_free(base + off + i) for off in spread for i in range(count)):
            return base
    raise RuntimeError("no free range of ports found between 20000 and 32000")


def import_seconds(modules: Sequence[str]) -> float:
    """Wall time of a fresh interpreter (this virtualenv's) importing ``modules``, less that
    of one importing nothing: what a command pays before it does any work."""
    base = [sys.executable, "-c", "pass"]
    argv = [sys.executable, "-c", "import " + ", ".join(modules)]
    empty, _ = timed(lambda: run_checked(base, timeout=60))
    full, _ = timed(lambda: run_checked(argv, timeout=60))
    return max(full - empty, 0.0)


# ---- a client that writes --------------------------------------------------------------

WRITE_INTERVAL = 0.01
WRITE_RECOVERY_LIMIT = 120.0


@dataclass
class Writer:
    """Commits one row every 10 ms; remembers when each commit was acknowledged."""

    conninfo: str
    table: str = "bench_writes"
    acked: list[tuple[float, int]] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)
    next_id: int = 1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY)")
            row = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {self.table}").fetchone()
            assert row is not None
            self.next_id = int(row[0])
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def __enter__(self) -> Writer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True)
                conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (self.next_id,))
                self.acked.append((time.monotonic(), self.next_id))
            except psycopg.Error:
                self.failed.append(time.monotonic())
                if conn is not None:
                    conn.close()
                conn = None
            self.next_id += 1
            time.sleep(max(0.0, WRITE_INTERVAL - (time.monotonic() - began)))
        if conn is not None:
            conn.close()

    def steady(
        self, seconds: float = 1.0, since: float = 0.0, timeout: float = WRITE_RECOVERY_LIMIT
    ) -> None:
        """Wait until commits after ``since`` were acknowledged for ``seconds`` without a
        failure among them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            start = max(since, now - seconds)
            recent = [t for t, _ in self.acked if t > start]
            failures = [t for t in self.failed if t > start]
            if (
                now - since >= seconds
                and len(recent) > seconds / WRITE_INTERVAL / 4
                and not failures
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("writes did not come back")

    def unavailability(self, since: float) -> float:
        """Seconds from the first failed commit after ``since`` to the first acknowledged
        one after it (0 when none failed)."""
        failed = next((t for t in self.failed if t >= since), None)
        if failed is None:
            return 0.0
        back = next(t for t, _ in self.acked if t > failed)
        return back - failed

    def outage_after(self, since: float, timeout: float = WRITE_RECOVERY_LIMIT) -> float:
        """When writes came back after the first failed commit that followed ``since``
        (a commit in flight at the fault may still be acknowledged: that is not the
        outage's end). Monotonic time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            failures = [t for t in self.failed if t > since]
            if failures:
                later = [t for t, _ in self.acked if t > failures[0]]
                if later:
                    return later[0]
            time.sleep(0.01)
        raise RuntimeError(f"writes did not come back within {timeout:.0f} s of the fault")

    def lost_on(self, conninfo: str) -> int:
        """Acknowledged commits the (current) primary does not have."""
        ids = [i for _, i in self.acked]
        with psycopg.connect(conninfo, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT id FROM {self.table} WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        return len(set(ids) - {r[0] for r in rows})


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (None if it is gone)."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def become_subreaper() -> None:
    """Adopt the agents ``pgherd lab up`` leaves behind, so that they can be reaped here
    (PID 1 on these machines never reaps)."""
    process.become_subreaper()


def reap() -> None:
    process.reap_zombie_children()


def processes_under(directory: Path) -> list[int]:
    """Live (non-zombie) processes whose command line mentions ``directory``: a postmaster
    (``postgres -D DIR/...``) or an agent (``--config DIR/pgherd.yaml``)."""
    found = []
    needle = str(directory).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if needle in cmdline and process.is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


# ---- the CLI and labs -------------------------------------------------------------------


def pgherd_argv() -> list[str]:
    """The ``pgherd`` command of the virtualenv running this benchmark, as users type it."""
    script = Path(sys.executable).with_name("pgherd")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pgherd"]


class CommandError(RuntimeError):
    pass


def run_checked(
    argv: Sequence[str], timeout: float, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if done.returncode != 0:
        raise CommandError(
            f"{' '.join(argv)} exited {done.returncode}\n"
            f"stdout: {done.stdout.strip()}\nstderr: {done.stderr.strip()}"
        )
    return done


@dataclass
class Lab:
    """A lab created and removed through the CLI (``pgherd lab up`` / ``lab down --purge``).

    As a context manager it removes the lab on the way out, whatever happened.
    """

    directory: Path
    nodes: int
    port_base: int
    pgherd: list[str] = field(default_factory=pgherd_argv)
    extra: tuple[str, ...] = ()  # more `lab up` options, e.g. ("--archive",)

    @property
    def config_path(self) -> Path:
        return self.directory / "pgherd.yaml"

    def cli(
        self, *args: str | Path, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """``pgherd ARGS -c DIR/pgherd.yaml``."""
        argv = [*self.pgherd, *map(str, args), "--config", str(self.config_path)]
        if check:
            return run_checked(argv, timeout)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def up(self) -> float:
        """Create the lab; returns the wall time of ``pgherd lab up``."""
        argv = [
            *self.pgherd,
            "lab",
            "up",
            "--dir",
            str(self.directory),
            "--nodes",
            str(self.nodes),
            "--port-base",
            str(self.port_base),
            *self.extra,
        ]
        seconds, _ = timed(lambda: run_checked(argv, timeout=900))
        return seconds

    def down(self) -> float:
        """``pgherd lab down --purge``; returns its wall time."""
        argv = [*self.pgherd, "lab", "down", "--dir", str(self.directory), "--purge"]
        seconds, _ = timed(lambda: run_checked(argv, timeout=300))
        reap()
        return seconds

    def connstr(self, node: str, replication: bool = False) -> str:
        args = ["connstr", node, *(["--replication"] if replication else [])]
        return self.cli(*args).stdout.strip()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        remove_lab(self.directory, self.pgherd)


def remove_lab(directory: Path, pgherd: Sequence[str] | None = None) -> None:
    """Bring a lab down and delete its directory, if anything is there (errors ignored)."""
    if (directory / "pgherd.yaml").exists():
        argv = [*(pgherd or pgherd_argv()), "lab", "down", "--dir", str(directory), "--purge"]
        subprocess.run(argv, capture_output=True, timeout=300, check=False)
    reap()
    shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def fresh_directory(directory: Path) -> Iterator[Path]:
    """Clear what an earlier, interrupted run left in ``directory``; remove it afterwards."""
    remove_lab(directory)
    try:
        yield directory
    finally:
        remove_lab(directory)


# ---- PostgreSQL's own programs ----------------------------------------------------------


def pg_program(name: str) -> str:
    """A program of the PostgreSQL installation pgherd uses (the newest found)."""
    return str(binaries.find(None)[name])


def as_os_user(
    argv: Sequence[str], timeout: float = 600, user: str = OS_USER
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as ``user`` (it must not run as root, and the lab's passfile
    is that user's, mode 0600), with a clean environment and a private umask."""
    home = os.path.expanduser(f"~{user}")
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "USER": user, "LC_ALL": "C.UTF-8"}
    switch: dict[str, Any] = {}
    if os.geteuid() == 0 and user != "root":
        switch = {"user": user, "group": user, "extra_groups": []}
    return run_checked(argv, timeout, env=env, cwd="/", umask=0o077, **switch)


def pgbench_init(uri: str, scale: int) -> float:
    """``pgbench -i -s SCALE`` (quiet); returns its wall time."""
    argv = [pg_program("pgbench"), "--initialize", "--quiet", f"--scale={scale}", uri]
    seconds, _ = timed(lambda: as_os_user(argv, timeout=3600))
    return seconds


def query(uri: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement over TCP (as root, which can read the lab's passfile); its rows."""
    with psycopg.connect(uri, autocommit=True) as conn:
        cur = conn.execute(sql.encode(), params)
        return cur.fetchall() if cur.description else []


def drop_slot(uri: str, slot: str) -> None:
    """Drop a clone's slot so that it does not hold WAL back for the next round."""
    query(
        uri,
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = %s AND NOT active",
        [slot],
    )


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---- output -----------------------------------------------------------------------------


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A rich table; numbers are right-aligned."""
    table = Table(title=title, title_justify="left")
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(columns))]
    for name, right in zip(columns, numeric, strict=True):
        table.add_column(name, justify="right" if right else "left")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) or (isinstance(value, str) and _numeric_text(value))


def _numeric_text(text: str) -> bool:
    """ "1.234", "0.98×" or "12 s": a number, maybe with a unit after it."""
    words = text.split()
    if not words:
        return False
    try:
        float(words[0].rstrip("×%"))
    except ValueError:
        return False
    return True


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_json(name: str, data: dict[str, Any], when: datetime | None = None) -> Path:
    """``bench/results/NAME-YYYYmmdd-HHMMSS.json``; returns its path."""
    stamp = (when or now()).strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
