"""pgherd at 10 nodes and 20 GB (issue 21): what grows with the cluster and what must not.

    $VENV/bin/python -m bench.scale                                  # the full run
    $VENV/bin/python -m bench.scale --only look --nodes 3,10         # minutes
    $VENV/bin/python -m bench.scale --only failover --scales 5,20 --runs 2   # a quick check
    $VENV/bin/python -m bench.scale --only rejoin --rejoin-scale 1400

Four parts, each on labs made through the CLI under ``--root`` (/var/tmp), removed after:

- **look** (``--nodes``, default 3 and 10): a lab of N nodes with automatic failover and
  small shared_buffers (16MB, by ALTER SYSTEM and a rolling restart). Timed, ``--looks``
  times each: ``pgherd cluster show`` as a process (every agent asked at once; target
  under 0.3 s at 10 nodes), the web console's overview page (``pgherd console``, logged in
  with the API token, each request after its one-second cache expired, so that it reads
  every agent), and ``GET /metrics`` of every agent at once, as a Prometheus scrape
  would (when the agents serve it).
- **store**, on the same labs: the coordination-store calls every agent made per HA
  cycle, counted by the agents themselves (``GET /ha``: ``cycles`` and ``store_calls``
  from dcs/counting.py) over ``--window`` seconds: per cycle, they must not grow with the
  members.
- **failover** (``--scales``, default 70 and 1400: ~1 GB and ~20 GB): a 2-node lab
  filled with ``pgbench -i``; ``--runs`` host losses of the primary (its agent,
  postmaster and every server process killed at once) while a client commits every 10 ms
  (bench/failover.py's measure: from the kill to the first commit after the first
  failure). Target: the same at both sizes within the noise (the lease decides, not the
  data).
- **rejoin** (``--rejoin-scale``, default 1400): bench/switchover.py's rejoin on a 2-node
  lab: 1% of the rows changed on each side of a promotion, then ``pgherd node rejoin``
  (pg_rewind) against ``pgherd node rejoin --force-clone``. At 1.1 GB it was 0.62×.

Disk: a part that fills a lab checks first that ``--root`` has room for two copies of
the data and its WAL, and says how much it needs when it has not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import common
from bench.failover import one_run
from bench.failover_systems import kill_host_processes, multi_host, postmaster_of, wait
from bench.switchover import rejoin as rejoin_scenario
from pgherd import config as config_mod
from pgherd.clients.agent import AgentClient, read_as_viewer
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.lab import agents
from pgherd.pg import osuser, process

SHOW_TARGET_SECONDS = 0.3
SMALL_SHARED_BUFFERS = "16MB"
BYTES_PER_SCALE = 16_000_000  # pgbench -i: ~16 MB of tables and indexes per scale unit


# ---- a lab ------------------------------------------------------------------------------


def lab_named(root: Path, name: str, nodes: int, *extra: str) -> common.Lab:
    return common.Lab(root / name, nodes, common.free_port_base(nodes), extra=extra)


def show_json(lab: common.Lab) -> dict[str, Any]:
    done = lab.cli("cluster", "show", "--json", check=False, timeout=60)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def healthy(lab: common.Lab) -> bool:
    data = show_json(lab)
    ha = data.get("ha") or {}
    return not data["problems"] and ha.get("leader", data["primary"]) == data["primary"]


def small_shared_buffers(lab: common.Lab, config: ClusterConfig) -> None:
    """ALTER SYSTEM on every node, then a rolling restart (standbys first)."""
    for node in config.nodes:
        with psycopg.connect(lab.connstr(node.name), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{SMALL_SHARED_BUFFERS}'")
    primary = show_json(lab)["primary"]
    for node in sorted(config.nodes, key=lambda n: n.name == primary):
        lab.cli("node", "restart", node.name)
    wait(lambda: healthy(lab), 300, "the lab after the restart")


def require_room(root: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(root).free
    if free < needed:
        raise SystemExit(
            f"{what} needs about {needed / 1e9:.0f} GB free in {root}, which has "
            f"{free / 1e9:.0f} GB: free some space, or choose another --root"
        )


# ---- look: cluster show, the console, /metrics ------------------------------------------


def time_cluster_show(lab: common.Lab, runs: int) -> dict[str, Any]:
    argv = [*lab.pgherd, "cluster", "show", "--config", str(lab.config_path)]
    walls, cpus = [], []
    lab.cli("cluster", "show", check=False)  # the first command to read the config validates it
    for _ in range(runs):
        wall, cpu, done = common.timed_cpu(
            lambda: subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        )
        if done.returncode not in (0, 3):
            raise common.CommandError(f"cluster show exited {done.returncode}: {done.stderr}")
        walls.append(wall)
        cpus.append(cpu)
    return {"wall_s": common.summary(walls), "cpu_s": common.summary(cpus)}


class Console:
    """``pgherd console`` on a free port, logged in as ``token``."""

    def __init__(self, lab: common.Lab, config: ClusterConfig) -> None:
        port = common.free_port_base(1, (0,))
        self.url = f"http://127.0.0.1:{port}"
        self.log = (lab.directory / "console.log").open("wb")
        self.proc = subprocess.Popen(
            [*lab.pgherd, "console", "--listen", f"127.0.0.1:{port}", "-c", str(lab.config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        wait(lambda: self.client.get("/login").status_code == 200, 60, "the console")
        self.client.get("/login")
        csrf = self.client.cookies.get("pgherd_login")
        token = config_mod.read_token(config)
        answer = self.client.post(
            "/login",
            data={"user": "token", "password": token, "csrf": csrf or "", "next": "/"},
        )
        if answer.status_code != 303:
            raise common.CommandError(f"console login answered {answer.status_code}")

    def overview(self) -> float:
        """One overview page after the console's one-second state cache expired."""
        time.sleep(1.1)
        started = time.perf_counter()
        answer = self.client.get("/")
        took = time.perf_counter() - started
        if answer.status_code != 200:
            raise common.CommandError(f"the overview answered {answer.status_code}")
        return took

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def scrape(node: NodeConfig) -> tuple[int, float]:
    """``GET /metrics`` on one agent, as Prometheus would (HTTPS verified against the
    cluster CA, the lab's default): the HTTP status and the seconds it took."""
    started = time.perf_counter()
    status, _ = AgentClient(node, timeout=30).request_raw("GET", "/metrics", accept="text/plain")
    return status, time.perf_counter() - started


def time_metrics(config: ClusterConfig, runs: int) -> dict[str, Any]:
    """Every agent's /metrics at once, ``runs`` times: the slowest agent of each round."""
    rounds, slowest = [], []
    with ThreadPoolExecutor(max_workers=len(config.nodes)) as pool:
        for _ in range(runs):
            started = time.perf_counter()
            answers = list(pool.map(scrape, config.nodes))
            rounds.append(time.perf_counter() - started)
            if any(status == 404 for status, _ in answers):
                return {"served": False}
            slowest.append(max(seconds for _, seconds in answers))
    return {
        "served": True,
        "all_agents_s": common.summary(rounds),
        "slowest_agent_s": common.summary(slowest),
    }


# ---- store calls per cycle --------------------------------------------------------------


def ha_report(node: NodeConfig) -> dict[str, Any]:
    status, data = AgentClient(node, timeout=10).request("GET", "/ha")
    if status != 200 or not isinstance(data, dict):
        raise common.CommandError(f"{node.name}: GET /ha answered {status}: {data}")
    return data


def store_calls(config: ClusterConfig, window: float) -> dict[str, Any]:
    """Each agent's store calls per HA cycle over ``window`` seconds, from its own counts."""
    before = {n.name: ha_report(n) for n in config.nodes}
    time.sleep(window)
    after = {n.name: ha_report(n) for n in config.nodes}
    agents_seen: dict[str, Any] = {}
    for name, late in after.items():
        early = before[name]
        cycles = late["cycles"] - early["cycles"]
        calls = {
            kind: count - early["store_calls"].get(kind, 0)
            for kind, count in late["store_calls"].items()
        }
        calls = {kind: n for kind, n in calls.items() if n}
        agents_seen[name] = {
            "leader": late["holds_lease"],
            "cycles": cycles,
            "calls": calls,
            "calls_per_cycle": round(sum(calls.values()) / cycles, 3) if cycles else None,
        }
    per_cycle = [a["calls_per_cycle"] for a in agents_seen.values() if a["calls_per_cycle"]]
    leader = [a["calls_per_cycle"] for a in agents_seen.values() if a["leader"]]
    others = [a["calls_per_cycle"] for a in agents_seen.values() if not a["leader"]]
    seconds = window
    return {
        "window_s": window,
        "agents": agents_seen,
        "leader_calls_per_cycle": leader[0] if leader else None,
        "standby_calls_per_cycle_median": common.median([v for v in others if v is not None]),
        "max_calls_per_cycle": max(per_cycle) if per_cycle else None,
        "cluster_calls_per_second": round(
            sum(sum(a["calls"].values()) for a in agents_seen.values()) / seconds, 2
        ),
    }


def look(root: Path, nodes: int, runs: int, window: float) -> dict[str, Any]:
    with common.fresh_directory(root / f"pgherd-bench-scale-{nodes}") as directory:
        lab = common.Lab(directory, nodes, common.free_port_base(nodes))
        with lab:
            up = lab.up()
            config = config_mod.load(lab.config_path)
            read_as_viewer(config)  # /metrics and /ha are reads: a credential if they need one
            common.console.print(
                f"  lab up --nodes {nodes}: {up:.1f} s; shrinking shared_buffers …"
            )
            small_shared_buffers(lab, config)
            common.console.print(f"  {runs} × cluster show, console overview, /metrics …")
            result: dict[str, Any] = {"nodes": nodes, "lab_up_s": round(up, 2)}
            result["cluster_show"] = time_cluster_show(lab, runs)
            console = Console(lab, config)
            try:
                result["console_overview_s"] = common.summary(
                    [console.overview() for _ in range(runs)]
                )
            finally:
                console.close()
            result["metrics"] = time_metrics(config, runs)
            common.console.print(f"  store calls over {window:.0f} s …")
            result["store"] = store_calls(config, window)
            lab.down()
    return result


# ---- failover at two sizes --------------------------------------------------------------


class LabSystem:
    """A 2-node lab with automatic failover (sqlite store), as bench/failover.py's
    ``System``: a host loss kills the primary's agent, postmaster and server processes."""

    def __init__(self, lab: common.Lab) -> None:
        self.lab = lab
        self.name = f"pgherd, {lab.nodes} nodes"
        self.config = config_mod.load(lab.config_path)
        self.conninfo = multi_host(
            [n.port for n in self.config.nodes], "postgres", self.config.passfile
        )

    def primary(self) -> str | None:
        name = show_json(self.lab)["primary"]
        return name if isinstance(name, str) else None

    def healthy(self) -> bool:
        return healthy(self.lab)

    def kill_postmaster(self, node: str) -> None:
        process.signal_pid(postmaster_of(self.config.node(node).data_dir), signal.SIGKILL)

    def kill_host(self, node: str) -> None:
        pm = postmaster_of(self.config.node(node).data_dir)
        agent = agents.running_agent(self.config.node(node))
        assert agent is not None
        kill_host_processes(agent, pm)

    def restore(self, node: str) -> None:
        # lab up starts the agents that are not running; the killed one rejoins.
        common.run_checked(
            [*self.lab.pgherd, "lab", "up", "--dir", str(self.lab.directory)], timeout=600
        )
        common.reap()

    def close(self) -> None:
        common.remove_lab(self.lab.directory)


def fill(lab: common.Lab, scale: int) -> dict[str, Any]:
    """``pgbench -i -s SCALE`` on the primary; returns when every standby replayed it."""
    primary = show_json(lab)["primary"]
    uri = lab.connstr(primary)
    seconds = common.pgbench_init(uri, scale)
    size = common.query(uri, "SELECT pg_database_size('postgres')")[0][0]
    lsn = common.query(uri, "SELECT pg_current_wal_lsn()::text")[0][0]
    config = config_mod.load(lab.config_path)
    for node in config.nodes:
        if node.name != primary:
            replayed(lab.connstr(node.name), lsn, node.name)
    common.query(uri, "CHECKPOINT")
    return {"pgbench_init_s": round(seconds, 1), "database_bytes": int(size)}


def replayed(uri: str, lsn: str, name: str) -> None:
    def caught_up() -> bool:
        found = common.query(uri, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
        return bool(found == [(True,)])

    wait(caught_up, 3600, f"{name} to replay pgbench -i")


def failover_at(root: Path, scale: int, runs: int) -> dict[str, Any]:
    # Two copies, their WAL (max_wal_size and wal_keep_size each), and room to spare.
    require_room(root, 2 * scale * BYTES_PER_SCALE + 6 * 1024**3, f"failover at scale {scale}")
    with common.fresh_directory(root / f"pgherd-bench-scale-failover-{scale}") as directory:
        lab = common.Lab(directory, 2, common.free_port_base(2))
        with lab:
            lab.up()
            common.console.print(f"  pgbench -i -s {scale} …")
            filled = fill(lab, scale)
            common.console.print(
                f"  {filled['database_bytes'] / 1e9:.2f} GB in {filled['pgbench_init_s']} s; "
                f"{runs} host losses …"
            )
            system = LabSystem(lab)
            found = [one_run(system, "host", run) for run in range(runs)]
            lab.down()
    return {
        "scale": scale,
        **filled,
        "unavailable_s": common.summary([f["unavailable"] for f in found]),
        "lost_commits": int(sum(f["lost"] for f in found)),
        "failovers": int(sum(f["moved"] for f in found)),
    }


def rejoin_at(root: Path, scale: int) -> dict[str, Any]:
    require_room(root, 2 * scale * BYTES_PER_SCALE + 6 * 1024**3, f"rejoin at scale {scale}")
    with common.fresh_directory(root / "pgherd-bench-scale-rejoin") as directory:
        # Operations by hand (as bench/switchover.py's rejoin does them): no HA loop beside.
        lab = common.Lab(directory, 2, common.free_port_base(2), extra=("--failover", "manual"))
        with lab:
            osuser.resolve(common.OS_USER).make_dir(directory, mode=0o755)
            lab.up()
            try:
                result = rejoin_scenario(lab, scale)
            except Exception:
                keep = root / f"pgherd-bench-scale-rejoin-logs-{int(time.time())}"
                keep.mkdir()
                for log in directory.glob("*/*.log"):  # the servers' and agents' logs
                    shutil.copy(log, keep / f"{log.parent.name}.{log.name}")
                common.console.print(f"[yellow]logs kept for reading[/]: {keep}")
                raise
            lab.down()
    return result


# ---- report -----------------------------------------------------------------------------


def rows(result: dict[str, Any]) -> list[list[object]]:
    table: list[list[object]] = []
    for found in result.get("look", []):
        n = found["nodes"]
        show = found["cluster_show"]["wall_s"]["median"]
        target = f"< {SHOW_TARGET_SECONDS} s" if n >= 10 else ""
        verdict = ("met" if show < SHOW_TARGET_SECONDS else "MISSED") if target else ""
        table.append([f"cluster show, {n} nodes", _ms(show), target, verdict])
        table.append(
            [f"console overview, {n} nodes", _ms(found["console_overview_s"]["median"]), "", ""]
        )
        metrics = found["metrics"]
        table.append(
            [
                f"/metrics of every agent at once, {n} nodes",
                _ms(metrics["all_agents_s"]["median"]) if metrics["served"] else "not served",
                "",
                "",
            ]
        )
        store = found["store"]
        table.append(
            [
                f"store calls per HA cycle, {n} nodes: leader / standbys",
                f"{store['leader_calls_per_cycle']} / {store['standby_calls_per_cycle_median']}",
                "not growing with members",
                "",
            ]
        )
    failovers = result.get("failover", [])
    for found in failovers:
        size = found["database_bytes"] / 1e9
        table.append(
            [
                f"host-loss failover, {size:.1f} GB (writes back after)",
                f"{found['unavailable_s']['median']:.2f} s",
                "",
                f"{found['failovers']}/{len(found['unavailable_s']['runs'])} failed over, "
                f"{found['lost_commits']} lost",
            ]
        )
    if len(failovers) >= 2:
        small, large = failovers[0], failovers[-1]
        ratio = large["unavailable_s"]["median"] / small["unavailable_s"]["median"]
        table.append(["  largest / smallest", f"{ratio:.2f}×", "≈ 1 (within noise)", ""])
    rejoin = result.get("rejoin")
    if rejoin:
        table.append(
            [
                f"rejoin, {rejoin['database_bytes'] / 1e9:.1f} GB: pg_rewind / re-clone",
                f"{rejoin['rejoin_rewind_s']:.1f} s / {rejoin['rejoin_clone_s']:.1f} s = "
                f"{rejoin['rewind_over_clone']:.3f}×",
                "well below 0.62×",
                "",
            ]
        )
    return table


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--only", choices=("look", "failover", "rejoin"), action="append")
    parser.add_argument("--nodes", type=_ints, default=[3, 10], help="lab sizes for look")
    parser.add_argument("--looks", type=int, default=20, help="runs of each look")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of store counting")
    parser.add_argument("--scales", type=_ints, default=[70, 1400], help="failover sizes")
    parser.add_argument("--runs", type=int, default=3, help="host losses per size")
    parser.add_argument("--rejoin-scale", type=int, default=1400)
    parser.add_argument("--root", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args(argv)
    parts = args.only or ["look", "failover", "rejoin"]
    common.become_subreaper()
    stop = threading.Event()
    threading.Thread(target=_reaper, args=(stop,), daemon=True).start()
    started = common.now()
    result = common.result_header("scale", started, {k: str(v) for k, v in vars(args).items()})
    failed: BaseException | None = None
    try:
        if "look" in parts:
            result["look"] = []
            for nodes in args.nodes:
                common.console.print(f"[bold]look: {nodes} nodes[/]")
                result["look"].append(look(args.root, nodes, args.looks, args.window))
        if "failover" in parts:
            result["failover"] = []
            for scale in args.scales:
                common.console.print(f"[bold]failover at scale {scale}[/]")
                result["failover"].append(failover_at(args.root, scale, args.runs))
        if "rejoin" in parts:
            common.console.print(f"[bold]rejoin at scale {args.rejoin_scale}[/]")
            result["rejoin"] = rejoin_at(args.root, args.rejoin_scale)
    except Exception as exc:  # the parts that finished are still worth their JSON
        failed = exc
        result["failed"] = f"{type(exc).__name__}: {exc}"
    finally:
        stop.set()
    result["load_average_end"] = common.load_average()
    result["finished"] = common.now().isoformat(timespec="seconds")
    common.print_table(
        "pgherd at scale (medians)", ["figure", "measured", "target", "note"], rows(result)
    )
    start, end = result["load_average_start"], result["load_average_end"]
    common.console.print(f"load average at start {start}, at end {end}")
    path = common.write_json("scale", result, started)
    common.console.print(f"results: {path}")
    if failed is not None:
        raise failed
    return 0


def _reaper(stop: threading.Event) -> None:
    """Reap the agents lab up leaves to this process (PID 1 here never reaps)."""
    while not stop.is_set():
        common.reap()
        time.sleep(0.2)


if __name__ == "__main__":
    raise SystemExit(main())
