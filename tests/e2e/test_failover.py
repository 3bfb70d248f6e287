"""Automatic failover in a lab, with each store: sqlite (with a witness) and etcd (with
failsafe). Both labs run in synchronous mode, so every failover also checks that no
acknowledged commit was lost. Each test leaves a healthy cluster behind (whoever leads)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgherd.clients.agent import AgentClient
from pgherd.config import SqliteDcs
from pgherd.errors import AgentError, AgentUnreachable
from pgherd.lab import agents
from pgherd.pg import process
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.e2e.ops_support import Writer, primary_of, roles, wait_healthy
from tests.support import InBackground, pgherd, query, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STORES = {
    "sqlite": ("--sync", "--witness"),
    "etcd": ("--dcs", "etcd", "--sync", "--failsafe"),
}
TTL = 3.0  # the lab's default lease


@pytest.fixture(scope="module", params=list(STORES))
def lab(request: pytest.FixtureRequest, module_dir: Path) -> Iterator[Lab]:
    store: str = request.param
    lab = start_lab(
        module_dir / store,
        3,
        "--failover",
        "automatic",
        *STORES[store],
        spread=(0, 1000, 2000, 3000),
    )
    yield lab
    stop_lab(lab)


def store_of(lab: Lab) -> str:
    return lab.directory.name


def show(lab: Lab) -> dict[str, Any]:
    """``pgherd cluster show --json`` (exit 0 or 3)."""
    done = pgherd("cluster", "show", "--json", config=lab.config_path, check=False)
    assert done.returncode in (0, 3), done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def healthy(lab: Lab) -> None:
    """Every node streams from a primary that holds the lease; the sync set is complete."""
    wait_healthy(lab, timeout=60)

    def settled() -> bool:
        data = show(lab)
        ha = data["ha"]
        return (
            not data["problems"]
            and ha["leader"] == data["primary"]
            and len(ha["synchronous"] or ()) == 2
        )

    try:
        wait_until(settled, 30, what="the leader to hold the lease with a full synchronous set")
    except AssertionError as exc:
        logs = "\n".join(tails(lab, n, 12) for n in lab.config.node_names)
        raise AssertionError(f"{exc}\n{json.dumps(show(lab), indent=1)}\n{logs}") from None


def postmaster_pid(lab: Lab, node: str) -> int:
    pm = process.read_postmaster_pid(lab.config.node(node).data_dir)
    assert pm is not None
    return pm.pid


def kill_agent(lab: Lab, node: str) -> None:
    pid = agents.running_agent(lab.config.node(node))
    assert pid is not None
    process.signal_pid(pid, signal.SIGKILL)
    assert process.wait_gone(pid, 10)


def kill_host(lab: Lab, node: str) -> None:
    """What a host loss does: its agent, postmaster and every server process die at once
    (the postmaster's backends would otherwise live on for a moment, and a session on one
    could still commit)."""
    pm = postmaster_pid(lab, node)
    agent = agents.running_agent(lab.config.node(node))
    assert agent is not None
    children = [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and process.parent_pid(int(e.name)) == pm
    ]
    for pid in (agent, pm, *children):
        process.signal_pid(pid, signal.SIGKILL)
    assert process.wait_gone(agent, 10)


def other_primary(lab: Lab, old: str) -> str:
    def found() -> str:
        name = show(lab)["primary"]
        return name if isinstance(name, str) and name != old else ""

    return wait_until(found, 30, what=f"a primary other than {old}")


def bring_back(lab: Lab, old: str) -> None:
    """Start the node's agent again, as after a reboot: it comes back by itself."""
    done = pgherd("lab", "up", "--dir", lab.directory, check=False)
    assert done.returncode == 0, f"{done.stderr}\n{tails(lab, old)}"
    healthy(lab)
    role, upstream = roles(lab)[old]
    assert role == "standby"
    assert upstream == primary_of(lab)


def tails(lab: Lab, node: str, lines: int = 25) -> str:
    """The end of a node's agent and server logs, for a failure's message."""
    found = []
    for path in (lab.config.node(node).agent_log, lab.config.node(node).server_log):
        text = path.read_text(errors="replace").splitlines()
        found.append(f"--- {path}\n" + "\n".join(text[-lines:]))
    return "\n".join(found)


def events(lab: Lab) -> list[dict[str, Any]]:
    done = pgherd("cluster", "events", "--json", "--limit", "200", config=lab.config_path)
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def writable(lab: Lab, node: str) -> bool:
    try:
        return query(lab.config, node, "SELECT pg_is_in_recovery()") == [(False,)]
    except Exception:
        return False


def lb(lab: Lab, node: str, path: str) -> int:
    status, _ = AgentClient(lab.config.node(node)).request("GET", path)
    return status


@dataclass
class Scraper(InBackground):
    """Scrapes every agent's /metrics every 0.2 s in a thread, as Prometheus would (a
    little more often), and keeps the pages."""

    lab: Lab
    pages: list[tuple[str, str]] = field(default_factory=list)  # (node, text)
    join_timeout: ClassVar[float] = 10.0

    def work(self, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            for node in self.lab.config.nodes:
                try:
                    self.pages.append((node.name, AgentClient(node, timeout=1).metrics()))
                except (AgentUnreachable, AgentError):
                    continue  # an agent that is down gives no page

    def value(self, node: str, name: str) -> float | None:
        """``name``'s value in the newest page of ``node`` (no other labels than the page's)."""
        for page_node, text in reversed(self.pages):
            if page_node != node:
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == name and set(sample.labels) == {"cluster", "node"}:
                        return float(sample.value)
            return None
        return None

    def wait_for(self, node: str, name: str, wanted: float, at_least: bool = False) -> bool:
        def seen() -> bool:
            found = self.value(node, name)
            return found is not None and (found >= wanted if at_least else found == wanted)

        wait_until(seen, 30, what=f"{name} = {wanted} on {node}")
        return True

    def check_pages(self) -> None:
        """Every page Prometheus would have read passes ``promtool check metrics`` (at most
        30 of them, spread over the run)."""
        promtool = shutil.which("promtool")
        assert promtool, "promtool is missing: scripts/bootstrap.sh installs it"
        assert len(self.pages) > 10
        step = max(1, len(self.pages) // 30)
        for node, text in self.pages[::step]:
            done = subprocess.run(
                [promtool, "check", "metrics"],
                input=text,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert done.returncode == 0, f"{node}: {done.stdout}{done.stderr}"


def test_cluster_show_names_the_leader_its_lease_and_every_check_in(lab: Lab) -> None:
    healthy(lab)
    data = show(lab)
    ha = data["ha"]
    primary = data["primary"]
    assert ha["mode"] == "automatic" and ha["store_ok"]
    assert ha["leader"] == primary
    assert 0 <= ha["lease_age"] <= TTL
    members = {m["name"]: m for m in ha["members"]}
    for name in lab.config.node_names:
        assert members[name]["checked_in_ago"] < TTL, members[name]
    assert sorted(ha["synchronous"]) == sorted(n for n in lab.config.node_names if n != primary)
    for name in lab.config.node_names:
        is_primary = name == primary
        assert lb(lab, name, "/primary") == (200 if is_primary else 503)
        assert lb(lab, name, "/read-write") == (200 if is_primary else 503)
        assert lb(lab, name, "/replica") == (503 if is_primary else 200)
        assert lb(lab, name, "/replica?lag=16MB") == (503 if is_primary else 200)
        assert lb(lab, name, "/read-only") == 200
        assert lb(lab, name, "/liveness") == 200
        assert lb(lab, name, "/readiness") == 200
        assert lb(lab, name, "/quorum") == (503 if is_primary else 200)  # synchronous mode
    cluster_doc = AgentClient(lab.config.node(primary)).call("GET", "/cluster")
    assert {m["name"]: m["role"] for m in cluster_doc["members"]}[primary] == "leader"
    assert all(
        m["role"] == "sync_standby" and m["lag"] is not None
        for m in cluster_doc["members"]
        if m["name"] != primary
    )
    assert isinstance(AgentClient(lab.config.node(primary)).call("GET", "/history"), list)
    for name in lab.config.node_names:
        done = pgherd("node", "check", name, "--nagios", config=lab.config_path, check=False)
        assert done.returncode == 0, done.stdout
        assert done.stdout.startswith(f"PGHERD OK - {name} "), done.stdout
        assert ("'lag'=" in done.stdout) == (name != primary)
    if lab.config.witnesses:
        assert members["witness"]["kind"] == "witness"
        assert members["witness"]["checked_in_ago"] < TTL
        assert not members["witness"]["leader"]
        table = pgherd("cluster", "show", config=lab.config_path, check=False).stdout
        assert "witness witness: checked in" in table
        assert f"leader {primary}" in table


def test_a_killed_postmaster_is_restarted_in_place_and_writes_resume(lab: Lab) -> None:
    healthy(lab)
    old = primary_of(lab)
    with Writer(lab.config, table="crash") as writer:
        writer.wait_for_more(20)
        process.signal_pid(postmaster_pid(lab, old), signal.SIGKILL)
        writer.wait_for_more(20, timeout=30)
    assert writer.failures > 0  # the kill did interrupt the writes
    assert primary_of(lab) == old  # restarted in place: quicker than a failover
    assert not writer.missing_on(old)
    restart = [e for e in events(lab) if e["operation"] == "restart" and e["node"] == old]
    assert restart and restart[-1]["requested_by"] == f"pgherd-agent@{old}"
    assert "restarting it in place" in restart[-1]["reason"]
    healthy(lab)


def test_host_loss_fails_over_without_losing_a_commit_and_the_old_node_rejoins(
    lab: Lab,
) -> None:
    healthy(lab)
    old = primary_of(lab)
    with Writer(lab.config, table="host_loss") as writer, Scraper(lab) as scraper:
        writer.wait_for_more(20)
        assert scraper.wait_for(old, "pgherd_is_leader", 1.0)
        kill_host(lab, old)
        lost_at = time.monotonic()
        new = other_primary(lab, old)
        writer.wait_for_more(20, timeout=30)
        assert scraper.wait_for(new, "pgherd_is_leader", 1.0)
        assert scraper.wait_for(new, "pgherd_failovers_total", 1.0, at_least=True)
    scraper.check_pages()
    first_on_new = min(t for t in writer.acked_at.values() if t > lost_at)
    assert first_on_new - lost_at < 15
    assert not writer.missing_on(new), "an acknowledged commit is missing on the new primary"
    found = events(lab)
    kinds = {(e["operation"], e["node"], e["outcome"]) for e in found}
    assert ("failover", new, "succeeded") in kinds
    failover = [e for e in found if e["operation"] == "failover" and e["node"] == new][-1]
    assert f"{old} was lost (its lease last renewed at" in failover["reason"], failover
    assert f"{new} at " in failover["reason"] and "candidates:" in failover["reason"]
    assert failover["details"]["lost_leader"] == old
    bring_back(lab, old)
    assert ("rejoin", old, "succeeded") in {
        (e["operation"], e["node"], e["outcome"]) for e in events(lab)
    }
    assert not writer.missing_on(old)


def test_a_dead_agent_takes_its_postgresql_down_and_another_node_leads(lab: Lab) -> None:
    """A primary whose agent is gone is fenced by its keeper when the lease it last
    renewed runs out (pg/keeper.py), so it never takes writes without a lease."""
    healthy(lab)
    old = primary_of(lab)
    pm = postmaster_pid(lab, old)
    kill_agent(lab, old)
    wait_until(lambda: not process.is_alive(pm), TTL + 2, what="the keeper to fence")
    log = lab.config.node(old).server_log.read_text(errors="replace")
    assert "pgherd keeper: fencing: the agent did not renew the lease in time" in log
    assert "received immediate shutdown request" in log
    new = other_primary(lab, old)
    assert query(lab.config, new, "SELECT pg_is_in_recovery()") == [(False,)]
    bring_back(lab, old)


def test_switchover_moves_the_lease_with_the_primary_role(lab: Lab) -> None:
    if store_of(lab) != "sqlite":
        pytest.skip("the same code for both stores; once is enough")
    healthy(lab)
    old = primary_of(lab)
    target = next(n for n in lab.config.node_names if n != old)
    done = pgherd(
        "standby",
        "switchover",
        "--to",
        target,
        "--siblings-follow",
        "--json",
        config=lab.config_path,
    )
    result = json.loads(done.stdout)
    assert result["outcome"] == "succeeded"
    assert any(s["step"] == f"hand the leader lease to {target}" for s in result["steps"])
    healthy(lab)
    assert show(lab)["ha"]["leader"] == target == primary_of(lab)
    assert roles(lab)[old] == ("standby", target)
    assert not [e for e in events(lab) if e["operation"] == "demote" and e["node"] == target]


def test_a_primary_that_cannot_renew_its_lease_stops_taking_writes(lab: Lab) -> None:
    """sqlite: the store's write lock held by someone else, so no renewal gets through
    (reads do: the HA loop still sees itself as the leader; the fence stops it)."""
    if store_of(lab) != "sqlite":
        pytest.skip("etcd: see the failsafe test")
    healthy(lab)
    old = primary_of(lab)
    assert lab.config.ha is not None
    assert isinstance(lab.config.ha.dcs, SqliteDcs)
    path = lab.config.ha.dcs.sqlite
    with Writer(lab.config, table="no_store") as writer:
        writer.wait_for_more(20)
        blocker = sqlite3.connect(path, isolation_level=None, timeout=10)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            cut_at = time.monotonic()
            wait_until(lambda: lb(lab, old, "/primary") == 503, 10, what="the primary to step down")
            time.sleep(2)
            last = max(writer.acked_at.values())
            assert last - cut_at < TTL, f"writes acknowledged {last - cut_at:.1f} s after the cut"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        healthy(lab)
        writer.wait_for_more(10)
    assert not writer.missing_on(primary_of(lab))


def metric(lab: Lab, node: str, name: str) -> float:
    for family in text_string_to_metric_families(AgentClient(lab.config.node(node)).metrics()):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} is not on {node}'s /metrics")


def test_a_primary_whose_server_stalls_for_two_leases_keeps_its_lease(lab: Lab) -> None:
    """Finding 11 of docs/reliability.md: a server alive but too slow to answer (a disk
    allowed 20 writes a second) held the HA cycle longer than the lease, and a standby
    took over from a primary that was still serving. Here the postmaster (so no new
    connection is accepted) and the HA loop's own session are stopped for more than two
    leases: the lease keeper renews for the held-up cycle, and nothing moves."""
    if store_of(lab) != "etcd":
        pytest.skip("once is enough: the etcd lab")
    healthy(lab)
    old = primary_of(lab)
    kept_before = metric(lab, old, "pgherd_lease_renewed_for_loop_total")
    failovers = len([e for e in events(lab) if e["operation"] == "failover"])
    rows = query(
        lab.config, old, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgherd_ha'"
    )
    assert len(rows) == 1, rows
    stalled = (int(rows[0][0]), postmaster_pid(lab, old))
    try:
        for pid in stalled:
            process.signal_pid(pid, signal.SIGSTOP)
        time.sleep(2 * TTL + 1)
    finally:
        for pid in reversed(stalled):
            process.signal_pid(pid, signal.SIGCONT)
    healthy(lab)
    assert primary_of(lab) == old
    assert len([e for e in events(lab) if e["operation"] == "failover"]) == failovers
    assert metric(lab, old, "pgherd_lease_renewed_for_loop_total") > kept_before


def test_with_the_store_down_failsafe_keeps_a_primary_every_member_answers(lab: Lab) -> None:
    if store_of(lab) != "etcd":
        pytest.skip("failsafe is on in the etcd lab")
    healthy(lab)
    old = primary_of(lab)
    standby = next(n for n in lab.config.node_names if n != old)
    etcd = int((lab.directory / "etcd" / "etcd1.pid").read_text())
    agent = agents.running_agent(lab.config.node(standby))
    assert agent is not None
    with Writer(lab.config, table="failsafe") as writer:
        writer.wait_for_more(20)
        process.signal_pid(etcd, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            time.sleep(TTL + 3)
            # Past the lease, the primary stays: every member answered it.
            assert max(writer.acked_at.values()) > stopped_at + TTL + 1
            assert lb(lab, old, "/ha") == 200
            # ... and load balancers keep sending it writes: failsafe protects clients too
            assert lb(lab, old, "/primary") == 200
            assert lb(lab, old, "/failsafe") == 200
            # One member stops answering: failsafe no longer holds and it steps down.
            process.signal_pid(agent, signal.SIGSTOP)
            try:
                wait_until(lambda: not writable(lab, old), 10, what="the primary to step down")
                quiet_from = time.monotonic()
                time.sleep(1.5)
                assert max(writer.acked_at.values()) < quiet_from
            finally:
                process.signal_pid(agent, signal.SIGCONT)
        finally:
            process.signal_pid(etcd, signal.SIGCONT)
        healthy(lab)
        writer.wait_for_more(10, timeout=30)
    assert not writer.missing_on(primary_of(lab))


def test_in_maintenance_nothing_is_promoted_and_resume_recovers(lab: Lab) -> None:
    if store_of(lab) != "sqlite":
        pytest.skip("the same code for both stores; once is enough")
    healthy(lab)
    old = primary_of(lab)
    standbys = [n for n in lab.config.node_names if n != old]
    # a pause with a duration ends by itself
    pgherd("cluster", "pause", "--for", "8s", config=lab.config_path)
    assert show(lab)["ha"]["maintenance"]
    wait_until(lambda: not show(lab)["ha"]["paused"], 15, what="the 8 s pause to end")

    done = pgherd("cluster", "pause", config=lab.config_path)
    assert "maintenance mode until pgherd cluster resume" in done.stdout
    try:
        data = show(lab)
        assert data["ha"]["maintenance"] and data["ha"]["pause_until"] is None
        assert any("maintenance mode" in p for p in data["problems"])
        table = pgherd("cluster", "show", config=lab.config_path, check=False)
        assert table.returncode == 3 and "the agents take no automatic action" in table.stdout
        # the gauge follows the agent's next cycle, not the store: wait for it
        client = AgentClient(lab.config.node(standbys[0]))
        wait_until(
            lambda: re.search(r"pgherd_paused\{[^}]*\} 1\.0", client.metrics()),
            10,
            what="the standby's agent to report the pause",
        )
        kill_agent(lab, old)
        time.sleep(TTL + 3)  # the lease is long gone
        done = pgherd("node", "check", old, "--nagios", config=lab.config_path, check=False)
        assert done.returncode == 2 and "PGHERD CRITICAL" in done.stdout, done.stdout
        for name in standbys:
            assert query(lab.config, name, "SELECT pg_is_in_recovery()") == [(True,)]
            decision = AgentClient(lab.config.node(name)).call("GET", "/ha")["decision"]
            assert "maintenance mode" in decision, decision
        assert show(lab)["primary"] is None
    finally:
        resumed = pgherd("cluster", "resume", config=lab.config_path)
    assert "automatic failover is back on" in resumed.stdout
    new = other_primary(lab, old)
    assert new in standbys
    kinds = [(e["operation"], e["outcome"]) for e in events(lab)]
    assert ("pause", "succeeded") in kinds and ("resume", "succeeded") in kinds
    bring_back(lab, old)
