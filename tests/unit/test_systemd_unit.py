"""The agent's systemd unit, rendered (model/systemd_unit.py)."""

from __future__ import annotations

import pytest

from pgherd.model import systemd_unit
from pgherd.model.systemd_unit import UnitSpec

SPEC = UnitSpec(
    node="node1",
    cluster="main",
    exec_start=(
        "/opt/pgherd/bin/pgherd",
        "agent",
        "run",
        "--node",
        "node1",
        "--config",
        "/etc/pgherd/pgherd.yaml",
    ),
    user="postgres",
    group="postgres",
    writable=("/var/lib/postgresql/15",),
    optional_writable=("/srv/archive",),
    readable=("/opt/pgherd/bin", "/etc/pgherd"),
)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_unit_runs_the_agent_as_postgres_and_never_kills_postgresql() -> None:
    unit = lines(systemd_unit.render(SPEC))
    for wanted in (
        "User=postgres",
        "Group=postgres",
        "ExecStart=/opt/pgherd/bin/pgherd agent run --node node1 --config /etc/pgherd/pgherd.yaml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=process",
        "Restart=always",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/postgresql/15 -/srv/archive",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "WantedBy=multi-user.target",
    ):
        assert wanted in unit
    # What would break PostgreSQL that outlives its agent, or its JIT:
    assert not any(line.startswith(("RemoveIPC", "MemoryDenyWriteExecute")) for line in unit)
    assert systemd_unit.unit_name("node1") == "pgherd@node1.service"


@pytest.mark.parametrize(
    ("writable", "readable", "protect"),
    [
        (("/var/lib/postgresql",), ("/opt/pgherd",), "yes"),
        (("/var/lib/postgresql",), ("/root/venv/bin",), "read-only"),
        (("/home/pg/data",), (), "no"),
        (("/homestead",), (), "yes"),
    ],
)
def test_protect_home_gives_way_only_where_the_agent_needs_to(
    writable: tuple[str, ...], readable: tuple[str, ...], protect: str
) -> None:
    assert systemd_unit.protect_home(writable, readable) == protect


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("/etc/pgherd/pgherd.yaml", "/etc/pgherd/pgherd.yaml"),
        ("/srv/my data", '"/srv/my data"'),
        ("100%", "100%%"),
        ("$HOME", "$$HOME"),
    ],
)
def test_arguments_are_quoted_the_way_systemd_reads_them(arg: str, quoted: str) -> None:
    assert systemd_unit.quote(arg) == quoted
