"""Benchmark of issue 2: ``pgherd standby clone`` against plain ``pg_basebackup``, the wall
time of ``pgherd lab up --nodes 3``, and the latency of ``pgherd cluster show``.

    $VENV/bin/python -m bench.clone                      # the real run: scale 70 (~1 GB), 3 runs
    $VENV/bin/python -m bench.clone --scale 5 --runs 1   # a quick check (~1 minute)

Clone: a one-node lab is filled with ``pgbench -i -s SCALE`` and checkpointed; then every
round copies it with each tool, in an order that alternates between rounds (ABC, CBA, ABC…)
so that neither tool always profits from a warm cache:

- ``pgherd``: ``pgherd standby clone --upstream node1 --node cloneN --data-dir … --json``,
  a new node each round (so each run also adds the node to pgherd.yaml, which it validates
  with pydantic first), timed as a user sees it: the whole command, from process start to
  exit;
- ``pgherd, node listed``: ``pgherd standby clone --upstream node1 --node listedN --json``
  of a node pgherd.yaml already lists (added, and the file read once by ``pgherd
  connstr``, outside the timing), as on a real cluster whose one config names every host
  and has been read before: the quick path, without pydantic;
- ``pg_basebackup``: what an operator types by hand, ``pg_basebackup -d URI -X stream -c
  fast -D DIR``, as ``postgres`` with the same replication role and passfile;
- ``pg_basebackup -P --slot``: the flags pgherd passes (progress, which makes the server
  add up the sizes first, and a new slot), to tell the cost of those flags from the cost of
  pgherd's own work around pg_basebackup.

Slots are dropped and copies deleted between runs (outside the timings). The target is
pgherd / pg_basebackup ≤ 1.05 on medians. Each run also records the CPU time the command
and its children used (less disturbed by other work on the machine than wall time).

Lab: ``pgherd lab up --nodes 3`` in a fresh directory, RUNS times, ``lab down --purge``
between. On the first of those labs, ``pgherd cluster show`` is run SHOW_RUNS times as a
separate process (target: median under 0.5 s), next to what it is made of: the CLI's
start-up (``pgherd connstr``, which reads the config and prints), one agent's ``GET
/status`` round trip, and the three agents asked at once in-process; ``psql`` reading
pg_stat_replication is PostgreSQL's own floor for a look at replication.
"""

from __future__ import annotations

import argparse
import http.client
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Lab
from pgherd import config as config_mod
from pgherd.clients.agent import statuses
from pgherd.config import NodeConfig
from pgherd.lab.layout import API_PORT_OFFSET
from pgherd.pg import osuser
from pgherd.tls.context import client_context

CLONE_TARGET_RATIO = 1.05
SHOW_TARGET_SECONDS = 0.5
PGHERD = "pgherd"
LISTED = "pgherd, node listed"
PLAIN = "pg_basebackup"
FLAGS = "pg_basebackup -P --slot"
TOOLS = (PGHERD, LISTED, PLAIN, FLAGS)
# What `pgherd standby clone` imports (the quick path), and with a node to add to the config.
CLONE_MODULES = ("pgherd.cli.entry", "pgherd.cli.quick.args", "pgherd.cli.quick.clone")
ADD_NODE_MODULES = (*CLONE_MODULES, "pgherd.config")
IMPORT_RUNS = 5


# ---- clone ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloneRun:
    round: int
    position: int
    tool: str
    seconds: float
    cpu_seconds: float  # of the command and its children (pg_basebackup for pgherd)
    basebackup_seconds: float | None  # pgherd's own timing of its pg_basebackup
    copy_bytes: int  # the size of the copy on disk


@dataclass
class CloneBench:
    lab: Lab
    superuser_uri: str
    replication_uri: str
    rounds: int

    def run(self, tool: str, round_no: int, position: int) -> CloneRun:
        runner: dict[str, Callable[[int], tuple[float, float, float | None, Path]]] = {
            PGHERD: self._pgherd,
            LISTED: self._listed,
            PLAIN: self._plain,
            FLAGS: self._flags,
        }
        seconds, cpu, basebackup_seconds, target = runner[tool](round_no)
        size = directory_bytes(target)
        common.remove_tree(target)
        return CloneRun(round_no, position, tool, seconds, cpu, basebackup_seconds, size)

    def _pgherd(self, round_no: int) -> tuple[float, float, float | None, Path]:
        name = f"clone{round_no + 1}"
        home = self.lab.directory / name
        port = self.lab.port_base + 1 + round_no
        seconds, cpu, done = common.timed_cpu(
            lambda: self.lab.cli(
                "standby",
                "clone",
                "--upstream",
                "node1",
                "--node",
                name,
                "--data-dir",
                home / "data",
                "--port",
                str(port),
                "--api-port",
                str(port + API_PORT_OFFSET),
                "--json",
            )
        )
        result = json_in(done.stdout)
        common.drop_slot(self.superuser_uri, name)
        return seconds, cpu, float(result["seconds"]), home

    def _listed(self, round_no: int) -> tuple[float, float, float | None, Path]:
        name = f"listed{round_no + 1}"
        home = self.lab.directory / name
        port = self.lab.port_base + 1 + self.rounds + round_no
        add_node(self.lab.config_path, name, home / "data", port)  # outside the timing
        self.lab.cli("connstr", "node1")  # reads the new file once, as a first command would
        seconds, cpu, done = common.timed_cpu(
            lambda: self.lab.cli(
                "standby", "clone", "--upstream", "node1", "--node", name, "--json"
            )
        )
        result = json_in(done.stdout)
        common.drop_slot(self.superuser_uri, name)
        return seconds, cpu, float(result["seconds"]), home

    def _plain(self, round_no: int) -> tuple[float, float, float | None, Path]:
        target = self.lab.directory / f"plain{round_no + 1}"
        argv = [
            common.pg_program("pg_basebackup"),
            "-d",
            self.replication_uri,
            "-X",
            "stream",
            "-c",
            "fast",
            "-D",
            str(target),
        ]
        seconds, cpu, _ = common.timed_cpu(lambda: common.as_os_user(argv))
        return seconds, cpu, None, target

    def _flags(self, round_no: int) -> tuple[float, float, float | None, Path]:
        target = self.lab.directory / f"flags{round_no + 1}"
        slot = f"flags{round_no + 1}"
        argv = [
            common.pg_program("pg_basebackup"),
            "--dbname",
            self.replication_uri,
            "--pgdata",
            str(target),
            "--wal-method=stream",
            "--checkpoint=fast",
            "--progress",
            "--no-password",
            "--slot",
            slot,
            "--create-slot",
        ]
        seconds, cpu, _ = common.timed_cpu(lambda: common.as_os_user(argv))
        common.drop_slot(self.superuser_uri, slot)
        return seconds, cpu, None, target


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def json_in(stdout: str) -> dict[str, Any]:
    """The JSON object a ``--json`` command printed (after whatever a progress bar left)."""
    start = stdout.find("{")
    if start < 0:
        raise common.CommandError(f"no JSON in the output: {stdout.strip()[:200]}")
    value, _ = json.JSONDecoder().raw_decode(stdout[start:])
    if not isinstance(value, dict):
        raise common.CommandError(f"expected a JSON object, got {stdout.strip()[:200]}")
    return value


def add_node(config_path: Path, name: str, data_dir: Path, port: int) -> None:
    """List ``name`` in pgherd.yaml, as an operator does before cloning it."""
    config = config_mod.load(config_path)
    dumped = config.model_dump(mode="json")
    entry = {
        "name": name,
        "port": port,
        "api_port": port + API_PORT_OFFSET,
        "data_dir": str(data_dir),
    }
    updated = config_mod.parse(dumped | {"nodes": [*dumped["nodes"], entry]})
    osuser.resolve(config.os_user).write_file(config_path, config_mod.dump(updated))


def directory_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bench_clone(root: Path, scale: int, runs: int) -> dict[str, Any]:
    directory = root / "pgherd-bench-clone"
    with common.fresh_directory(directory):
        lab = Lab(directory, nodes=1, port_base=common.free_port_base(1 + 2 * runs))
        with lab:
            lab_up = lab.up()
            superuser_uri = lab.connstr("node1")
            replication_uri = lab.connstr("node1", replication=True)
            common.console.print(f"pgbench -i -s {scale} on node1 …")
            pgbench_seconds = common.pgbench_init(superuser_uri, scale)
            common.query(superuser_uri, "CHECKPOINT")
            [(db_bytes, cluster_bytes)] = common.query(
                superuser_uri,
                "SELECT pg_database_size(current_database()),"
                " (SELECT sum(pg_database_size(oid)) FROM pg_database)::bigint",
            )
            bench = CloneBench(lab, superuser_uri, replication_uri, runs)
            clone_runs: list[CloneRun] = []
            for round_no in range(runs):
                order = TOOLS if round_no % 2 == 0 else TOOLS[::-1]
                for position, tool in enumerate(order):
                    run = bench.run(tool, round_no, position)
                    common.console.print(f"  round {round_no + 1}: {tool:<24} {run.seconds:7.2f} s")
                    clone_runs.append(run)
            lab.down()
    # What a clone pays before it does anything: Python importing pgherd's CLI and the
    # clone's modules (measured apart, in a fresh interpreter each time).
    imports = [common.import_seconds(CLONE_MODULES) for _ in range(IMPORT_RUNS)]
    adding = [common.import_seconds(ADD_NODE_MODULES) for _ in range(IMPORT_RUNS)]
    summary = clone_summary(scale, lab_up, pgbench_seconds, db_bytes, cluster_bytes, clone_runs)
    summary["overhead"]["imports_seconds"] = common.summary(imports)
    summary["overhead"]["imports_adding_a_node_seconds"] = common.summary(adding)
    return summary


def clone_summary(
    scale: int,
    lab_up_seconds: float,
    pgbench_seconds: float,
    db_bytes: int,
    cluster_bytes: int,
    runs: list[CloneRun],
) -> dict[str, Any]:
    def seconds(tool: str) -> list[float]:
        return [r.seconds for r in runs if r.tool == tool]

    def cpu(tool: str) -> list[float]:
        return [r.cpu_seconds for r in runs if r.tool == tool]

    medians = {tool: common.median(seconds(tool)) for tool in TOOLS}
    cpu_medians = {tool: common.median(cpu(tool)) for tool in TOOLS}
    plain_by_round = {r.round: r.seconds for r in runs if r.tool == PLAIN}

    def paired(tool: str) -> list[float]:
        """Each run of ``tool`` against the plain pg_basebackup of the same round."""
        return [
            r.seconds / plain_by_round[r.round]
            for r in runs
            if r.tool == tool and r.round in plain_by_round
        ]

    def outside(tool: str) -> list[float]:
        return [r.seconds - (r.basebackup_seconds or 0.0) for r in runs if r.tool == tool]

    pgherd_runs = [r for r in runs if r.tool == PGHERD]
    ratio = medians[PGHERD] / medians[PLAIN]
    listed_ratio = medians[LISTED] / medians[PLAIN]
    inner = common.median([r.basebackup_seconds or 0.0 for r in pgherd_runs]) / medians[PLAIN]
    return {
        "scale": scale,
        "database_bytes": db_bytes,
        "cluster_bytes": cluster_bytes,
        "lab_up_1_node_seconds": round(lab_up_seconds, 3),
        "pgbench_init_seconds": round(pgbench_seconds, 3),
        "runs": [_rounded(asdict(r)) for r in runs],
        "seconds": {tool: common.summary(seconds(tool)) for tool in TOOLS},
        "cpu_seconds": {tool: common.summary(cpu(tool)) for tool in TOOLS},
        "ratio_pgherd_to_pg_basebackup": round(ratio, 4),
        "paired_ratios": [round(v, 4) for v in paired(PGHERD)],
        "ratio_listed_to_pg_basebackup": round(listed_ratio, 4),
        "paired_ratios_listed": [round(v, 4) for v in paired(LISTED)],
        "ratio_pgherds_pg_basebackup_to_pg_basebackup": round(inner, 4),
        "target_ratio": CLONE_TARGET_RATIO,
        "meets_target": ratio <= CLONE_TARGET_RATIO,
        "listed_meets_target": listed_ratio <= CLONE_TARGET_RATIO,
        "overhead": {
            "pgherd_outside_pg_basebackup_seconds": common.summary(outside(PGHERD)),
            "listed_outside_pg_basebackup_seconds": common.summary(outside(LISTED)),
            "pgherd_cpu_minus_plain_seconds": round(cpu_medians[PGHERD] - cpu_medians[PLAIN], 4),
            "listed_cpu_minus_plain_seconds": round(cpu_medians[LISTED] - cpu_medians[PLAIN], 4),
            "pgherd_flags_vs_plain_seconds": round(medians[FLAGS] - medians[PLAIN], 4),
            "pgherd_vs_pgherd_flags_seconds": round(medians[PGHERD] - medians[FLAGS], 4),
        },
    }


# ---- lab up and cluster show ------------------------------------------------------------


def bench_lab(root: Path, runs: int, show_runs: int) -> dict[str, Any]:
    directory = root / "pgherd-bench-lab"
    ups: list[float] = []
    downs: list[float] = []
    show: dict[str, Any] = {}
    with common.fresh_directory(directory):
        for round_no in range(runs):
            with Lab(directory, nodes=3, port_base=common.free_port_base(3)) as lab:
                ups.append(lab.up())
                common.console.print(f"  lab up --nodes 3, run {round_no + 1}: {ups[-1]:.2f} s")
                if not show:
                    show = bench_show(lab, show_runs)
                downs.append(lab.down())
    return {
        "lab_up_3_nodes_seconds": common.summary(ups),
        "lab_down_purge_seconds": common.summary(downs),
        **show,
    }


def bench_show(lab: Lab, runs: int) -> dict[str, Any]:
    config = config_mod.load(lab.config_path)
    primary = config.node("node1")
    uri = lab.connstr("node1")
    psql = [
        common.pg_program("psql"),
        "-X",
        "-A",
        "-t",
        "-d",
        uri,
        "-c",
        "SELECT application_name, state, replay_lsn, replay_lag FROM pg_stat_replication",
    ]

    def repeat(call: Callable[[], object]) -> list[float]:
        return [common.timed(call)[0] for _ in range(runs)]

    common.console.print(f"  cluster show and its parts, {runs} runs each …")
    return {
        "cluster_show_cli_seconds": common.summary(repeat(lambda: lab.cli("cluster", "show"))),
        "cli_startup_seconds": common.summary(repeat(lambda: lab.cli("connstr", "node1"))),
        "status_round_trip_seconds": common.summary(repeat(lambda: get_status(primary))),
        "statuses_3_nodes_in_process_seconds": common.summary(
            repeat(lambda: statuses(config.nodes))
        ),
        "psql_pg_stat_replication_seconds": common.summary(
            repeat(lambda: common.as_os_user(psql, timeout=30))
        ),
        "target_seconds": SHOW_TARGET_SECONDS,
    }


def get_status(node: NodeConfig) -> bytes:
    """One ``GET /status`` on a new connection, as the CLI makes it (HTTPS with the
    cluster CA unless ``tls: off``); the raw body."""
    host, port = node.api_host, node.api_port
    conn = (
        http.client.HTTPSConnection(host, port, context=client_context(node.api_ca), timeout=5)
        if node.api_ca is not None
        else http.client.HTTPConnection(host, port, timeout=5)
    )
    try:
        conn.request("GET", "/status", headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise common.CommandError(f"GET /status on {host}:{port} answered {response.status}")
    return body


# ---- report -----------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    clone = result.get("clone")
    if clone:
        common.print_table(
            f"clone: pgbench scale {clone['scale']}, "
            f"database {clone['database_bytes'] / 1e9:.2f} GB",
            ["round", "order", "tool", "seconds", "of which pg_basebackup"],
            [
                [
                    r["round"] + 1,
                    r["position"] + 1,
                    r["tool"],
                    r["seconds"],
                    r["basebackup_seconds"],
                ]
                for r in clone["runs"]
            ],
        )
        common.console.print(
            f"pgbench -i -s {clone['scale']}: {clone['pgbench_init_seconds']:.1f} s; "
            f"copies of {clone['runs'][0]['copy_bytes'] / 1e9:.2f} GB on disk"
        )
    common.print_table(
        "summary (medians)", ["figure", "median", "runs", "target", "result"], summary_rows(result)
    )
    start, end = result["load_average_start"], result["load_average_end"]
    common.console.print(
        f"load average (1/5/15 min) at start {start}, at end {end}; "
        f"{result['machine']['cores']} cores"
    )


def summary_rows(result: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    clone = result.get("clone")
    if clone:
        for tool in TOOLS:
            figure = clone["seconds"][tool]
            cpu = clone["cpu_seconds"][tool]["median"]
            rows.append(
                [
                    f"clone with {tool}",
                    f"{figure['median']:.2f} s",
                    f"{_runs(figure)} (CPU {cpu:.2f} s)",
                    "",
                    "",
                ]
            )
        for label, key, paired, met in (
            ("pgherd / pg_basebackup", "ratio_pgherd_to_pg_basebackup", "paired_ratios",
             "meets_target"),
            ("pgherd, node listed / pg_basebackup", "ratio_listed_to_pg_basebackup",
             "paired_ratios_listed", "listed_meets_target"),
        ):  # fmt: skip
            rows.append(
                [
                    label,
                    f"{clone[key]:.3f}×",
                    ", ".join(f"{v:.3f}" for v in clone[paired]),
                    f"≤ {CLONE_TARGET_RATIO}",
                    "met" if clone[met] else "MISSED",
                ]
            )
        inner = clone["ratio_pgherds_pg_basebackup_to_pg_basebackup"]
        rows.append(["pgherd's own pg_basebackup / pg_basebackup", f"{inner:.3f}×", "", "", ""])
        overhead = clone["overhead"]
        for label, key in (
            ("pgherd outside pg_basebackup", "pgherd_outside_pg_basebackup_seconds"),
            ("pgherd, node listed, outside pg_basebackup", "listed_outside_pg_basebackup_seconds"),
        ):
            outside = overhead[key]
            rows.append([label, f"{outside['median']:.2f} s", _runs(outside), "", ""])
        for label, key in (
            ("  CPU of pgherd − CPU of pg_basebackup", "pgherd_cpu_minus_plain_seconds"),
            ("  the same, node listed", "listed_cpu_minus_plain_seconds"),
        ):
            rows.append([label, f"{overhead[key]:.2f} s", "medians", "", ""])
        for label, key in (
            ("  importing the quick clone", "imports_seconds"),
            ("  … and pydantic's config (a new node)", "imports_adding_a_node_seconds"),
        ):
            imports = overhead.get(key)
            if imports:
                rows.append(
                    [label, f"{imports['median']:.2f} s", f"{len(imports['runs'])} runs", "", ""]
                )
    lab = result.get("lab")
    if lab:
        for key, label, target in (
            ("lab_up_3_nodes_seconds", "lab up --nodes 3", None),
            ("lab_down_purge_seconds", "lab down --purge", None),
            ("cluster_show_cli_seconds", "cluster show (CLI process)", SHOW_TARGET_SECONDS),
            ("cli_startup_seconds", "CLI start-up (connstr)", None),
            ("status_round_trip_seconds", "GET /status round trip", None),
            ("statuses_3_nodes_in_process_seconds", "3 agents' status, in-process", None),
            ("psql_pg_stat_replication_seconds", "psql pg_stat_replication", None),
        ):
            if key not in lab:
                continue
            figure = lab[key]
            verdict = ""
            if target is not None:
                verdict = "met" if figure["median"] < target else "MISSED"
            rows.append(
                [
                    label,
                    _seconds(figure["median"]),
                    _runs(figure) if len(figure["runs"]) <= 3 else f"{len(figure['runs'])} runs",
                    f"< {target} s" if target is not None else "",
                    verdict,
                ]
            )
    return rows


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _runs(figure: dict[str, Any]) -> str:
    return ", ".join(f"{v:.2f}" for v in figure["runs"])


# ---- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.clone",
        description="pgherd standby clone vs pg_basebackup; lab up; cluster show latency",
    )
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 ≈ 1 GB)")
    parser.add_argument("--runs", type=int, default=3, help="clones per tool, and lab ups")
    parser.add_argument("--show-runs", type=int, default=20, help="runs of cluster show")
    parser.add_argument(
        "--only", choices=("clone", "lab"), help="run one part of the benchmark only"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("/var/tmp"),
        help="where the labs go (the OS user postgres must reach it)",
    )
    args = parser.parse_args(argv)
    if args.scale < 1 or args.runs < 1 or args.show_runs < 1:
        parser.error("--scale, --runs and --show-runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.become_subreaper()
    started = common.now()
    result = common.result_header(
        "clone", started, {"scale": args.scale, "runs": args.runs, "show_runs": args.show_runs}
    )
    if args.only in (None, "clone"):
        common.console.print(f"clone: scale {args.scale}, {args.runs} runs per tool")
        result["clone"] = bench_clone(args.root, args.scale, args.runs)
        result["load_average_after_clone"] = common.load_average()
    if args.only in (None, "lab"):
        common.console.print(f"lab: {args.runs} runs of lab up --nodes 3")
        result["lab"] = bench_lab(args.root, args.runs, args.show_runs)
    result["load_average_end"] = common.load_average()
    result["finished"] = common.now().isoformat(timespec="seconds")
    left = [
        pid
        for name in ("pgherd-bench-clone", "pgherd-bench-lab")
        for pid in common.processes_under(args.root / name)
    ]
    result["processes_left"] = left
    report(result)
    path = common.write_json("clone", result, started)
    common.console.print(f"results: {path}")
    if left:
        common.console.print(f"[red]processes left behind:[/] {left}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
