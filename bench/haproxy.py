"""Switchover and host loss as a client behind HAProxy feels them, beside pgherd's figure.

A 3-node lab (automatic failover, sqlite store) and a real HAProxy (Debian's ``haproxy``,
run in the foreground as this benchmark's child) with the configuration ``pgherd agent
haproxy`` prints. Two clients commit one row every 10 ms at the same time:

- **through HAProxy**: one plain connection to the proxy's write port, reconnecting after
  any error (as a pooled application does): what a client feels;
- **pgherd's own figure**: a libpq multi-host connection with
  ``target_session_attrs=read-write`` straight to the nodes (bench/failover.py's client),
  and for a switchover also the "writes paused" that ``standby switchover --json`` times.

Events, ``--runs`` times each: a switchover to the most caught-up standby, and a host loss
(``kill -9`` of the primary's agent, postmaster and every server process, then the node is
brought back with ``lab up``). Write outage = first failed commit after the event to the
next acknowledged one. Every failure of the proxied client is classified: refused or
closed connections are the outage; "read-only transaction" means the proxy sent a write to
a demoted node (target: 0). Target (issue 19): the proxied outage within 0.3 s of
pgherd's figure for both events.

``--configs`` compares HAProxy check settings in the same run: ``pgherd`` (what ``agent
haproxy`` prints now) and ``legacy`` (``inter 1s fall 2 rise 2``, the earlier config).

    $VENV/bin/python -m bench.haproxy [--runs 5] [--configs pgherd,legacy]
    $VENV/bin/python -m bench.haproxy --runs 1 --configs pgherd --events switchover
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import common
from bench.failover_systems import kill_host_processes, multi_host, postmaster_of, wait
from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.lab import agents
from pgherd.model import haproxy as haproxy_model
from pgherd.model.haproxy import CheckTimings

ROOT = Path("/var/tmp/pgherd-bench-haproxy")
CONFIGS = {
    "pgherd": haproxy_model.CHECKS,
    "legacy": CheckTimings(
        inter_ms=1000, fastinter_ms=1000, downinter_ms=1000, fall=2, rise=2, timeout_check_ms=2000
    ),
}


# ---- a client through the proxy ---------------------------------------------------------


@dataclass
class ProxiedWriter:
    """Commits one row every 10 ms through one connection to the proxy, reconnecting after
    every error; keeps each failure's time and kind."""

    conninfo: str
    table: str = "bench_haproxy"
    acked: list[float] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        next_id = int(time.time() * 1000) * 1000
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True)
                conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (next_id,))
                self.acked.append(time.monotonic())
            except psycopg.Error as exc:
                kind = (
                    "read-only"
                    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)
                    else ("connection")
                )
                self.failed.append((time.monotonic(), kind))
                if conn is not None:
                    conn.close()
                conn = None
            next_id += 1
            time.sleep(max(0.0, common.WRITE_INTERVAL - (time.monotonic() - began)))
        if conn is not None:
            conn.close()

    def outage_after(self, since: float, timeout: float = 120) -> tuple[float, float]:
        """The first failure after ``since`` and the next acknowledged commit (monotonic
        times; both ``since`` when nothing failed within 5 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            failures = [t for t, _ in self.failed if t > since]
            if failures:
                later = [t for t in self.acked if t > failures[0]]
                if later:
                    return failures[0], later[0]
            elif time.monotonic() > since + 5 and [t for t in self.acked if t > since + 2]:
                return since, since
            time.sleep(0.01)
        raise RuntimeError(f"writes through the proxy did not come back within {timeout:.0f} s")

    def steady(self) -> bool:
        """Commits went through for the last second without a failure."""
        now = time.monotonic()
        recent = [t for t in self.acked if t > now - 1]
        return len(recent) > 20 and not [t for t, _ in self.failed if t > now - 1]

    def read_only_after(self, since: float) -> int:
        return sum(1 for t, kind in self.failed if t > since and kind == "read-only")


# ---- the proxy --------------------------------------------------------------------------


class Proxy:
    def __init__(self, directory: Path, config: ClusterConfig, checks: CheckTimings) -> None:
        self.port = common.free_port_base(2, (0,))
        text = haproxy_model.render(
            config.cluster,
            config.nodes,
            "127.0.0.1",
            self.port,
            self.port + 1,
            checks,
            ca_file=config.ca_file,
        )
        self.path = directory / "haproxy.cfg"
        self.path.write_text(text)
        self.log = directory / "haproxy.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(self.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def conninfo(self, config: ClusterConfig) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={config.superuser} dbname=postgres "
            f"passfile={config.passfile} connect_timeout=2"
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# ---- a lab and its events ---------------------------------------------------------------


class Cluster:
    def __init__(self, directory: Path) -> None:
        common.remove_lab(directory)
        base = common.free_port_base(3, (0, 1000))
        self.lab = common.Lab(directory, 3, base)
        self.lab.up()
        self.config = config_mod.load(self.lab.config_path)
        self.direct = multi_host(
            [n.port for n in self.config.nodes], "postgres", self.config.passfile
        )
        with psycopg.connect(self.direct, autocommit=True) as conn:
            for table in ("bench_haproxy", "bench_direct"):
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY)")

    def show(self) -> dict[str, Any]:
        done = self.lab.cli("cluster", "show", "--json", check=False, timeout=60)
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def healthy(self) -> bool:
        data = self.show()
        return not data["problems"] and data["ha"]["leader"] == data["primary"]

    def primary(self) -> str:
        name = self.show()["primary"]
        assert isinstance(name, str)
        return name

    def switchover(self) -> float:
        """Switch over to the other node with the least lag; pgherd's "writes paused"."""
        data = self.show()
        old = data["primary"]
        target = min(
            (n for n in data["nodes"] if n["name"] != old),
            key=lambda n: n["lag_bytes"] or 0,
        )["name"]
        done = self.lab.cli("standby", "switchover", "--to", target, "--siblings-follow", "--json")
        return float(json.loads(done.stdout)["writes_paused_seconds"])

    def lose_host(self, node: str) -> None:
        target = self.config.node(node)
        agent = agents.running_agent(target)
        assert agent is not None
        kill_host_processes(agent, postmaster_of(target.data_dir))

    def bring_back(self) -> None:
        common.run_checked([*self.lab.pgherd, "lab", "up", "--dir", str(self.lab.directory)], 300)
        common.reap()

    def close(self) -> None:
        common.remove_lab(self.lab.directory)


def one_event(cluster: Cluster, proxy: Proxy, event: str) -> dict[str, float]:
    wait(cluster.healthy, 180, "a healthy cluster")
    proxied = ProxiedWriter(proxy.conninfo(cluster.config))
    direct = common.Writer(cluster.direct, table="bench_direct")
    proxied.start()
    direct.start()
    try:
        direct.steady(1.0)
        wait(proxied.steady, 30, "writes through the proxy")
        time.sleep(1.0)
        old = cluster.primary()
        at = time.monotonic()
        if event == "switchover":
            # pgherd times the writes it paused (old primary stopped → new one promoted);
            # the clients' outages run from their first failed commit to the next success.
            own = cluster.switchover()
            first, back = proxied.outage_after(at)
            through = back - first
            direct_outage = direct.unavailability(at)
        else:
            # a host loss: from the kill to the first commit after it, for every client
            cluster.lose_host(old)
            own = direct.outage_after(at) - at
            _, back = proxied.outage_after(at)
            through = back - at
            direct_outage = own
        time.sleep(2.0)  # a late read-only write would come now
        read_only = proxied.read_only_after(at)
    finally:
        proxied.stop()
        direct.stop()
    if event != "switchover":
        cluster.bring_back()
    return {
        "own": own,
        "direct": direct_outage,
        "proxied": through,
        "read_only": float(read_only),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--configs", default="pgherd,legacy")
    parser.add_argument("--events", default="switchover,host loss")
    args = parser.parse_args()
    events = [e.strip() for e in args.events.split(",") if e.strip()]
    for event in events:
        if event not in ("switchover", "host loss"):
            parser.error(f"--events: unknown {event!r} (known: switchover, host loss)")
    chosen = [c.strip() for c in args.configs.split(",") if c.strip()]
    for name in chosen:
        if name not in CONFIGS:
            parser.error(f"--configs: unknown {name!r} (known: {', '.join(CONFIGS)})")
    common.become_subreaper()
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)  # noqa: S103 - postgres must reach the lab below
    started = common.now()
    cluster = Cluster(ROOT / "lab")
    results: dict[str, Any] = {}
    try:
        for name in chosen:
            proxy = Proxy(ROOT, cluster.config, CONFIGS[name])
            try:
                found: dict[str, list[dict[str, float]]] = {e: [] for e in events}
                for run in range(args.runs):
                    for event in found:
                        figures = one_event(cluster, proxy, event)
                        found[event].append(figures)
                        common.console.print(
                            f"  {name}, {event} #{run + 1}: through HAProxy "
                            f"{figures['proxied']:.2f} s, pgherd {figures['own']:.2f} s "
                            f"(multi-host client {figures['direct']:.2f} s), "
                            f"{int(figures['read_only'])} read-only"
                        )
                results[name] = {
                    event: {
                        "proxied_s": common.summary([f["proxied"] for f in runs]),
                        "pgherd_s": common.summary([f["own"] for f in runs]),
                        "direct_s": common.summary([f["direct"] for f in runs]),
                        "excess_s": common.summary([f["proxied"] - f["own"] for f in runs]),
                        "read_only": int(sum(f["read_only"] for f in runs)),
                    }
                    for event, runs in found.items()
                }
            finally:
                proxy.close()
    finally:
        cluster.close()
    # Reached only when every run finished: a failed run keeps HAProxy's config and log.
    for name in ("haproxy.cfg", "haproxy.log"):
        (ROOT / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # if nothing else is left in it
        ROOT.rmdir()
    rows = []
    for name, events in results.items():
        for event, r in events.items():
            rows.append(
                [
                    name,
                    event,
                    f"{r['proxied_s']['median']:.2f}",
                    f"{r['pgherd_s']['median']:.2f}",
                    f"{r['excess_s']['median']:+.2f}",
                    f"{r['excess_s']['max']:+.2f}",
                    r["read_only"],
                ]
            )
    common.print_table(
        "write outage through HAProxy vs pgherd's own figure (s, medians; target excess ≤ 0.3)",
        ["checks", "event", "via HAProxy", "pgherd", "excess", "worst excess", "read-only"],
        rows,
    )
    path = common.write_json(
        "haproxy",
        {
            "benchmark": "haproxy",
            "started": started,
            "machine": common.machine(),
            "load_average": common.load_average(),
            "runs": args.runs,
            "checks": {n: CONFIGS[n].default_server() for n in chosen},
            "results": results,
        },
        started,
    )
    common.console.print(f"JSON: {path}")


if __name__ == "__main__":
    main()
