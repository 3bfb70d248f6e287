"""The agent as a service on a lab of three with automatic failover (synchronous): SIGHUP
and ``pgherd agent reload`` re-read pgherd.yaml without restarting PostgreSQL or failing
over; settings reach every server (a restart-only one shows as pending until ``node
restart`` or a rolling ``cluster restart``); an agent restart does not restart
PostgreSQL; ``node remove``. The tests run in order on one lab and leave it healthy."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgherd import config as config_mod
from pgherd.clients.agent import AgentClient
from pgherd.config import ClusterConfig
from pgherd.lab import agents
from pgherd.pg import conf, osuser, process
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.e2e.ops_support import Writer, wait_healthy
from tests.support import pgherd, query, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


SPAWNED: list[subprocess.Popen[bytes]] = []  # agents the tests started again


@pytest.fixture(scope="module")
def lab(module_dir: Path) -> Iterator[Lab]:
    lab = start_lab(module_dir / "lab", 3, "--failover", "automatic", "--sync")
    yield lab
    stop_lab(lab)
    for agent in SPAWNED:
        agent.wait(30)


def start_agent(lab: Lab, node: str) -> None:
    """``pgherd agent run`` as a service manager starts it: as postgres (lab down stops
    it)."""
    SPAWNED.append(agents.start(lab.config_path, lab.config.node(node)))


# ---- helpers --------------------------------------------------------------------------


def show(lab: Lab) -> dict[str, Any]:
    done = pgherd("cluster", "show", "--json", config=lab.config_path, check=False)
    assert done.returncode in (0, 3), done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def settled(lab: Lab) -> str:
    """Wait for a healthy cluster whose leader holds the lease with a full synchronous
    set; returns the primary."""
    wait_healthy(lab, timeout=60)
    standbys = len(lab.config.nodes) - 1

    def ready() -> str | None:
        data = show(lab)
        ha = data["ha"]
        ok = not data["problems"] and ha["leader"] == data["primary"]
        return data["primary"] if ok and len(ha["synchronous"] or ()) == standbys else None

    primary = wait_until(ready, 30, what="the leader with its lease and synchronous set")
    assert isinstance(primary, str)
    return primary


def write_config(lab: Lab, **changes: Any) -> ClusterConfig:
    """pgherd.yaml with ``changes``, as an operator edits it (the lab's agents all read
    this one file)."""
    config = config_mod.parse(lab.config.model_dump(mode="json") | changes)
    osuser.resolve(config.os_user).write_file(lab.config_path, config_mod.dump(config))
    return config


def reload(lab: Lab, *args: str, check: bool = True) -> list[dict[str, Any]]:
    done = pgherd("agent", "reload", *args, "--json", config=lab.config_path, check=check)
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def setting(lab: Lab, node: str, name: str) -> str:
    (row,) = query(
        lab.config,
        node,
        "SELECT setting || coalesce(unit, '') FROM pg_settings WHERE name = %s",
        name,
    )
    return str(row[0])


def postmasters(lab: Lab) -> dict[str, int]:
    found = {}
    for node in lab.config.nodes:
        pm = process.running_postmaster(node.data_dir)
        assert pm is not None, f"{node.name} has no running postmaster"
        found[node.name] = pm.pid
    return found


def failovers(lab: Lab) -> list[dict[str, Any]]:
    done = pgherd("cluster", "events", "--json", "--limit", "500", config=lab.config_path)
    return [e for e in json.loads(done.stdout) if e["operation"] in ("failover", "demote")]


def agent_pid(lab: Lab, node: str) -> int:
    pid = agents.running_agent(lab.config.node(node))
    assert pid is not None
    return pid


def holds_lease(lab: Lab, node: str) -> bool:
    ha = AgentClient(lab.config.node(node)).call("GET", "/ha")
    return bool(ha["holds_lease"])


# ---- the agents as a service manager runs them ------------------------------------------


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def test_agents_keepers_and_servers_run_as_postgres_not_root(lab: Lab) -> None:
    settled(lab)
    postgres = osuser.resolve("postgres").uid
    for name, postmaster in postmasters(lab).items():
        keeper = process.parent_pid(postmaster)
        assert keeper is not None and process.command_name(keeper) == "pgherd-keeper"
        for pid in (agent_pid(lab, name), keeper, postmaster):
            assert uid_of(pid) == postgres, f"{name}: pid {pid} runs as uid {uid_of(pid)}"


# ---- reload ---------------------------------------------------------------------------


def test_sighup_on_the_primarys_agent_restarts_nothing_and_fails_nothing_over(lab: Lab) -> None:
    primary = settled(lab)
    before, agent, events = postmasters(lab), agent_pid(lab, primary), failovers(lab)
    process.signal_pid(agent, signal.SIGHUP)
    log = lab.config.node(primary).agent_log
    wait_until(lambda: "SIGHUP: reading" in log.read_text(), 10, what="the agent to reload")
    time.sleep(2 * 3.0)  # two lease periods: a primary that went would show by now
    assert agent_pid(lab, primary) == agent
    assert postmasters(lab) == before
    assert settled(lab) == primary
    assert failovers(lab) == events
    assert "reload: node1: pgherd.yaml unchanged" in log.read_text() or primary != "node1"


def test_a_changed_work_mem_reaches_every_server_on_reload(lab: Lab) -> None:
    primary = settled(lab)
    before = postmasters(lab)
    new = write_config(lab, settings={"work_mem": "8MB"})
    results = reload(lab)
    assert [r["node"] for r in results] == ["node1", "node2", "node3"]
    for result in results:
        assert result["ok"], result
        report = result["report"]
        assert report["settings"] == [
            {"name": "work_mem", "before": None, "after": "8MB", "effect": "reload"}
        ]
        assert report["postgres"] == "reloaded"
        assert report["fingerprint"] == config_mod.fingerprint(new)
        assert report["pending_restart"] == []
    for node in lab.config.node_names:
        assert setting(lab, node, "work_mem") == "8192kB"
        assert conf.read_include(lab.config.node(node).data_dir)["work_mem"] == "8MB"
    data = show(lab)
    assert data["warnings"] == []
    assert {n["config_fingerprint"] for n in data["nodes"]} == {config_mod.fingerprint(new)}
    # SIGHUP does the same, node by node, as systemctl reload would.
    write_config(lab, settings={"work_mem": "9MB"})
    for node in lab.config.node_names:
        process.signal_pid(agent_pid(lab, node), signal.SIGHUP)
    for node in lab.config.node_names:
        wait_until(lambda n=node: setting(lab, n, "work_mem") == "9216kB", 10, what="9MB")  # type: ignore[misc]
    assert postmasters(lab) == before
    assert settled(lab) == primary


def test_a_file_postgresql_would_refuse_changes_nothing(lab: Lab) -> None:
    settled(lab)
    good = lab.config
    for bad, said in (
        ({"work_mem": "lots"}, 'invalid value for parameter "work_mem": "lots"'),
        ({"work_mme": "8MB"}, "settings: work_mme: not a parameter of PostgreSQL"),
    ):
        write_config(lab, settings=bad)
        done = pgherd("agent", "reload", "--node", "node2", config=lab.config_path, check=False)
        assert done.returncode == 1, done.stdout
        assert said in done.stdout
        assert setting(lab, "node2", "work_mem") == "9216kB"
        assert conf.read_include(lab.config.node("node2").data_dir)["work_mem"] == "9MB"
    # A file that is not even YAML: the agent says so and keeps running.
    node3 = good.node("node3")
    pid = agent_pid(lab, "node3")
    try:
        lab.config_path.write_text("cluster: [unclosed\n")
        process.signal_pid(pid, signal.SIGHUP)
        wait_until(lambda: "reload refused:" in node3.agent_log.read_text(), 10, what="the refusal")
        assert agents.running_agent(node3) == pid
    finally:
        osuser.resolve(good.os_user).write_file(lab.config_path, config_mod.dump(good))
    assert all(r["ok"] for r in reload(lab))


def test_a_restart_only_setting_is_pending_until_node_restart(lab: Lab) -> None:
    primary = settled(lab)
    standby = next(n for n in lab.config.node_names if n != primary)
    write_config(lab, settings={"work_mem": "9MB", "shared_buffers": "64MB"})
    for result in reload(lab):
        report = result["report"]
        assert report["settings"] == [
            {"name": "shared_buffers", "before": None, "after": "64MB", "effect": "restart"}
        ]
        assert report["pending_restart"] == ["shared_buffers"]
    data = show(lab)
    assert {n["name"]: n["pending_restart"] for n in data["nodes"]} == {
        n: ["shared_buffers"] for n in lab.config.node_names
    }
    text = pgherd("cluster", "show", config=lab.config_path, check=False).stdout
    assert f"{standby}: pending restart: shared_buffers — pgherd node restart {standby}" in text
    before = postmasters(lab)
    pgherd("node", "restart", standby, config=lab.config_path)
    assert setting(lab, standby, "shared_buffers") == "8192" + "8kB"  # 64MB in 8kB pages
    rows = {n["name"]: n for n in show(lab)["nodes"]}
    assert rows[standby]["pending_restart"] == []
    assert postmasters(lab)[standby] != before[standby]
    assert settled(lab) == primary


def test_a_rolling_cluster_restart_applies_what_is_pending_without_losing_a_commit(
    lab: Lab,
) -> None:
    old = settled(lab)
    pending = {n["name"] for n in show(lab)["nodes"] if n["pending_restart"]}
    assert old in pending and len(pending) == 2  # one standby was restarted above
    (other,) = pending - {old}
    dry = pgherd("cluster", "restart", "--dry-run", config=lab.config_path).stdout
    assert "dry run: the rolling restart would" in dry
    assert f"1. restart {other}: pending restart: shared_buffers" in dry
    assert "2. switch over to " in dry
    assert f"3. restart {old}: pending restart: shared_buffers (a standby by then)" in dry
    with Writer(lab.config, table="rolling") as writer:
        writer.wait_for_more(10)
        done = pgherd("cluster", "restart", "--json", config=lab.config_path)
        writer.wait_for_more(10, timeout=30)
    result = json.loads(done.stdout)
    assert result["outcome"] == "succeeded", result
    assert [s["step"].split(" ")[0] for s in result["steps"]][:1] == ["restart"]
    new = settled(lab)
    assert new != old
    assert not writer.missing_on(new), "an acknowledged commit is missing after the restart"
    for node in lab.config.node_names:
        assert setting(lab, node, "shared_buffers") == "8192" + "8kB"
    assert all(n["pending_restart"] == [] for n in show(lab)["nodes"])
    nothing = pgherd("cluster", "restart", config=lab.config_path).stdout
    assert "no node has settings pending a restart" in nothing


def test_node_restart_of_the_primary_restarts_it_in_place(lab: Lab) -> None:
    primary = settled(lab)
    before, events = postmasters(lab)[primary], failovers(lab)
    pgherd("node", "restart", primary, config=lab.config_path)
    assert settled(lab) == primary
    assert postmasters(lab)[primary] != before
    assert failovers(lab) == events


def test_an_agent_restart_does_not_restart_postgresql_nor_fail_over(lab: Lab) -> None:
    """SIGTERM, as systemctl restart sends it, to the primary's agent: PostgreSQL keeps its
    postmaster, the lease stays, the next agent adopts and renews it."""
    primary = settled(lab)
    # This shared machine can be loaded enough to take 8 s to start an agent (measured):
    # more than the default 10 s would be a flaky test, not a finding.
    ha = lab.config.ha
    assert ha is not None
    write_config(lab, ha=ha.model_dump(mode="json") | {"agent_restart_grace": 30})
    assert all(
        r["report"]["this_node"] == ["ha.agent_restart_grace 10.0 → 30.0"] for r in reload(lab)
    )
    node = lab.config.node(primary)
    before, events = postmasters(lab), failovers(lab)
    pid = agent_pid(lab, primary)
    stopped_at = time.monotonic()
    process.signal_pid(pid, signal.SIGTERM)
    assert process.wait_gone(pid, 30)
    log = node.agent_log.read_text()
    assert "its lease is extended to 30 s: the next agent must renew it by then" in log
    assert process.is_alive(before[primary])  # PostgreSQL runs on without its agent
    start_agent(lab, primary)
    wait_until(lambda: holds_lease(lab, primary), 30, what="the new agent to renew the lease")
    took = time.monotonic() - stopped_at
    print(
        f"agent restart of the primary: lease renewed by the new agent {took:.2f} s after SIGTERM"
    )
    assert postmasters(lab) == before
    assert settled(lab) == primary
    assert failovers(lab) == events
    assert f"adopted the running postmaster (pid {before[primary]})" in node.agent_log.read_text()


def test_node_remove_drops_the_slot_and_the_member_then_a_reload_forgets_the_node(
    lab: Lab,
) -> None:
    """Last: it leaves a cluster of two."""
    primary = settled(lab)
    gone = next(n for n in sorted(lab.config.node_names, reverse=True) if n != primary)
    refused = pgherd("node", "remove", primary, config=lab.config_path, check=False)
    assert refused.returncode == 1
    assert f"node remove refused: {primary} holds the leader lease" in refused.stderr
    refused = pgherd("node", "remove", gone, config=lab.config_path, check=False)
    assert f"node remove refused: the agent of {gone} still runs" in refused.stderr
    pgherd("node", "stop", gone, config=lab.config_path)
    pid = agent_pid(lab, gone)
    process.signal_pid(pid, signal.SIGTERM)  # systemctl stop pgherd@NODE
    assert process.wait_gone(pid, 30)
    assert process.running_postmaster(lab.config.node(gone).data_dir) is None
    done = pgherd("node", "remove", gone, "--json", config=lab.config_path)
    result = json.loads(done.stdout)
    assert primary in result["dropped_slots"]
    assert result["member_removed"] is True
    assert result["still_in_config"] is True
    assert gone not in [
        r[0] for r in query(lab.config, primary, "SELECT slot_name FROM pg_replication_slots")
    ]
    # The operator removes it from pgherd.yaml and reloads the agents.
    left = [n for n in lab.config.model_dump(mode="json")["nodes"] if n["name"] != gone]
    write_config(lab, nodes=left)
    for r in reload(lab):
        assert r["report"]["members"] == [f"{gone} removed"]
    assert settled(lab) == primary
    data = show(lab)
    assert [n["name"] for n in data["nodes"]] == [n["name"] for n in left]
    assert gone not in [m["name"] for m in data["ha"]["members"]]
    nothing = pgherd("node", "remove", gone, config=lab.config_path, check=False)
    assert "no node keeps a slot for" in nothing.stderr
