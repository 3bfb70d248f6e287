"""Automatic failover, measured as an application sees it: pgherd against Patroni.

A client commits one row every 10 ms through a libpq multi-host connection string with
``target_session_attrs=read-write`` (``connect_timeout=2``), as an application would.
Two faults, ``--runs`` times each (5 by default), on a 3-node cluster:

1. ``kill -9`` of the primary's postmaster while its agent lives: the agent judges whether
   a restart in place or a failover is quicker and safe;
2. host loss: ``kill -9`` of the primary's agent, postmaster and every server process
   together, so another node must take over.

Write unavailability is the time from the kill to the client's first successful commit
after its first failed one (min/median/max; a commit in flight at the kill may still be
acknowledged, which does not end the outage); "lost" counts commits the client saw
acknowledged that the primary afterwards does not have. After each run the killed node is
started again and the cluster waits until every node streams again.

Configurations, in one run, against one etcd (Debian's etcd-server on loopback ports):
- pgherd at its defaults (ttl 3 s, loop_wait 0.5 s, retry_timeout 1 s), asynchronous;
- pgherd at its defaults in synchronous mode (``--sync``): the lost-commit count must be 0;
- pgherd at its tightest documented settings (ttl 2 s, loop_wait 0.25 s, retry_timeout
  0.5 s);
- Patroni 4.1 (PyPI, a virtualenv built from /usr/bin/python3 that the ``postgres`` user can
  run: /var/lib/pgherd/patroni-venv, created if absent) at its defaults (ttl 30, loop_wait
  10, retry_timeout 10) and at its tightest valid settings (ttl 20, loop_wait 1,
  retry_timeout 3: it raises anything lower to these). Patroni runs as ``postgres``.

    $VENV/bin/python -m bench.failover [--runs 5] [--only pgherd|patroni]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from bench import common
from bench.failover_systems import ROOT, Patroni, Pgherd, System, wait
from pgherd.lab.etcd_server import EtcdServer

# ---- one run ----------------------------------------------------------------------------


def one_run(system: System, scenario: str, run: int) -> dict[str, float]:
    wait(system.healthy, 180, f"{system.name} to be healthy")
    old = system.primary()
    assert old is not None
    writer = common.Writer(system.conninfo, table="bench_failover")
    writer.start()
    try:
        writer.steady(1.0)
        killed_at = time.monotonic()
        if scenario == "postmaster":
            system.kill_postmaster(old)
        else:
            system.kill_host(old)
        back = writer.outage_after(killed_at)
        unavailable = back - killed_at
        writer.steady(1.0, since=back)
    finally:
        writer.stop()
    lost = writer.lost_on(system.conninfo)
    system.restore(old)
    wait(system.healthy, 300, f"{system.name} to be healthy again")
    # Asked once the cluster is whole again: right after a restart in place a member may
    # not report itself "running" yet (Patroni updates its state once per loop_wait).
    new = system.primary()
    common.console.print(
        f"  {system.name}, {scenario} #{run + 1}: writes back after {unavailable:.2f} s "
        f"({old} → {new}), {lost} acknowledged commits lost"
    )
    return {"unavailable": unavailable, "lost": float(lost), "moved": float(new != old)}


def measure(system: System, runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for scenario in ("postmaster", "host"):
        found = [one_run(system, scenario, run) for run in range(runs)]
        results[scenario] = {
            "unavailable_s": common.summary([f["unavailable"] for f in found]),
            "lost_commits": int(sum(f["lost"] for f in found)),
            "failovers": int(sum(f["moved"] for f in found)),
        }
    return results


def reaper() -> None:
    while True:
        common.reap()
        time.sleep(0.2)


PGHERD_TIGHTEST = {"ttl": 2.0, "loop_wait": 0.25, "retry_timeout": 0.5}
PATRONI_DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
PATRONI_TIGHTEST = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["pgherd", "patroni"], default=None)
    args = parser.parse_args()
    common.become_subreaper()
    # Reap orphans at once, as an init would (PID 1 here never does): Patroni's postmaster
    # is an orphan, and a zombie postmaster's PID in its lock files blocks the restart.
    threading.Thread(target=reaper, daemon=True).start()
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)  # noqa: S103 - postgres must reach the data directories below
    started = common.now()
    base = common.free_port_base(1, (0, 1))
    etcd = EtcdServer(ROOT / "etcd", base, base + 1)
    etcd.start()
    plans: list[tuple[str, Callable[[], System]]] = []
    if args.only in (None, "pgherd"):
        plans += [
            ("pgherd defaults", lambda: Pgherd("pgherd defaults", etcd, {}, sync=False)),
            ("pgherd defaults, sync", lambda: Pgherd("pgherd defaults, sync", etcd, {}, True)),
            ("pgherd tightest", lambda: Pgherd("pgherd tightest", etcd, PGHERD_TIGHTEST, False)),
        ]
    if args.only in (None, "patroni"):
        plans += [
            ("Patroni defaults", lambda: Patroni("Patroni defaults", etcd, PATRONI_DEFAULTS)),
            ("Patroni tightest", lambda: Patroni("Patroni tightest", etcd, PATRONI_TIGHTEST)),
        ]
    results: dict[str, Any] = {}
    try:
        for label, make in plans:
            common.console.print(f"[bold]{label}[/]")
            system = make()
            try:
                results[label] = measure(system, args.runs)
            finally:
                system.close()
    finally:
        etcd.stop()
        common.remove_tree(ROOT / "etcd")
    # Reached only when every run finished: a failed run leaves etcd's log to read.
    (ROOT / "etcd.log").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # if nothing else is left in it
        ROOT.rmdir()
    rows = []
    for label, found in results.items():
        for scenario, what in (("postmaster", "kill -9 postmaster"), ("host", "host loss")):
            u = found[scenario]["unavailable_s"]
            rows.append(
                [
                    label,
                    what,
                    f"{u['min']:.2f}",
                    f"{u['median']:.2f}",
                    f"{u['max']:.2f}",
                    found[scenario]["lost_commits"],
                    f"{found[scenario]['failovers']}/{args.runs}",
                ]
            )
    common.print_table(
        "write unavailability (s) and acknowledged commits lost",
        ["system", "fault", "min", "median", "max", "lost", "failovers"],
        rows,
    )
    path = common.write_json(
        "failover",
        {
            "benchmark": "failover",
            "started": started,
            "machine": common.machine(),
            "load_average": common.load_average(),
            "runs": args.runs,
            "interval_s": common.WRITE_INTERVAL,
            "settings": {
                "pgherd defaults": {"ttl": 3, "loop_wait": 0.5, "retry_timeout": 1},
                "pgherd tightest": PGHERD_TIGHTEST,
                "Patroni defaults": PATRONI_DEFAULTS,
                "Patroni tightest": PATRONI_TIGHTEST,
            },
            "results": results,
        },
        started,
    )
    common.console.print(f"JSON: {path}")


if __name__ == "__main__":
    main()
