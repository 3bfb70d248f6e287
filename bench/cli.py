"""How long a look at the cluster takes, as a process, as people and scripts run it (issue 21).

    $VENV/bin/python -m bench.cli                 # 3 nodes each, 20 rounds
    $VENV/bin/python -m bench.cli --rounds 5      # a quick check

One run measures, side by side, on a 3-node pgherd lab and a 3-node Patroni cluster that
share one etcd (Debian's etcd-server on loopback; Patroni 4 from PyPI as bench/failover.py
installs it):

- ``pgherd cluster show`` (every agent's status at once, the leader and check-ins from
  etcd, the table to a pipe);
- ``pgherd cluster show`` right after the config file was edited (the one run in which
  the config is validated with pydantic instead of read from the cache);
- ``pgherd connstr node1`` (start-up, the config, no network);
- ``patronictl -c patroni.yml list`` (the cluster from etcd, its table);
- ``psql`` reading ``pg_stat_replication`` on the primary (PostgreSQL's own look);
- ``python -c pass`` with pgherd's interpreter: the floor of any Python command.

Each round runs every command once, in an order that rotates between rounds. Every figure
is the wall time from process start to exit (and the CPU time the process used, which
other work on the machine disturbs less); the table gives medians with min and max, and
pgherd's ratios to ``patronictl list``. Targets: ``cluster show`` under 0.15 s and
faster than ``patronictl list``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common
from bench.failover_systems import PATRONI_VENV, ROOT, Patroni, Pgherd
from pgherd.lab.etcd_server import EtcdServer

SHOW_TARGET_SECONDS = 0.15
SHOW = "pgherd cluster show"
SHOW_EDITED = "pgherd cluster show, config just edited"
CONNSTR = "pgherd connstr"
PATRONICTL = "patronictl list"
PSQL = "psql (pg_stat_replication)"
FLOOR = "python -c pass"
PATRONI_DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float


@dataclass(frozen=True)
class Command:
    name: str
    argv: list[str]
    before: Callable[[], None] | None = None  # outside the timing
    as_postgres: bool = False


def run_once(command: Command) -> Sample:
    """One run: wall time from start to exit, and the CPU time the process used."""
    if command.before is not None:
        command.before()
    if command.as_postgres:
        wall, cpu, _ = common.timed_cpu(lambda: common.as_os_user(command.argv, timeout=60))
        return Sample(wall, cpu)
    wall, cpu, done = common.timed_cpu(
        lambda: subprocess.run(
            command.argv, capture_output=True, text=True, timeout=60, check=False
        )
    )
    # cluster show exits 3 when the cluster is degraded; anything else is a failure.
    if done.returncode not in (0, 3):
        raise common.CommandError(
            f"{' '.join(command.argv)} exited {done.returncode}: {done.stderr.strip()}"
        )
    return Sample(wall, cpu)


def measure(commands: list[Command], rounds: int) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {c.name: [] for c in commands}
    for round_no in range(rounds):
        shift = round_no % len(commands)
        for command in commands[shift:] + commands[:shift]:
            samples[command.name].append(run_once(command))
        common.console.print(f"  round {round_no + 1}/{rounds}, load {common.load_average()[0]}")
    return samples


def edit_config(path: Path) -> Callable[[], None]:
    """Make the config's text new (a comment line changes), so that the next command must
    validate it instead of reading the cache."""
    counter = iter(range(1, 1 << 30))
    text = path.read_text()

    def edit() -> None:
        path.write_text(text + f"# bench.cli edit {next(counter)}\n")

    return edit


def commands(pgherd: Pgherd, patroni: Patroni) -> list[Command]:
    cli = pgherd.lab.pgherd
    config = str(pgherd.lab.config_path)
    python = str(Path(cli[0]).with_name("python")) if cli[0].endswith("pgherd") else cli[0]
    psql = [
        common.pg_program("psql"),
        "-X",
        "-A",
        "-t",
        "-d",
        pgherd.lab.connstr(pgherd.config.nodes[0].name),
        "-c",
        "SELECT application_name, state, replay_lsn, replay_lag FROM pg_stat_replication",
    ]
    patronictl = str(PATRONI_VENV / "bin" / "patronictl")
    patroni_config = patroni.directory / "p1" / "patroni.yml"
    return [
        Command(SHOW, [*cli, "cluster", "show", "-c", config]),
        Command(
            SHOW_EDITED,
            [*cli, "cluster", "show", "-c", config],
            before=edit_config(pgherd.lab.config_path),
        ),
        Command(CONNSTR, [*cli, "connstr", "node1", "-c", config]),
        Command(PATRONICTL, [patronictl, "-c", str(patroni_config), "list"]),
        Command(PSQL, psql, as_postgres=True),
        Command(FLOOR, [python, "-c", "pass"]),
    ]


def summarise(samples: dict[str, list[Sample]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, runs in samples.items():
        figures[name] = {
            "wall_s": common.summary([s.wall for s in runs]),
            "cpu_s": common.summary([s.cpu for s in runs]),
        }
    show = figures[SHOW]["wall_s"]["median"]
    patronictl = figures[PATRONICTL]["wall_s"]["median"]
    return {
        "figures": figures,
        "ratio_show_to_patronictl": round(show / patronictl, 4),
        "ratio_connstr_to_patronictl": round(figures[CONNSTR]["wall_s"]["median"] / patronictl, 4),
        "target_seconds": SHOW_TARGET_SECONDS,
        "meets_target": show < SHOW_TARGET_SECONDS and show < patronictl,
    }


def report(result: dict[str, Any]) -> None:
    rows = []
    figures = result["figures"]
    patronictl = figures[PATRONICTL]["wall_s"]["median"]
    for name, figure in figures.items():
        wall, cpu = figure["wall_s"], figure["cpu_s"]
        target = verdict = ""
        if name == SHOW:
            target = f"< {SHOW_TARGET_SECONDS} s & patronictl"
            verdict = "met" if result["meets_target"] else "MISSED"
        rows.append(
            [
                name,
                _ms(wall["median"]),
                f"{_ms(wall['min'])}–{_ms(wall['max'])}",
                _ms(cpu["median"]),
                f"{wall['median'] / patronictl:.2f}×",
                target,
                verdict,
            ]
        )
    common.print_table(
        f"a look at a 3-node cluster, {len(next(iter(figures.values()))['wall_s']['runs'])} "
        "rounds (medians)",
        ["command", "wall", "wall min–max", "CPU", "/ patronictl", "target", "result"],
        rows,
    )
    start, end = result["load_average_start"], result["load_average_end"]
    common.console.print(
        f"load average (1/5/15 min) at start {start}, at end {end}; "
        f"{result['machine']['cores']} cores"
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def reaper(stop: threading.Event) -> None:
    """Reap orphans at once, as an init would (PID 1 here never does): Patroni's
    postmasters are orphans."""
    while not stop.is_set():
        common.reap()
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cli", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=20, help="runs of each command")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    common.become_subreaper()
    stop = threading.Event()
    threading.Thread(target=reaper, args=(stop,), daemon=True).start()
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)  # noqa: S103 - postgres must reach the data directories below
    started = common.now()
    result = common.result_header("cli", started, {"rounds": args.rounds, "nodes": 3})
    base = common.free_port_base(1, (0, 1))
    etcd = EtcdServer(ROOT / "etcd-cli", base, base + 1)
    etcd.start()
    pgherd: Pgherd | None = None
    patroni: Patroni | None = None
    try:
        common.console.print("a 3-node pgherd lab on etcd …")
        pgherd = Pgherd("cli pgherd", etcd, {}, sync=False)
        common.console.print("a 3-node Patroni cluster on the same etcd …")
        patroni = Patroni("cli Patroni", etcd, PATRONI_DEFAULTS)
        common.console.print(f"{args.rounds} rounds")
        samples = measure(commands(pgherd, patroni), args.rounds)
        result |= summarise(samples)
    finally:
        for system in (pgherd, patroni):
            if system is not None:
                system.close()
        etcd.stop()
        common.remove_tree(ROOT / "etcd-cli")
        stop.set()
    # Reached only when every run finished: a failed run leaves etcd's log to read.
    (ROOT / "etcd-cli.log").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # if nothing else is left in it
        ROOT.rmdir()
    result["load_average_end"] = common.load_average()
    result["finished"] = common.now().isoformat(timespec="seconds")
    report(result)
    path = common.write_json("cli", result, started)
    common.console.print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
