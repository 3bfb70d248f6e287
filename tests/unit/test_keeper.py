"""The keeper's fence file and command line, and that it starts light (pg/keeper.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgherd.pg import keeper


def test_the_fence_moment_goes_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / keeper.FENCE_FILE
    assert keeper.read_fence(path) is None  # no file: nothing to fence
    keeper.write_fence(path, 1234.5678)
    assert keeper.read_fence(path) == pytest.approx(1234.568)
    assert path.stat().st_mode & 0o777 == 0o600
    keeper.write_fence(path, None)
    assert path.read_text() == "none\n"
    assert keeper.read_fence(path) is None
    path.write_text("garbage\n")
    assert keeper.read_fence(path) is None
    assert [p.name for p in tmp_path.iterdir()] == [keeper.FENCE_FILE]  # no temporary left


def test_the_keeper_command_line() -> None:
    argv = keeper.command(
        "/venv/bin/python", Path("/h/run/pgherd.fence"), 7, ["postgres", "-D", "/d"]
    )
    assert argv == [
        "/venv/bin/python",
        "-I",
        "-m",
        "pgherd.pg.keeper",
        "--fence",
        "/h/run/pgherd.fence",
        "--report-fd",
        "7",
        "--",
        "postgres",
        "-D",
        "/d",
    ]


def test_the_keeper_imports_only_what_it_needs() -> None:
    """It starts at every postmaster start: no pydantic, psycopg, FastAPI or yaml."""
    code = "import sys, json, pgherd.pg.keeper; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    heavy = {"pydantic", "psycopg", "fastapi", "uvicorn", "yaml", "httpx", "pgherd.config"}
    assert not loaded & heavy
