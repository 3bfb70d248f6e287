"""Helpers for tests that drive real servers and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import psycopg

from pgherd import config as config_mod
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.config_lite import LiteConfig, LiteNode
from pgherd.lab import layout, lifecycle
from pgherd.pg import osuser

T = TypeVar("T")


def cluster_config(
    workdir: Path, user: osuser.OsUser, nodes: int, port_base: int, **extra: Any
) -> ClusterConfig:
    """A config for ``nodes`` nodes under ``workdir``, with its passfile and token written."""
    config = layout.lab_config(workdir, layout.LabShape(nodes, port_base, user.name, None))
    if extra:
        config = config_mod.parse(config.model_dump(mode="json") | extra)
    lifecycle.write_lab_files(config, workdir / "pgherd.yaml", user)
    return config


def connect(
    config: ClusterConfig | LiteConfig, node: NodeConfig | LiteNode | str, **kw: Any
) -> psycopg.Connection[Any]:
    """A superuser connection over TCP with the passfile, as a client would make it."""
    target = config.node(node) if isinstance(node, str) else node
    return psycopg.connect(
        host=target.host,
        port=target.port,
        user=config.superuser,
        dbname="postgres",
        passfile=str(config.passfile),
        autocommit=True,
        connect_timeout=5,
        **kw,
    )


def query(
    config: ClusterConfig | LiteConfig, node: NodeConfig | LiteNode | str, sql: str, *params: Any
) -> list[Any]:
    """Run one statement; its rows, or [] for a statement that returns none."""
    with connect(config, node) as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description is not None else []


class InBackground:
    """Work done in a thread for the length of a ``with`` block (a writer, a scraper):
    ``work(stop)`` runs from the block's start until ``stop`` is set; the block's end sets
    it, joins the thread (at most ``join_timeout`` seconds) and raises what the work died
    of. A worker that died silently would leave the test waiting for writes that never
    come, or judging the cluster on too few of them. When the block itself raised, that
    error is the one raised, with the worker's error in a note."""

    join_timeout: ClassVar[float] = 30.0
    _stop: threading.Event
    _thread: threading.Thread
    _error: Exception | None

    def work(self, stop: threading.Event) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._guarded, name=type(self).__name__)
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(self.join_timeout)
        if self._error is None:
            return
        if exc is None:
            raise self._error
        exc.add_note(f"and {type(self).__name__} had died of {self._error!r}")

    def _guarded(self) -> None:
        try:
            self.work(self._stop)
        except Exception as error:  # raised in the test's thread, at the block's end
            self._error = error


def wait_until(check: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # the last error is reported on timeout
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


def pgherd(
    *args: str | Path, config: Path | None = None, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the ``pgherd`` CLI as a user would, in a separate process."""
    argv: list[str] = [sys.executable, "-m", "pgherd", *map(str, args)]
    if config is not None:
        argv += ["--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(
            f"pgherd {' '.join(map(str, args))} exited {done.returncode}\n"
            f"stdout: {done.stdout}\nstderr: {done.stderr}"
        )
    return done


def postgres_processes(under: Path) -> list[int]:
    """Live (non-zombie) postgres or agent processes whose command line mentions ``under``."""
    from pgherd.pg import process

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(under) in cmdline and process.is_alive(pid):
            found.append(pid)
    return found


def names(rows: Sequence[dict[str, Any]], key: str = "name") -> list[str]:
    return [row[key] for row in rows]


# ---- what a command imports -------------------------------------------------------------

# Libraries that cost tenths of a second to import, which the quick commands must not load
# (issue 21), and what pulls them in; cryptography makes certificates (pgherd.tls.certs),
# which a client verifying one never needs (the standard library's ssl does that).
HEAVY = (
    "typer",
    "click",
    "pydantic",
    "pydantic_core",
    "rich",
    "fastapi",
    "starlette",
    "httpx",
    "cryptography",
)

# The program as installed (pgherd.cli.entry.program); the listing is written at exit, or
# just before os._exit, which a quick look leaves by (it runs no atexit function).
_LISTING_RUNNER = """
import atexit, json, os, sys
out = sys.argv[1]
def report(way="exit"):
    loaded = sorted({name.split(".")[0] for name in sys.modules})
    with open(out, "w") as file:
        json.dump({"modules": loaded, "way": way}, file)
atexit.register(report)
real_exit = os._exit
def reported_exit(code):
    report("os._exit")
    real_exit(code)
os._exit = reported_exit
sys.argv = ["pgherd", *sys.argv[2:]]
from pgherd.cli.entry import program
program()
"""


@dataclass(frozen=True)
class ListedRun:
    """A CLI run in a fresh interpreter, with the top-level packages it had imported."""

    code: int
    stdout: str
    stderr: str
    modules: list[str]
    way: str = "exit"  # or "os._exit": a read-only quick command's end (cli/entry.exit_now)

    @property
    def heavy(self) -> list[str]:
        return [m for m in self.modules if m in HEAVY]


def pgherd_listing_imports(
    listing: Path, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 180
) -> ListedRun:
    """``pgherd ARGS`` as the ``pgherd`` program runs it; ``listing`` gets the imports."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")
    }
    environment |= env or {}
    done = subprocess.run(
        [sys.executable, "-c", _LISTING_RUNNER, str(listing), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment,
    )
    # Every way out writes the listing: none would make an empty list look clean.
    assert listing.exists(), f"no import listing: pgherd {args} ended with {done.stderr}"
    listed = json.loads(listing.read_text())
    return ListedRun(done.returncode, done.stdout, done.stderr, listed["modules"], listed["way"])
