"""The foundation end to end: lab up → a working 3-node cluster, seen and operated
through the CLI, torn down without leftovers and started again with its data."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from pgherd.lab import agents
from pgherd.pg import osuser, process
from tests.conftest import free_port_base
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.fences import forget_fences_under
from tests.support import pgherd, pgherd_listing_imports, postgres_processes, query, wait_until

pytestmark = pytest.mark.e2e


def show(lab: Lab) -> tuple[int, dict[str, object]]:
    done = pgherd("cluster", "show", "--json", config=lab.config_path, check=False)
    return done.returncode, json.loads(done.stdout)


def nodes_by_name(data: dict[str, object]) -> dict[str, dict[str, object]]:
    rows = data["nodes"]
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}


def test_a_row_written_on_the_primary_is_read_on_both_standbys(lab3: Lab) -> None:
    config = lab3.config
    query(config, "node1", "CREATE TABLE greetings (id int PRIMARY KEY, text text NOT NULL)")
    query(config, "node1", "INSERT INTO greetings VALUES (1, 'hello from node1')")
    for standby in ("node2", "node3"):
        rows = wait_until(
            lambda s=standby: query(config, s, "SELECT text FROM greetings"),  # type: ignore[misc]
            what=f"the row on {standby}",
        )
        assert rows == [("hello from node1",)]
        with pytest.raises(Exception, match="read-only transaction"):
            query(config, standby, "INSERT INTO greetings VALUES (2, 'no')")


def test_cluster_show_json_has_one_primary_and_two_streaming_standbys(lab3: Lab) -> None:
    code, data = show(lab3)
    assert code == 0, data
    assert data["health"] == "healthy"
    assert data["primary"] == "node1"
    nodes = nodes_by_name(data)
    assert nodes["node1"]["role"] == "primary"
    assert nodes["node1"]["primary"] is True
    for name in ("node2", "node3"):
        row = nodes[name]
        assert (row["role"], row["state"], row["upstream"]) == ("standby", "streaming", "node1")
        assert isinstance(row["lag_bytes"], int)
        assert row["lag_bytes"] >= 0
        assert isinstance(row["lag_seconds"], float)
        assert row["timeline"] == 1
        assert row["system_identifier"] == nodes["node1"]["system_identifier"]


def test_cluster_show_table_marks_the_primary(lab3: Lab) -> None:
    out = pgherd("cluster", "show", config=lab3.config_path).stdout
    assert "* node1" in out
    assert "streaming" in out


def test_a_stopped_standby_is_reported_and_the_exit_code_tells(lab3: Lab) -> None:
    pgherd("node", "stop", "node3", config=lab3.config_path)
    try:
        code, data = show(lab3)
        assert code == 3
        assert data["health"] == "degraded"
        assert nodes_by_name(data)["node3"]["state"] == "stopped"
        problems = data["problems"]
        assert isinstance(problems, list)
        assert "node3: PostgreSQL is stopped" in problems
        table = pgherd("cluster", "show", config=lab3.config_path, check=False)
        assert table.returncode == 3
        assert "stopped" in table.stdout
        doctor = pgherd("doctor", "--json", config=lab3.config_path, check=False)
        assert doctor.returncode == 3
        findings = json.loads(doctor.stdout)
        assert {
            "node": "node3",
            "check": "running",
            "fix": "start it: pgherd node start node3",
        }.items() <= findings[0].items()
    finally:
        pgherd("node", "start", "node3", config=lab3.config_path)
    wait_until(lambda: show(lab3)[0] == 0, what="node3 streaming again")


def test_unknown_node_lists_the_known_ones(lab3: Lab) -> None:
    done = pgherd("node", "stop", "node9", config=lab3.config_path, check=False)
    assert done.returncode == 1
    assert "unknown node 'node9' — known nodes: node1, node2, node3" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_connstr_gives_a_working_uri_without_a_password(lab3: Lab) -> None:
    uri = pgherd("connstr", "node2", config=lab3.config_path).stdout.strip()
    node = lab3.config.node("node2")
    assert uri.startswith(f"postgresql://postgres@127.0.0.1:{node.port}/postgres?passfile=")
    secret = (lab3.directory / "secrets" / "pgpass").read_text()
    assert all(line.rsplit(":", 1)[-1] not in uri for line in secret.splitlines())
    replication = pgherd("connstr", "node1", "--replication", config=lab3.config_path).stdout
    assert replication.startswith("postgresql://replicator@")


def test_standby_clone_adds_a_node_and_clones_again_without_heavy_imports(
    lab3: Lab, tmp_path: Path, os_user: osuser.OsUser
) -> None:
    """``pgherd standby clone`` is a quick command: adding a node validates the new config
    (pydantic), a clone of a listed node imports neither Typer, pydantic nor rich."""
    original = lab3.config_path.read_text()
    free = free_port_base(1, (0, 1000))
    home = lab3.directory / "clone4"
    env = {"PGHERD_CACHE_DIR": str(tmp_path / "cache")}
    clone = ("standby", "clone", "--upstream", "node1", "--node", "clone4", "--json")
    try:
        added = pgherd_listing_imports(
            tmp_path / "added.json",
            *clone,
            "--data-dir", home / "data", "--port", str(free), "--api-port", str(free + 1000),
            "-c", lab3.config_path,
            env=env,
        )  # fmt: skip
        assert added.code == 0, added.stderr
        assert "clone4" in lab3.config.node_names
        again = pgherd_listing_imports(
            tmp_path / "again.json", *clone, "--force", "-c", lab3.config_path, env=env
        )
        assert (again.code, again.heavy) == (0, []), again.stderr
        result = json.loads(again.stdout)
        assert (result["node"], result["upstream"], result["slot_created"]) == (
            "clone4",
            "node1",
            False,  # the first clone's slot, reused
        )
        assert result["system_identifier"] == show(lab3)[1]["system_identifier"]
        settings = (home / "data" / "pgherd.conf").read_text()
        assert f"port = {free}" in settings
        assert (home / "data" / "standby.signal").exists()
    finally:
        lab3.config_path.write_text(original)
        query(
            lab3.config,
            "node1",
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = 'clone4' AND NOT active",
        )
        forget_fences_under(home, os_user.uid)
        shutil.rmtree(home, ignore_errors=True)


def test_the_agent_restarts_a_postmaster_that_was_killed(lab3: Lab) -> None:
    node = lab3.config.node("node2")
    pm = process.running_postmaster(node.data_dir)
    assert pm is not None
    process.signal_pid(pm.pid, signal.SIGKILL)
    wait_until(
        lambda: (p := process.running_postmaster(node.data_dir)) is not None and p.pid != pm.pid,
        what="a new postmaster",
    )
    wait_until(lambda: show(lab3)[0] == 0, what="node2 streaming again")
    status = json.loads(pgherd("node", "start", "node2", "--json", config=lab3.config_path).stdout)
    assert status["restarts"] >= 1


def test_lab_down_leaves_nothing_and_lab_up_brings_the_same_cluster_back(
    module_dir: Path,
) -> None:
    lab = start_lab(module_dir / "again", 2)
    config = lab.config
    query(config, "node1", "CREATE TABLE kept (v text)")
    query(config, "node1", "INSERT INTO kept VALUES ('survives')")
    identity = query(config, "node1", "SELECT system_identifier FROM pg_control_system()")
    wait_until(lambda: query(config, "node2", "SELECT v FROM kept"), what="the row on node2")

    pgherd("lab", "down", "--dir", lab.directory)
    process.reap_zombie_children()
    assert postgres_processes(lab.directory) == []
    assert all(agents.running_agent(n) is None for n in config.nodes)

    again = pgherd("lab", "up", "--dir", lab.directory)
    assert "starting it" in again.stdout
    assert "initdb" not in again.stdout
    assert query(config, "node2", "SELECT v FROM kept") == [("survives",)]
    assert query(config, "node1", "SELECT system_identifier FROM pg_control_system()") == identity
    stop_lab(lab)


def test_lab_up_refuses_a_taken_port_and_creates_nothing(module_dir: Path, lab3: Lab) -> None:
    target = module_dir / "clash"
    done = pgherd("lab", "up", "--dir", target, "--port-base", str(lab3.port_base), check=False)
    assert done.returncode == 1
    assert f"port {lab3.port_base} on 127.0.0.1 (node1 PostgreSQL) is already in use" in done.stderr
    assert not (target / "pgherd.yaml").exists()


def test_lab_under_a_directory_postgres_cannot_reach_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    done = pgherd("lab", "up", "--dir", tmp_path / "lab", check=False)
    assert done.returncode == 1
    assert "cannot reach" in done.stderr
    assert "/var/tmp/pgherd-lab" in done.stderr
