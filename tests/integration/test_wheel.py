"""pgherd as a wheel: built with ``pip wheel .``, installed into a fresh virtualenv made
from Debian's python (no checkout on the path, no network: its dependencies come from
wheels packed from the project's virtualenv), then run: ``--version``, ``config check``,
and ``agent run`` as the PostgreSQL OS user, answering on its API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import pgherd
from pgherd.clients.agent import AgentClient
from pgherd.errors import AgentUnreachable
from pgherd.pg import osuser
from tests import wheelhouse
from tests.conftest import free_port_base
from tests.support import cluster_config, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHECKOUT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def run(argv: list[str | Path], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, check=False, **kw
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{argv} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def installed(module_dir: Path) -> Path:
    """A fresh virtualenv (from /usr/bin/python3) with the pgherd wheel installed."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no /usr/bin/python3 to make a fresh virtualenv from")
    dist = module_dir / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            dist,
            CHECKOUT,
        ]
    )
    (wheel,) = dist.glob("pgherd-*.whl")
    assert wheel.name.startswith(f"pgherd-{pgherd.__version__}-py3-none-any")
    house = module_dir / "wheelhouse"
    wheelhouse.build("pgherd", house)
    venv = module_dir / "venv"
    run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", venv])
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv / "bin" / "python",
            "install",
            "--quiet",
            "--no-compile",  # byte-compiling 30 packages is most of the install's time
            "--no-index",
            "--find-links",
            house,
            wheel,
        ]
    )
    return venv


def clean_env() -> dict[str, str]:
    """No trace of the checkout or the project's virtualenv."""
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/"}


def test_the_wheel_runs_from_a_fresh_virtualenv(
    installed: Path, workdir: Path, os_user: osuser.OsUser
) -> None:
    pgherd_bin = installed / "bin" / "pgherd"
    version = run([pgherd_bin, "--version"], cwd="/", env=clean_env())
    assert version.stdout.strip() == f"pgherd {pgherd.__version__}"
    imported = run(
        [installed / "bin" / "python", "-c", "import pgherd; print(pgherd.__file__)"],
        cwd="/",
        env=clean_env(),
    )
    assert imported.stdout.startswith(str(installed))  # not the checkout's copy

    config = cluster_config(workdir, os_user, 1, free_port_base(2))
    path = workdir / "pgherd.yaml"
    checked = run([pgherd_bin, "config", "check", "-c", path, "--json"], cwd="/", env=clean_env())
    summary = json.loads(checked.stdout)
    assert summary["valid"] is True
    assert [n["name"] for n in summary["nodes"]] == ["node1"]
    assert summary["warnings"] == []

    # The agent itself, as the PostgreSQL OS user, on a node with no cluster yet: it runs
    # and serves its API (health 503: nothing to run yet).
    node = config.node("node1")
    agent = subprocess.Popen(
        [pgherd_bin, "agent", "run", "--node", "node1", "-c", path],
        cwd="/",
        env=clean_env(),
        user=os_user.uid,
        group=os_user.gid,
        extra_groups=[],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def answers() -> tuple[bool, str] | None:
            try:
                return AgentClient(node).healthy()
            except AgentUnreachable:
                assert agent.poll() is None, "the agent exited"
                return None

        assert wait_until(answers, 60, what="the wheel's agent to answer") == (False, "stopped")
    finally:
        agent.send_signal(signal.SIGTERM)
        out, _ = agent.communicate(timeout=30)
    assert "holds no cluster yet" in out, out
    assert f"as OS user {os_user.name}" in out
    assert os.stat(workdir / "node1").st_uid == os_user.uid
