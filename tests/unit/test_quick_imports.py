"""The quick commands start without Typer, pydantic, rich or FastAPI (issue 21): each is
run here as the ``pgherd`` program runs it, in a fresh interpreter, and what it imported
is listed when it exits.

The first command to read a config file validates it with pydantic (that is the point of
the cache: once per file text), so each case runs twice and the second run is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgherd import config
from pgherd.dcs.sqlite import SqliteStore
from pgherd.dcs.store_events import StoreEventLog
from pgherd.lab import layout
from pgherd.model.events import Event, Outcome
from tests.conftest import free_port_base

# Libraries that cost tenths of a second to import, and what pulls them in.
HEAVY = ("typer", "click", "pydantic", "pydantic_core", "rich", "fastapi", "starlette", "httpx")

RUNNER = """
import atexit, json, sys
out = sys.argv[1]
def report():
    loaded = sorted({name.split(".")[0] for name in sys.modules})
    with open(out, "w") as file:
        json.dump(loaded, file)
atexit.register(report)
sys.argv = ["pgherd", *sys.argv[2:]]
from pgherd.cli.entry import main
main()
"""


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    modules: list[str]

    @property
    def heavy(self) -> list[str]:
        return [m for m in self.modules if m in HEAVY]


def pgherd(tmp_path: Path, *args: str | Path) -> Run:
    listing = tmp_path / f"modules-{os.getpid()}-{len(list(tmp_path.iterdir()))}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["PGHERD_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("PGHERD_CONFIG_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(listing), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    modules = json.loads(listing.read_text()) if listing.exists() else []
    return Run(done.returncode, done.stdout, done.stderr, modules)


def twice(tmp_path: Path, *args: str | Path) -> Run:
    """The second of two runs (the first one validated the config)."""
    pgherd(tmp_path, *args)
    return pgherd(tmp_path, *args)


def lab_file(tmp_path: Path, **options: object) -> Path:
    """A lab's config whose agents are not running (their ports are free)."""
    base = free_port_base(3, (0, layout.API_PORT_OFFSET))
    made = layout.lab_config(tmp_path / "lab", 3, base, "postgres", None, **options)  # type: ignore[arg-type]
    path = tmp_path / "pgherd.yaml"
    path.write_text(config.dump(made))
    return path


def test_cluster_show(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    first = pgherd(tmp_path, "cluster", "show", "-c", path)
    assert "pydantic" in first.modules  # the file was validated once…
    run = pgherd(tmp_path, "cluster", "show", "-c", path)
    assert run.heavy == []  # … and read from the cache after that
    assert run.code == 3  # no agent answers: degraded
    assert run.stdout.startswith("cluster lab (degraded)")
    assert "node1: agent unreachable" in run.stdout
    assert run.stdout == first.stdout


def test_cluster_show_json_with_a_store(tmp_path: Path) -> None:
    path = lab_file(tmp_path, failover="automatic")
    run = twice(tmp_path, "cluster", "show", "--json", "-c", path)
    assert run.heavy == []
    data = json.loads(run.stdout)
    assert data["health"] == "degraded"
    assert data["ha"]["store"].startswith("sqlite ")


def test_cluster_show_with_etcd_needs_no_httpx(tmp_path: Path) -> None:
    path = lab_file(tmp_path, failover="automatic", dcs="etcd")  # no etcd runs there
    run = twice(tmp_path, "cluster", "show", "--json", "-c", path)
    assert run.heavy == []
    ha = json.loads(run.stdout)["ha"]
    assert ha["store"].startswith("etcd http://")
    assert not ha["store_ok"]
    assert "no etcd endpoint answered" in ha["problem"]


def test_cluster_events_from_the_store(tmp_path: Path) -> None:
    path = lab_file(tmp_path, failover="automatic")
    validated = config.load(path)
    assert validated.ha is not None
    (tmp_path / "lab").mkdir()
    log = StoreEventLog(SqliteStore(validated.ha.dcs.sqlite))  # type: ignore[union-attr]
    started = Event(operation="switchover", node="node2", requested_by="root@host")
    assert log.save(started)
    assert log.save(started.finish(Outcome.SUCCEEDED, "node2 is the primary [now]"))
    assert log.save(Event(operation="promote", node="node3"))
    run = twice(tmp_path, "cluster", "events", "--json", "-c", path)
    assert (run.code, run.heavy) == (0, [])
    assert json.loads(run.stdout) == [e.model_dump(mode="json") for e in log.recent(50)]
    table = pgherd(tmp_path, "cluster", "events", "--limit", "1", "-c", path)
    assert (table.code, table.heavy) == (0, [])
    assert table.stdout.startswith("cluster lab: events")
    assert "promote" in table.stdout and "switchover" not in table.stdout


def test_cluster_events_without_a_store_and_no_agent(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    run = twice(tmp_path, "cluster", "events", "-c", path)
    assert (run.code, run.heavy) == (1, [])
    assert run.stderr == (
        "error: no node of the cluster runs, so no event can be read — "
        "start one: pgherd node start NODE\n"
    )


def test_connstr(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    run = twice(tmp_path, "connstr", "node2", "--replication", "-c", path)
    assert (run.code, run.heavy, run.stderr) == (0, [], "")
    assert run.stdout.startswith("postgresql://replicator@127.0.0.1:")


def test_an_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    run = twice(tmp_path, "connstr", "node9", "-c", path)
    assert (run.code, run.heavy, run.stdout) == (1, [], "")
    assert run.stderr == "error: unknown node 'node9' — known nodes: node1, node2, node3\n"


def test_a_missing_config(tmp_path: Path) -> None:
    run = pgherd(tmp_path, "cluster", "show", "-c", tmp_path / "none.yaml")
    assert (run.code, run.heavy) == (1, [])
    assert run.stderr.startswith(f"error: no config file at {tmp_path}/none.yaml — ")


@pytest.mark.parametrize("verb", ["push", "fetch"])
def test_wal_push_and_fetch_with_a_config(tmp_path: Path, verb: str) -> None:
    path = lab_file(tmp_path, archive=True)
    segment = "000000010000000000000001"
    args: Sequence[str | Path]
    if verb == "push":
        wal = tmp_path / segment
        wal.write_bytes(b"\0" * 1024)
        args = ("wal", "push", wal, "-c", path)
    else:
        args = ("wal", "fetch", segment, tmp_path / "restored", "-c", path)
    run = twice(tmp_path, *args)
    assert run.heavy == []
    assert run.code in (0, 1, 126)


def test_help_still_comes_from_the_full_cli(tmp_path: Path) -> None:
    run = pgherd(tmp_path, "cluster", "show", "--help")
    assert run.code == 0
    assert "typer" in run.modules
    assert "--json" in run.stdout
