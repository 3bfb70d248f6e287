"""What TLS costs, side by side in one run: two 3-node labs (automatic failover, sqlite
store), one with TLS (the default: the agents' HTTPS API, PostgreSQL with ``ssl = on``
and ``sslmode=verify-full`` everywhere) and one with ``--no-tls``, measured in
alternation so that the machine's load falls on both alike.

1. ``pgherd cluster show`` wall time and the CLI's CPU time (a fresh CLI each time: a TLS
   handshake per agent). The CPU time is the steadier figure on a shared machine, where
   the wall time is mostly the other load.
2. Write unavailability of a switchover, as a client committing every 10 ms through a
   multi-host URI with ``target_session_attrs=read-write`` sees it (``sslmode`` prefer:
   TLS when the server offers it, as a client of each cluster would connect).
3. Write unavailability after a host loss (the primary's agent, postmaster and backends
   killed at once), then the old primary back as a standby.
4. Clone throughput: ``pgherd standby clone`` of a pgbench-filled primary into a new node
   (pg_basebackup over the replication connection, encrypted or not), MB/s.

Each figure is reported per mode and as the ratio TLS / plain (target: within 5 %).

    $VENV/bin/python -m bench.tls [--runs 5] [--show-runs 20] [--scale 50]
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.switchover import multi_host, pgherd_switchover
from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.lab import agents, layout
from pgherd.pg import process

ROOT = Path("/var/tmp/pgherd-bench-tls")
MODES = ("tls", "plain")


class ModeLab:
    """One lab of the comparison and its client."""

    def __init__(self, mode: str, directory: Path) -> None:
        self.mode = mode
        base = common.free_port_base(4, (0, layout.API_PORT_OFFSET))
        extra = ("--failover", "automatic") + (("--no-tls",) if mode == "plain" else ())
        self.lab = common.Lab(directory, 3, base, extra=extra)
        self.lab.up()
        self.config: ClusterConfig = config_mod.load(self.lab.config_path)
        self.clones = 0

    def show(self) -> dict[str, Any]:
        done = self.lab.cli("cluster", "show", "--json", check=False, timeout=60)
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.show()
            if not data.get("problems") and data.get("primary"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"{self.mode} lab not healthy after {timeout:.0f} s")

    def primary(self) -> str:
        name = self.show().get("primary")
        if name is None:
            raise RuntimeError(f"{self.mode} lab has no primary")
        return str(name)

    def host_loss(self, writer: common.Writer) -> dict[str, float]:
        """Kill the primary's agent, postmaster and backends; the client's outage until
        writes come back on the new primary; then the old one back as a standby."""
        victim = self.primary()
        node = self.config.node(victim)
        pm = process.read_postmaster_pid(node.data_dir)
        agent = agents.running_agent(node)
        assert pm is not None
        assert agent is not None
        since = time.monotonic()
        for pid in [agent, pm.pid, *_children(pm.pid)]:
            process.signal_pid(pid, signal.SIGKILL)
        back = writer.outage_after(since)
        failed = next(t for t in writer.failed if t > since)
        common.reap()
        common.run_checked([*self.lab.pgherd, "lab", "up", "--dir", str(self.lab.directory)], 300)
        self.wait_healthy()
        writer.steady()
        return {"unavailable": back - failed, "victim_index": float(victim[-1])}

    def clone(self) -> dict[str, float]:
        """One clone of the primary into a new node's directory, removed afterwards."""
        self.clones += 1
        name = f"clone{self.clones}"
        data_dir = self.lab.directory / name / "data"
        primary = self.primary()
        port = common.free_port_base(1, (0, layout.API_PORT_OFFSET))
        done = self.lab.cli(
            "standby",
            "clone",
            "--upstream",
            primary,
            "--node",
            name,
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--api-port",
            str(port + layout.API_PORT_OFFSET),
            "--json",
            timeout=1800,
        )
        result = json.loads(done.stdout)
        slot = str(result.get("slot") or name)
        uri = self.lab.connstr(primary)
        common.drop_slot(uri, slot)
        common.remove_tree(data_dir.parent)
        _forget_node(self.lab.config_path, name)
        seconds = float(result["seconds"])
        return {"seconds": seconds, "mb_per_s": result["bytes_copied"] / 1e6 / seconds}


def _children(pid: int) -> list[int]:
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit() and process.parent_pid(int(e.name)) == pid
    ]


def _forget_node(config_path: Path, name: str) -> None:
    """Take a benchmark's clone out of the config again (standby clone added it)."""
    from pgherd.pg import osuser

    config = config_mod.load(config_path)
    raw = config.model_dump(mode="json")
    raw["nodes"] = [n for n in raw["nodes"] if n["name"] != name]
    kept = config_mod.parse(raw, source=str(config_path))
    osuser.resolve(config.os_user).write_file(config_path, config_mod.dump(kept))


def ratio(tls: float, plain: float) -> float | None:
    return tls / plain if plain > 0 else None


def run(runs: int, show_runs: int, scale: int) -> dict[str, Any]:
    labs: dict[str, ModeLab] = {}
    results: dict[str, dict[str, list[float]]] = {
        m: {"show": [], "show_cpu": [], "switchover": [], "failover": [], "clone_mb_per_s": []}
        for m in MODES
    }
    try:
        for mode in MODES:
            common.console.print(f"lab up ({mode}) …")
            labs[mode] = ModeLab(mode, ROOT / mode)
            labs[mode].wait_healthy()
            common.console.print(f"  pgbench -i -s {scale} on the {mode} lab's primary …")
            common.pgbench_init(labs[mode].lab.connstr(labs[mode].primary()), scale)
        common.console.print(f"cluster show, {show_runs} runs each, alternating …")
        for i in range(show_runs):
            for mode in MODES if i % 2 == 0 else MODES[::-1]:
                lab = labs[mode].lab
                wall, cpu, _ = common.timed_cpu(functools.partial(lab.cli, "cluster", "show"))
                results[mode]["show"].append(wall)
                results[mode]["show_cpu"].append(cpu)
        writers = {m: common.Writer(multi_host(labs[m].config)) for m in MODES}
        for writer in writers.values():
            writer.start()
        try:
            for i in range(runs):
                for mode in MODES if i % 2 == 0 else MODES[::-1]:
                    labs[mode].wait_healthy()
                    writers[mode].steady()
                    common.console.print(f"{mode}:")
                    got = pgherd_switchover(labs[mode].lab, i, writers[mode])
                    results[mode]["switchover"].append(got["unavailable"])
            for i in range(runs):
                for mode in MODES if i % 2 == 0 else MODES[::-1]:
                    writers[mode].steady()
                    lost = labs[mode].host_loss(writers[mode])
                    common.console.print(
                        f"  {mode} host loss #{i + 1}: unavailable {lost['unavailable']:.3f} s"
                    )
                    results[mode]["failover"].append(lost["unavailable"])
        finally:
            for writer in writers.values():
                writer.stop()
        for i in range(runs):
            for mode in MODES if i % 2 == 0 else MODES[::-1]:
                cloned = labs[mode].clone()
                common.console.print(
                    f"  {mode} clone #{i + 1}: {cloned['mb_per_s']:.0f} MB/s "
                    f"({cloned['seconds']:.1f} s)"
                )
                results[mode]["clone_mb_per_s"].append(cloned["mb_per_s"])
    finally:
        for mode in MODES:
            common.remove_lab(ROOT / mode)
    return summarize(results, runs, show_runs, scale)


def summarize(
    results: dict[str, dict[str, list[float]]], runs: int, show_runs: int, scale: int
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for what in ("show", "show_cpu", "switchover", "failover", "clone_mb_per_s"):
        tls = common.median(results["tls"][what])
        plain = common.median(results["plain"][what])
        figures[what] = {
            "tls": common.summary(results["tls"][what]),
            "plain": common.summary(results["plain"][what]),
            "ratio_tls_to_plain": ratio(tls, plain),
        }
    return {
        "runs": runs,
        "show_runs": show_runs,
        "scale": scale,
        "figures": figures,
        "machine": common.machine(),
        "load_average": common.load_average(),
    }


def report(result: dict[str, Any]) -> None:
    labels = {
        "show": "cluster show, wall (s)",
        "show_cpu": "cluster show, CPU of the CLI (s)",
        "switchover": "switchover write unavailability (s)",
        "failover": "host-loss write unavailability (s)",
        "clone_mb_per_s": "clone throughput (MB/s)",
    }
    rows = []
    for what, label in labels.items():
        figure = result["figures"][what]
        ratio_value = figure["ratio_tls_to_plain"]
        rows.append(
            [
                label,
                figure["tls"]["median"],
                figure["plain"]["median"],
                f"{ratio_value:.3f}" if ratio_value is not None else "-",
            ]
        )
    common.print_table(
        "TLS against plain text (medians; ratio TLS / plain)",
        ["figure", "TLS", "plain", "ratio"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="switchovers, host losses, clones")
    parser.add_argument("--show-runs", type=int, default=20, help="cluster show runs per mode")
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale of the primary")
    args = parser.parse_args()
    common.become_subreaper()
    result = run(args.runs, args.show_runs, args.scale)
    report(result)
    path = common.write_json("tls", result)
    common.console.print(f"results in {path}")


if __name__ == "__main__":
    main()
