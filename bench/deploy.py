"""Benchmark of issue 15: a cluster made by its agents, against the lab and the manual clone.

    $VENV/bin/python -m bench.deploy                       # the real run: scale 70 (~1 GB), 3 runs
    $VENV/bin/python -m bench.deploy --scale 2 --runs 1    # a quick check (~2 minutes)

Bootstrap: three agents started at once on empty data directories (a sqlite store, as the
lab's; the agents run as ``postgres`` as their systemd unit runs them) — timed from their
start until both standbys stream — against ``pgherd lab up --nodes 3`` (initdb, two
``standby clone``s, the agents started one by one), timed as the command runs. Each round
makes a fresh cluster each way, in an order that alternates between rounds.

Added node: the agents' cluster is filled with ``pgbench -i -s SCALE`` and checkpointed;
then, alternating between rounds, a new node joins
- by its agent alone: the node added to pgherd.yaml (``pgherd secrets init`` for its
  token and certificate, ``pgherd agent reload`` on the others), its agent started on an
  empty data directory; timed from the agent's start
  until it streams (it clones the leader by itself);
- by hand: ``pgherd standby clone --upstream LEADER --node NEW`` then its agent started;
  timed from the command's start until it streams (the copy alone is reported too).
Each added node is stopped and its slot dropped before the next round.

Figures are medians; the ratio is pgherd's agents over the tool they replace (below 1: the
agents are faster). A 2-core shared machine: run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import common
from pgherd import config as config_mod
from pgherd.clients.agent import statuses
from pgherd.config import ClusterConfig
from pgherd.errors import AgentUnreachable
from pgherd.lab import layout
from pgherd.pg import osuser

USER = common.OS_USER


def streaming(config: ClusterConfig, names: list[str]) -> bool:
    """Every node named runs, the standbys among them streaming (from a primary, then)."""
    found = {s.name: s for s in statuses([config.node(n) for n in names], timeout=2)}
    for name in names:
        status = found[name]
        if str(status.state) != "running":
            return False
        if str(status.role) == "standby" and (
            status.wal_receiver is None or status.wal_receiver.status != "streaming"
        ):
            return False
    return True


def wait_streaming(config: ClusterConfig, names: list[str], timeout: float = 900) -> float:
    """Poll until ``names`` stream; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if streaming(config, names):
                return time.monotonic()
        except (AgentUnreachable, KeyError):
            pass
        time.sleep(0.1)
    raise common.CommandError(f"{', '.join(names)} not streaming after {timeout:.0f} s")


class Agents:
    """A cluster made by its agents on this machine: a config like the lab's, secrets from
    ``pgherd secrets init``, one agent per node started as ``postgres``."""

    def __init__(self, directory: Path, port_base: int) -> None:
        self.directory = directory
        self.port_base = port_base
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def config_path(self) -> Path:
        return self.directory / "pgherd.yaml"

    @property
    def config(self) -> ClusterConfig:
        return config_mod.load(self.config_path)

    def shape(self, nodes: int) -> layout.LabShape:
        """A lab's layout with automatic failover (its sqlite store), as the lab's agents."""
        return layout.LabShape(nodes, self.port_base, USER, failover="automatic")

    def write(self, nodes: int) -> None:
        user = osuser.resolve(USER)
        config = layout.lab_config(self.directory, self.shape(nodes))
        user.make_dir(self.directory)
        user.write_file(self.config_path, config_mod.dump(config))
        self.cli("secrets", "init")

    def add_nodes(self, count: int) -> list[str]:
        """``count`` more nodes in pgherd.yaml (the lab's layout for them), the agents told;
        returns their names."""
        user = osuser.resolve(USER)
        have = len(self.config.nodes)
        wider = layout.lab_config(self.directory, self.shape(have + count))
        raw = self.config.model_dump(mode="json")
        raw["nodes"] += [n.model_dump(mode="json") for n in wider.nodes[have:]]
        user.write_file(self.config_path, config_mod.dump(config_mod.parse(raw)))
        self.cli("secrets", "init")  # the new nodes' tokens and certificates, the rest kept
        self.cli("agent", "reload", check=False)  # the new nodes' agents do not answer yet
        return [n.name for n in wider.nodes[have:]]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*common.pgherd_argv(), *args, "--config", str(self.config_path)]
        if check:
            return common.run_checked(argv, 3600)
        return subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)

    def start(self, name: str) -> float:
        """The node's agent, as its unit runs it; returns the monotonic time it started."""
        node = self.config.node(name)
        user = osuser.resolve(USER)
        user.make_dir(node.home_dir)
        log = os.open(node.agent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchown(log, user.uid, user.gid)
        argv = [
            "setpriv",
            f"--reuid={user.uid}",
            f"--regid={user.gid}",
            "--init-groups",
            "--",
            *common.pgherd_argv(),
            "agent",
            "run",
            "--node",
            name,
            "--config",
            str(self.config_path),
        ]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(user.home), "LANG": "C.UTF-8"}
        started = time.monotonic()
        try:
            self.procs[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd="/",
                umask=0o077,
            )
        finally:
            os.close(log)
        return started

    def leader(self) -> str:
        for status in statuses(list(self.config.nodes), timeout=2):
            if str(status.role) == "primary" and str(status.state) == "running":
                return status.name
        raise common.CommandError("no primary")

    def remove_node(self, name: str, leader: str) -> None:
        """Stop an added node (PostgreSQL, then its agent) and drop its slot."""
        self.cli("node", "stop", name, check=False)
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        common.drop_slot(self.cli("connstr", leader).stdout.strip(), name)

    def stop(self) -> None:
        for name in list(self.procs):
            self.cli("node", "stop", name, check=False)
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs.clear()
        common.reap()


def stop_under(directory: Path) -> None:
    """What runs under ``directory`` when a round ends: keepers take PostgreSQL down on
    SIGTERM (a fast shutdown), as at a system shutdown."""
    for _ in range(3):
        left = common.processes_under(directory)
        if not left:
            return
        for pid in left:
            subprocess.run(["kill", "-TERM", str(pid)], capture_output=True, check=False)
        time.sleep(3)
        common.reap()
    for pid in common.processes_under(directory):
        subprocess.run(["kill", "-KILL", str(pid)], capture_output=True, check=False)
    common.reap()


# ---- the two measures --------------------------------------------------------------------


def bootstrap_once(root: Path) -> float:
    directory = root / "pgherd-bench-deploy-agents"
    with common.fresh_directory(directory):
        agents = Agents(directory, common.free_port_base(3))
        try:
            agents.write(3)
            started = min(agents.start(n) for n in ("node1", "node2", "node3"))
            done = wait_streaming(agents.config, ["node1", "node2", "node3"])
            return done - started
        finally:
            agents.stop()
            stop_under(directory)


def lab_once(root: Path) -> float:
    directory = root / "pgherd-bench-deploy-lab"
    with common.fresh_directory(directory):
        lab = common.Lab(directory, 3, common.free_port_base(3))
        return lab.up()


def bench_bootstrap(root: Path, runs: int) -> dict[str, Any]:
    agents: list[float] = []
    lab: list[float] = []
    for run in range(runs):
        order = [("agents", agents, bootstrap_once), ("lab", lab, lab_once)]
        for name, found, once in order if run % 2 == 0 else reversed(order):
            seconds = once(root)
            found.append(seconds)
            common.console.print(f"  bootstrap #{run + 1} {name}: {seconds:.2f} s")
    return {"agents_s": common.summary(agents), "lab_up_s": common.summary(lab)}


def bench_add_node(root: Path, runs: int, scale: int) -> dict[str, Any]:
    directory = root / "pgherd-bench-deploy-add"
    by_agent: list[float] = []
    by_hand: list[float] = []
    copy_only: list[float] = []
    with common.fresh_directory(directory):
        agents = Agents(directory, common.free_port_base(3 + 2 * runs))
        try:
            agents.write(3)
            for name in ("node1", "node2", "node3"):
                agents.start(name)
            wait_streaming(agents.config, ["node1", "node2", "node3"])
            leader = agents.leader()
            uri = agents.cli("connstr", leader).stdout.strip()
            common.console.print(f"  filling {leader}: pgbench -i -s {scale}")
            common.pgbench_init(uri, scale)
            common.query(uri, "CHECKPOINT")
            names = agents.add_nodes(2 * runs)
            for run in range(runs):
                agent_node, hand_node = names[2 * run], names[2 * run + 1]
                ways = [("agent", agent_node), ("hand", hand_node)]
                for way, node in ways if run % 2 == 0 else reversed(ways):
                    if way == "agent":
                        started = agents.start(node)
                        seconds = wait_streaming(agents.config, [node]) - started
                        by_agent.append(seconds)
                    else:
                        config = agents.config
                        data_dir = str(config.node(node).data_dir)
                        began = time.monotonic()
                        agents.cli(
                            "standby",
                            "clone",
                            "--upstream",
                            leader,
                            "--node",
                            node,
                            "--data-dir",
                            data_dir,
                        )
                        copied = time.monotonic() - began
                        agents.start(node)
                        seconds = wait_streaming(agents.config, [node]) - began
                        by_hand.append(seconds)
                        copy_only.append(copied)
                    common.console.print(f"  add a node #{run + 1} by {way}: {seconds:.2f} s")
                    agents.remove_node(node, leader)
        finally:
            agents.stop()
            stop_under(directory)
    return {
        "by_agent_s": common.summary(by_agent),
        "by_hand_s": common.summary(by_hand),
        "standby_clone_only_s": common.summary(copy_only),
    }


# ---- main ----------------------------------------------------------------------------------


def ratio(a: dict[str, Any], b: dict[str, Any]) -> str:
    return f"{a['median'] / b['median']:.2f}×" if b["median"] else "-"


def report(result: dict[str, Any]) -> None:
    rows: list[list[object]] = []
    if "bootstrap" in result:
        b = result["bootstrap"]
        rows.append(
            [
                "3 nodes, nothing → streaming",
                b["agents_s"]["median"],
                "lab up --nodes 3",
                b["lab_up_s"]["median"],
                ratio(b["agents_s"], b["lab_up_s"]),
            ]
        )
    if "add_node" in result:
        a = result["add_node"]
        rows.append(
            [
                "a new node → streaming",
                a["by_agent_s"]["median"],
                "standby clone + agent",
                a["by_hand_s"]["median"],
                ratio(a["by_agent_s"], a["by_hand_s"]),
            ]
        )
        rows.append(
            [
                "  (the copy alone)",
                None,
                "standby clone",
                a["standby_clone_only_s"]["median"],
                "-",
            ]
        )
    common.print_table(
        "pgherd's agents vs the tools they replace (median seconds)",
        ["what", "agents", "replaces", "seconds", "ratio"],
        rows,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.deploy",
        description="a cluster made by its agents vs lab up; a node added by its agent vs "
        "standby clone",
    )
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 ≈ 1 GB)")
    parser.add_argument("--runs", type=int, default=3, help="rounds of each measure")
    parser.add_argument("--only", choices=("bootstrap", "add"), help="one measure only")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("/var/tmp"),
        help="where the clusters go (the OS user postgres must reach it)",
    )
    args = parser.parse_args(argv)
    if args.scale < 1 or args.runs < 1:
        parser.error("--scale and --runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.become_subreaper()
    started = common.now()
    result = common.result_header("deploy", started, {"scale": args.scale, "runs": args.runs})
    if args.only in (None, "bootstrap"):
        common.console.print(f"bootstrap: {args.runs} rounds of agents vs lab up --nodes 3")
        result["bootstrap"] = bench_bootstrap(args.root, args.runs)
    if args.only in (None, "add"):
        common.console.print(f"add a node: scale {args.scale}, {args.runs} rounds each way")
        result["add_node"] = bench_add_node(args.root, args.runs, args.scale)
    result["load_average_end"] = common.load_average()
    result["finished"] = common.now().isoformat(timespec="seconds")
    left = [
        pid
        for name in ("agents", "lab", "add")
        for pid in common.processes_under(args.root / f"pgherd-bench-deploy-{name}")
    ]
    result["processes_left"] = left
    report(result)
    path = common.write_json("deploy", result, started)
    common.console.print(f"results: {path}")
    if left:
        common.console.print(f"[red]processes left behind:[/] {left}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
