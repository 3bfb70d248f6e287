"""The fault suite's long form: every fault of tests/faults/catalogue.py, alone and
combined, ``--runs`` times, in synchronous and asynchronous mode, each judged by the
checker from what the clients were told; then a healthy primary under heavy load for
``--load-minutes`` (pgbench with more clients than cores, CPU hogs, a slow disk, a delayed
link to the store): it must keep its lease all along, and the least of its lease it had
left at a renewal is reported. Prints docs/reliability.md's table and writes JSON to
bench/results/; ``--update-docs`` puts the table in docs/reliability.md.

Each mode gets a cluster of its own: pgherd on four test hosts (network namespaces, a
three-member etcd, agents started as their systemd unit starts them, each node's data on a
disk of its own, the archive on a small file system), a fake watchdog per node with
``--watchdog``.

    $VENV/bin/python -m bench.faults                       # the full run (~2 h quiet)
    $VENV/bin/python -m bench.faults --runs 1 --load-minutes 3 --modes sync
    $VENV/bin/python -m bench.faults --faults host-loss,pause-host --runs 3

The figures: acknowledged writes lost (in asynchronous mode, those lost inside the
documented window, counted; any other is a violation), split-brain intervals (two
primaries acknowledging writes at overlapping times), time to recover (the longest any
client waited for an acknowledged write from the fault's start; median and max over the
runs), time to settle after the fault ended, false failovers (the primary moved when the
fault should not have moved it), and every violation with its excerpt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults import runner
from tests.faults.catalogue import (
    FAULTS,
    Combined,
    CpuHogs,
    Expect,
    LinkDelayed,
    LinkLossy,
    NotHere,
    SlowDisk,
    Targets,
)
from tests.faults.checker import Mode
from tests.faults.cluster import CLIENT_HOST, FaultCluster, deploy
from tests.faults.runner import RunResult

from bench import common
from pgherd.pg import osuser, process

ROOT = Path("/var/tmp/pgherd-bench-faults")
DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
NOT_HERE = "not run here"
BEGIN, END = "<!-- BEGIN bench/faults.py table -->", "<!-- END bench/faults.py table -->"


@dataclass
class Row:
    fault: str
    mode: Mode
    expect: Expect
    results: list[RunResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # runs the harness could not finish

    def figures(self) -> dict[str, Any]:
        waits = [r.longest_wait for r in self.results]
        settles = [
            r.verdict.converged_after for r in self.results if r.verdict.converged_after is not None
        ]
        return {
            "fault": self.fault,
            "mode": str(self.mode),
            "expect": str(self.expect),
            "runs": len(self.results),
            "lost": sum(r.verdict.lost for r in self.results),
            "lost_in_window": sum(r.verdict.lost_in_window for r in self.results),
            "split_brain": sum(len(r.verdict.overlaps) for r in self.results),
            "split_brain_s": round(
                sum(i.seconds for r in self.results for i in r.verdict.overlaps), 3
            ),
            "recover_s": common.summary(waits),
            "settle_s": common.summary(settles),
            "failovers": sum(1 for r in self.results if r.failover),
            "false_failovers": sum(1 for r in self.results if r.false_failover),
            "problems": [p for r in self.results for p in r.problems()],
            "errors": self.errors,
            "load": [list(r.load) for r in self.results],
        }


def _median(summary: dict[str, Any]) -> str:
    if summary["median"] is None or summary["median"] != summary["median"]:
        return "-"
    return f"{summary['median']:.1f} / {summary['max']:.1f}"


def _violations(row: dict[str, Any]) -> str:
    if not row["runs"] and row["errors"] and all(e.startswith(NOT_HERE) for e in row["errors"]):
        return "not run here"
    problems = len(row["problems"]) + len(row["errors"])
    return str(problems) if problems else "none"


def table_rows(rows: list[dict[str, Any]]) -> list[list[object]]:
    out: list[list[object]] = []
    for r in rows:
        lost = str(r["lost"])
        if r["mode"] == str(Mode.ASYNC) and r["lost"]:
            lost = f"{r['lost']} ({r['lost_in_window']} in window)"
        out.append(
            [
                r["fault"],
                r["mode"][:5],
                r["runs"],
                lost,
                f"{r['split_brain']} ({r['split_brain_s']:.2f} s)" if r["split_brain"] else "0",
                _median(r["recover_s"]),
                _median(r["settle_s"]),
                f"{r['failovers']}/{r['runs']}",
                r["false_failovers"],
                _violations(r),
            ]
        )
    return out


COLUMNS = [
    "fault",
    "mode",
    "runs",
    "acked writes lost",
    "split-brain intervals",
    "recover s (median / max)",
    "settle s (median / max)",
    "failovers",
    "false failovers",
    "violations",
]


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        f"Run {meta['started']:%Y-%m-%d %H:%M} UTC, commit {meta['machine']['commit']}, "
        f"{meta['machine']['cores']} cores, load average {meta['load_before']} before and "
        f"{meta['load_after']} after (other engineers' tests ran meanwhile); "
        f"`{meta['command']}`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in table_rows(rows):
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    for key, load in meta.get("load_runs", {}).items():
        lines.append(
            f"Under load ({key}, {load['minutes']:g} min: {load['what']}): "
            f"{load['false_failovers']} false failovers, the least of its lease the leader "
            f"had left at a renewal {load['least_left']} s (of {load['ttl']:g}), "
            f"{load['renewals']} renewals, pgbench {load['tps']} tps, its sessions cut "
            f"{load.get('pgbench_cut', 0)} times."
        )
    lines.append(END)
    return "\n".join(lines)


def update_docs(text: str) -> None:
    doc = DOC.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC} has no {BEGIN} … {END} block")
    DOC.write_text(pattern.sub(lambda _m: text, doc))


# ---- the load run ------------------------------------------------------------------------


def metric(c: FaultCluster, node: str, name: str) -> list[tuple[str, float]]:
    """Samples of ``name`` on ``node``'s /metrics (label text, value), read from the
    client host."""
    url = c.deployment.node(node).api_url
    done = subprocess.run(
        c.hosts[CLIENT_HOST].argv("curl", "-sk", "--max-time", "5", f"{url}/metrics"),
        capture_output=True,
        text=True,
        check=False,
    )
    found = []
    for line in done.stdout.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                found.append((key, float(value)))
    return found


def pgbench(
    c: FaultCluster, *args: str, seconds: float | None = None
) -> subprocess.CompletedProcess[str]:
    config = c.deployment.config
    uri = c.conninfo_uri()
    argv = ["pgbench", *args, uri]
    env = {"PATH": "/usr/lib/postgresql/15/bin:/usr/bin:/bin", "PGPASSFILE": str(config.passfile)}
    return subprocess.run(
        c.hosts[CLIENT_HOST].argv(*argv),
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=(seconds or 600) + 300,
    )


def load_run(c: FaultCluster, minutes: float, out: Path, store_delay_ms: int = 0) -> dict[str, Any]:
    """A healthy primary under pgbench (8 clients on 2 cores), CPU hogs, a slow disk and a
    lossy link to the store (5 % dropped: retransmitted after 200 ms or more), ``minutes``
    long: no failover allowed."""
    primary = c.primary()
    init = pgbench(c, "-i", "-s", "10", "-q")
    if init.returncode != 0:
        raise RuntimeError(f"pgbench -i: {init.stderr[-400:]}")
    targets = Targets(primary, c.standbys(primary)[0])
    hold = minutes * 60
    load = Combined(
        CpuHogs(hold=hold),
        SlowDisk(hold=hold),
        LinkDelayed(store_delay_ms, store_only=True, hold=hold)
        if store_delay_ms
        else LinkLossy(5, store_only=True, hold=hold),
    )
    link = (
        f"its link to etcd delayed {store_delay_ms} ms"
        if store_delay_ms
        else "5 % of its packets to and from etcd dropped"
    )
    began = time.time()
    load.inject(c, targets)
    runs: list[subprocess.CompletedProcess[str]] = []
    try:
        # pgbench again after it was cut (a demotion, a fence): the load lasts the whole
        # time, and every cut is counted.
        while (left := hold - (time.time() - began)) > 5:
            runs.append(pgbench(c, "-c", "8", "-j", "2", "-T", str(int(left)), "-n", seconds=left))
            if runs[-1].returncode:
                time.sleep(2)
    finally:
        load.heal(c, targets)
    # A failover begun as the load ended is seen too.
    time.sleep((c.deployment.config.ha.ttl if c.deployment.config.ha else 3.0) + 3)
    leaders: list[str] = []
    for o in c.observations(began):
        if o.leader is not None and (not leaders or leaders[-1] != o.leader):
            leaders.append(o.leader)
    least = metric(c, primary, "pgherd_lease_left_min_seconds")
    counts = metric(c, primary, "pgherd_lease_left_at_renewal_seconds_count")
    done = sum(
        int(m.group(1))
        for r in runs
        if (m := re.search(r"number of transactions actually processed: (\d+)", r.stdout))
    )
    cut = [r for r in runs if r.returncode]
    least_left = round(least[0][1], 3) if least else None
    found: dict[str, Any] = {
        "minutes": minutes,
        "what": "pgbench -c 8 -j 2 (2 cores) + 2 CPU hogs per core + the primary's disk at "
        f"20 write IOPS + {link}",
        "leaders": leaders,
        "false_failovers": max(0, len(leaders) - 1),
        "least_left": least_left,
        "pgbench_cut": len(cut),
        "pgbench_errors": cut[0].stderr.strip().splitlines()[-5:] if cut else [],
        "renewals": int(counts[0][1]) if counts else None,
        "ttl": c.deployment.config.ha.ttl if c.deployment.config.ha else 3.0,
        "loop_wait": c.deployment.config.ha.loop_wait if c.deployment.config.ha else None,
        "retry_timeout": c.deployment.config.ha.retry_timeout if c.deployment.config.ha else None,
        "tps": round(done / hold, 1),
    }
    (out / "load.json").write_text(json.dumps(found, indent=1))
    if len(leaders) > 1 or (least_left is not None and least_left < 0) or cut:
        # The agents' logs of a load phase that moved the lease, renewed it late or cut
        # pgbench's sessions (the nodes' disks, where they are written, go with the
        # cluster).
        runner.keep_logs(c, out)
        found["kept"] = True
    return found


# ---- main --------------------------------------------------------------------------------


def run_mode(
    mode: Mode,
    names: list[str],
    runs: int,
    load_minutes: float,
    store_delay_ms: int,
    watchdog: bool,
    user: osuser.OsUser,
    timing: dict[str, float] | None = None,
) -> tuple[list[Row], dict[str, Any] | None]:
    directory = ROOT / f"{mode.value[:5]}-{os.getpid()}"
    rows = []
    load = None
    with deploy(directory / "c", user, mode, watchdog=watchdog, **(timing or {})) as cluster:
        index = 0
        for name in names:
            fault = FAULTS[name]()
            row = Row(fault.name, mode, fault.expect)
            rows.append(row)
            for attempt in range(runs):
                fault = FAULTS[name]()
                common.console.print(f"[bold]{mode}[/] {fault.name} #{attempt + 1}")
                try:
                    result = runner.run(cluster, fault, directory / "runs" / f"{index:03d}", index)
                except NotHere as exc:
                    row.errors.append(f"{NOT_HERE}: {exc}")
                    common.console.print(f"  [yellow]not run here[/]: {exc}")
                    break
                except (AssertionError, RuntimeError, subprocess.SubprocessError) as exc:
                    row.errors.append(f"run {attempt + 1}: {str(exc)[:1500]}")
                    common.console.print(f"  [red]could not finish[/]: {str(exc)[:300]}")
                    index += 1
                    continue
                index += 1
                row.results.append(result)
                problems = result.problems()
                common.console.print(
                    f"  {result.primary_before} → {result.primary_after}, waited "
                    f"{result.longest_wait:.1f} s, settled "
                    f"{result.verdict.converged_after or float('nan'):.1f} s, "
                    f"lost {result.verdict.lost}, "
                    f"{'[red]' + str(len(problems)) + ' problems[/]' if problems else 'clean'}"
                )
                for problem in problems:
                    common.console.print(f"    {problem}", soft_wrap=True)
        if load_minutes > 0:
            common.console.print(f"[bold]{mode}[/] {load_minutes:g} min under load")
            load = load_run(cluster, load_minutes, directory, store_delay_ms)
            common.console.print(f"  {load}")
    process.reap_zombie_children()
    if load is not None and load.get("kept"):
        common.console.print(f"[yellow]the load phase's logs, kept for reading[/]: {directory}")
    elif any(r.errors or any(x.problems() for x in r.results) for r in rows):
        # runs/NNN of a run that broke a rule: the clients' histories, the agents' logs
        common.console.print(f"[yellow]kept for reading[/]: {directory / 'runs'}")
    else:
        common.remove_tree(directory)
    return rows, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--faults", default=",".join(FAULTS), help="names, comma-separated")
    parser.add_argument("--load-minutes", type=float, default=10.0)
    parser.add_argument(
        "--store-delay",
        type=int,
        default=0,
        help="under load, delay the primary's link to etcd this many ms (default: drop 5 %% "
        "of its packets instead)",
    )
    parser.add_argument("--watchdog", action="store_true", help="a fake watchdog per node")
    for option, what in (
        ("--ttl", "ha.ttl"),
        ("--loop-wait", "ha.loop_wait"),
        ("--retry-timeout", "ha.retry_timeout"),
    ):
        parser.add_argument(option, type=float, help=f"{what} (default: the harness's)")
    parser.add_argument("--update-docs", action="store_true")
    args = parser.parse_args()
    timing = {
        key: value
        for key, value in (
            ("ttl", args.ttl),
            ("loop_wait", args.loop_wait),
            ("retry_timeout", args.retry_timeout),
        )
        if value is not None
    }
    names = [n for n in args.faults.split(",") if n]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise SystemExit(f"unknown faults: {', '.join(unknown)} (known: {', '.join(FAULTS)})")
    common.become_subreaper()
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)  # noqa: S103 - postgres must reach the directories below
    user = osuser.resolve("postgres")
    started = common.now()
    load_before = common.load_average()
    rows: list[Row] = []
    loads: dict[str, Any] = {}
    for mode_name in args.modes.split(","):
        mode = Mode.SYNC if mode_name.startswith("sync") else Mode.ASYNC
        found, load = run_mode(
            mode,
            names,
            args.runs,
            args.load_minutes,
            args.store_delay,
            args.watchdog,
            user,
            timing,
        )
        rows += found
        if load is not None:
            loads[str(mode)] = load
    figures = [r.figures() for r in rows]
    meta = {
        "started": started,
        "machine": common.machine(),
        "load_before": load_before,
        "load_after": common.load_average(),
        "command": "python -m bench.faults " + " ".join(sys.argv[1:]),
        "load_runs": loads,
    }
    common.print_table("faults: what clients were told", COLUMNS, table_rows(figures))
    for f in figures:
        for problem in f["problems"] + f["errors"]:
            common.console.print(f"[red]{f['fault']} ({f['mode']})[/]: {problem}", soft_wrap=True)
    path = common.write_json("faults", {"benchmark": "faults", **meta, "rows": figures}, started)
    common.console.print(f"JSON: {path}")
    text = markdown(figures, meta)
    if args.update_docs:
        update_docs(text)
        common.console.print(f"updated {DOC}")
    else:
        print(text)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
