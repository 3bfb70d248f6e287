"""Benchmarks of issues 4 and 20: WAL archiving, backups and point-in-time recovery.

    $VENV/bin/python -m bench.archive                 # the real run: 60 s of pgbench, ~1 GB PITR
    $VENV/bin/python -m bench.archive --quick         # a check: 10 s, ~0.2 GB (~3 minutes)

Archiving: a one-node lab (``pgherd lab up --archive``) filled with ``pgbench -i``; then
``pgbench -c 4 -j 2 -T DURATION`` runs with each archiver in turn (alternating order):

- ``cp``: ``archive_command = 'cp %p DIR/%f'``, what operators write by hand;
- ``pgherd``: ``pgherd wal push %p`` (zstd, sha256, fsync), what ``lab up --archive`` sets;
- ``pg_receivewal``: the streaming alternative (its own slot, raw segments, ``--synchronous``
  off), with archive_command ``/bin/true``.

For each: WAL generated (MB/s), transactions per second, whether the archiver kept up
(segments still waiting when pgbench stopped, and how long it took to drain), the size of
what was stored against the WAL, and the CPU time the archiver spent (the archiver
process's reaped children for archive_command, the process itself for pg_receivewal).

PITR: archive_command copies each segment both ways (``cp`` into a directory and ``pgherd
wal push``), a base backup is made with ``pgherd backup create``, pgbench runs until
~PITR_GB of WAL was written after it, and a target time is noted part-way. Then the same
backup is restored to that time twice (alternating order): ``pgherd restore
--target-time T --target-action promote``, and by hand: ``cp -a`` of the backup,
recovery.signal, ``restore_command = 'cp DIR/%f %p'``, the same target, ``pg_ctl start``.
Both are timed from the start of the copy until the server accepts writes. Targets: pgherd
keeps up at the same WAL rate as cp; restore ≤ 1.1× the cp restore; archive ≥ 2× smaller.

Issue 20 adds, in the same run, an S3-compatible repository (moto's server on loopback,
started by the benchmark, reached like any S3 endpoint) beside the local directory:

- archiving: ``pgherd-s3`` pushes through a spool to S3 with the agent's pusher code
  (4 workers), side by side with ``cp`` and ``pgherd`` (the node's own pusher, local);
- backups: a bundled full backup and an incremental one after 1 % of pgbench_accounts
  changed (a contiguous range of rows), time and stored size, against ``pg_basebackup``
  (fast checkpoint, plain format) of the same cluster — target: the incremental takes
  < 15 % of the full one's time;
- PITR to the same time from the local repository and from S3 (bundled backups in each);
- restore after 1 % changed: ``--delta`` into the directory of an earlier restore against
  a full restore into an empty one, from the local repository and from S3 — target:
  < 20 % of the full restore's time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql
from rich.console import Console
from rich.table import Table
from tests.s3_server import S3Server, s3_server, write_credentials

from bench import common
from pgherd.archive import pusher as pusher_mod
from pgherd.archive.wal_repos import WalRepositories
from pgherd.model.repository import RepositorySpec
from pgherd.pg import binaries, osuser, process
from pgherd.pg.archive_commands import (
    pgherd_program,
    spool_push_command,
    write_spool,
)
from pgherd.pg.run import popen_kwargs, program_env, run

# Settings that make pgbench write WAL as fast as this machine allows (the archivers'
# worst case): commits without waiting for the flush, and checkpoints every 30 s, after
# which each first change of a page is logged as a full 8 kB image.
SETTINGS = {"synchronous_commit": "off", "checkpoint_timeout": "30s", "max_wal_size": "4GB"}
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path("/var/tmp/pgherd-bench/archive")
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
USER = osuser.resolve("postgres")
PGBIN = binaries.find(None)


# ---- small helpers ---------------------------------------------------------------------


def free_port_base() -> int:
    for _ in range(200):
        base = random.randrange(20000, 40000)
        ports = [base, base + 1000, base + 10, base + 11]
        if all(common.port_is_free(p) for p in ports):
            return base
    raise RuntimeError("no free ports")


def pgherd(*args: str, config: Path | None = None) -> str:
    argv = [*pgherd_program(), *args]
    if config is not None:
        argv += ["--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgherd {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Node:
    directory: Path
    port: int

    @property
    def config(self) -> Path:
        return self.directory / "pgherd.yaml"

    @property
    def data(self) -> Path:
        return self.directory / "node1" / "data"

    @property
    def socket(self) -> Path:
        return self.directory / "node1" / "run"

    @property
    def spool(self) -> Path:
        return self.directory / "node1" / "wal-spool"

    def sql(self, text: str | pgsql.Composed, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(
            host=str(self.socket), port=self.port, user="postgres", autocommit=True
        ) as conn:
            cur = conn.execute(text, params or None)
            return cur.fetchall() if cur.description else []

    def lsn(self) -> int:
        return int(self.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0])

    def set_archive_command(self, command: str) -> None:
        self.sql(pgsql.SQL("ALTER SYSTEM SET archive_command = {}").format(pgsql.Literal(command)))
        self.sql("SELECT pg_reload_conf()")
        time.sleep(0.5)

    def ready(self) -> int:
        return int(
            self.sql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")[0][
                0
            ]
        )

    def archiver_pid(self) -> int:
        return int(
            self.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'")[0][0]
        )

    def pgbench(self, *args: str, timeout: float = 3600) -> str:
        argv = [str(PGBIN["pgbench"]), "-h", str(self.socket), "-p", str(self.port), *args]
        return run([*argv, "postgres"], USER, timeout=timeout).stdout


def cpu_seconds(pid: int, children: bool) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # after the command: state(0) ppid … utime(11) stime(12) cutime(13) cstime(14)
    if children:
        return (int(fields[13]) + int(fields[14])) / ticks
    return (int(fields[11]) + int(fields[12])) / ticks


def stored_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def wal_stored_bytes(archive: Path, after_segment: str) -> tuple[int, int]:
    """(segments, stored bytes) of the pgherd archive's segments newer than a name."""
    count = size = 0
    for f in (archive / "wal").rglob("*.zst"):
        name = f.name.split("-")[0]
        if len(name) == 24 and name[8:] > after_segment[8:]:
            count += 1
            size += f.stat().st_size
    return count, size


def make_dir(path: Path) -> Path:
    USER.make_dir(path)
    return path


# ---- archiving -------------------------------------------------------------------------


def archive_run(
    node: Node, mode: str, duration: int, work: Path, s3: RepositorySpec
) -> dict[str, Any]:
    """pgbench for ``duration`` seconds with one archiver; what it cost and kept."""
    archive = node.directory / "archive"
    bench_pusher: pusher_mod.Pusher | None = None
    bench_thread: threading.Thread | None = None
    segment0 = node.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    receiver: subprocess.Popen[bytes] | None = None
    target = work / mode
    if target.exists():
        shutil.rmtree(target)
    make_dir(target)
    if mode == "cp":
        node.set_archive_command(f"cp %p {shlex.quote(str(target))}/%f")
    elif mode == "pgherd":
        node.set_archive_command(spool_push_command(node.spool))  # the agent's pusher
    elif mode == "pgherd-s3":
        spool = make_dir(target / "spool")
        write_spool(spool, [s3], USER)
        bench_pusher = pusher_mod.Pusher(node.data, spool, WalRepositories.open([s3]), 4)
        bench_thread = threading.Thread(target=bench_pusher.run, daemon=True)
        bench_thread.start()
        node.set_archive_command(spool_push_command(spool))
    else:
        node.set_archive_command("/bin/true")
        node.sql("SELECT pg_create_physical_replication_slot('bench_receivewal', true)")
        receiver = subprocess.Popen(
            [
                str(PGBIN["pg_receivewal"]),
                "-h",
                str(node.socket),
                "-p",
                str(node.port),
                "-U",
                "postgres",
                "-D",
                str(target),
                "--slot",
                "bench_receivewal",
                "-n",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=program_env(USER),
            **popen_kwargs(USER),
        )
    node.sql("SELECT pg_switch_wal()")
    wait_drained(node, 120)
    node.sql("CHECKPOINT")  # full-page images from the first write of each page on
    archiver = node.archiver_pid()
    cpu0 = cpu_seconds(archiver, children=True) + pusher_cpu(node, mode)
    lsn0 = node.lsn()
    started = time.monotonic()
    out = node.pgbench("-c", "4", "-j", "2", "-T", str(duration), "-n", timeout=duration + 120)
    elapsed = time.monotonic() - started
    lsn1 = node.lsn()
    waiting = node.ready()
    if receiver is not None:
        lag = receiver_lag(node, lsn1)
        drained = wait_receiver(node, lsn1, 120)
        cpu = cpu_seconds(receiver.pid, children=False)
        receiver.send_signal(signal.SIGINT)
        receiver.wait(30)
        node.sql("SELECT pg_drop_replication_slot('bench_receivewal')")
        waiting = max(0, lag // (16 * 1024 * 1024))
        stored = stored_bytes(target)
        segments = stored // (16 * 1024 * 1024)
    else:
        node.sql("SELECT pg_switch_wal()")
        drained = wait_drained(node, 300)
        cpu = cpu_seconds(archiver, children=True) + pusher_cpu(node, mode) - cpu0
        if bench_pusher is not None and bench_thread is not None:
            bench_pusher.stop()
            bench_thread.join(10)
            segments, stored = s3_stored(s3, segment0)
        elif mode == "pgherd":
            segments, stored = wal_stored_bytes(archive, segment0)
        else:
            stored = stored_bytes(target)
            segments = stored // (16 * 1024 * 1024)
    wal = lsn1 - lsn0
    tps = float(out.split("tps = ")[1].split()[0]) if "tps = " in out else 0.0
    shutil.rmtree(target, ignore_errors=True)
    return {
        "mode": mode,
        "seconds": round(elapsed, 1),
        "wal_mb": round(wal / 1e6, 1),
        "wal_mb_per_s": round(wal / 1e6 / elapsed, 2),
        "tps": round(tps),
        "waiting_at_end": waiting,
        "drain_seconds": round(drained, 1),
        "kept_up": waiting <= 1,
        "stored_mb": round(stored / 1e6, 1),
        "segments": segments,
        "compression": round(segments * 16 * 1024 * 1024 / stored, 2) if stored else None,
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_wal_mb": round(1000 * cpu / (wal / 1e6), 1) if wal else None,
    }


def pusher_cpu(node: Node, mode: str) -> float:
    """CPU of the process that pushes: the node's agent (its pusher) or this benchmark
    (pgherd-s3 runs the same pusher code in a thread here)."""
    if mode == "pgherd":
        pid = int((node.directory / "node1" / "agent.pid").read_text())
        return cpu_seconds(pid, children=False)
    if mode == "pgherd-s3":
        return time.process_time()
    return 0.0


def s3_stored(s3: RepositorySpec, after_segment: str) -> tuple[int, int]:
    from pgherd.archive.repository import open_repository

    count = size = 0
    for obj in open_repository(s3).raw.list("wal/"):
        name = obj.key.rsplit("/", 1)[-1].split("-")[0]
        if len(name) == 24 and name[8:] > after_segment[8:]:
            count += 1
            size += obj.size
    return count, size


def wait_drained(node: Node, timeout: float) -> float:
    started = time.monotonic()
    while node.ready() > 0:
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.1)
    return time.monotonic() - started


def receiver_lag(node: Node, lsn: int) -> int:
    rows = node.sql(
        "SELECT flush_lsn - '0/0'::pg_lsn FROM pg_stat_replication "
        "WHERE application_name = 'pg_receivewal'"
    )
    return lsn - int(rows[0][0]) if rows and rows[0][0] is not None else lsn


def wait_receiver(node: Node, lsn: int, timeout: float) -> float:
    started = time.monotonic()
    while receiver_lag(node, lsn) > 16 * 1024 * 1024:
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.2)
    return time.monotonic() - started


# ---- PITR ------------------------------------------------------------------------------


def pitr(
    node: Node, gigabytes: float, work: Path, rounds: int, s3: RepositorySpec
) -> dict[str, Any]:
    """The same target time restored by hand with cp, by pgherd from the local
    repository and by pgherd from S3 (each repository holding its own bundled backup)."""
    archive = node.directory / "archive"
    copies = make_dir(work / "cp-archive")
    spool = make_dir(work / "pitr-spool")
    main_spec = RepositorySpec("main", path=str(archive))
    write_spool(spool, [main_spec, s3], USER)
    pusher = pusher_mod.Pusher(node.data, spool, WalRepositories.open([main_spec, s3]), 4)
    thread = threading.Thread(target=pusher.run, daemon=True)
    thread.start()
    node.set_archive_command(f"cp %p {shlex.quote(str(copies))}/%f && {spool_push_command(spool)}")
    node.sql("SELECT pg_switch_wal()")
    wait_drained(node, 120)
    copy = json.loads(pgherd("backup", "create", "--format", "copy", "--json", config=node.config))
    local = json.loads(pgherd("backup", "create", "--json", config=node.config))
    remote = json.loads(pgherd("backup", "create", "--repo", "s3", "--json", config=node.config))
    start = node.lsn()
    segment0 = node.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    goal = int(gigabytes * 1e9)
    console.print(f"  writing {gigabytes:.1f} GB of WAL after the backups…")
    target: str | None = None
    while node.lsn() - start < goal:
        node.pgbench("-c", "4", "-j", "2", "-T", "10", "-n")
        if target is None and node.lsn() - start >= goal * 0.95:
            target = str(node.sql("SELECT now()::text")[0][0])
    if target is None:
        target = str(node.sql("SELECT now()::text")[0][0])
    node.pgbench("-c", "4", "-j", "2", "-T", "3", "-n")
    wal = node.lsn() - start
    node.sql("SELECT pg_switch_wal()")
    wait_drained(node, 600)
    count, stored = wal_stored_bytes(archive, segment0)
    hows = ["cp", "pgherd", "pgherd-s3"]
    times: dict[str, list[float]] = {h: [] for h in hows}
    phases: dict[str, list[dict[str, float]]] = {h: [] for h in hows}
    for n in range(rounds):
        for how in hows if n % 2 == 0 else list(reversed(hows)):
            into = work / f"restore-{how}"
            remove_restore(into)
            port = free_port_base()
            if how == "cp":
                seconds = restore_cp(node, into, port, target, copy["label"], copies)
            else:
                repo = "s3" if how == "pgherd-s3" else "main"
                seconds, _fetched = restore_pgherd(
                    node, into, port, ["--target-time", target], repo
                )
            times[how].append(seconds)
            deadline = time.monotonic() + 5  # the log's last line may lag the state
            while not log_phases(into) and time.monotonic() < deadline:
                time.sleep(0.1)
            phases[how].append(log_phases(into))
            console.print(f"  {how} restore to {target}: {seconds:.1f} s {phases[how][-1]}")
            remove_restore(into)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "backups": {"copy": copy["label"], "main": local["label"], "s3": remote["label"]},
        "wal_mb_replayed": round(wal / 1e6, 1),
        "target_time": target,
        "archive_segments": count,
        "archive_stored_mb": round(stored / 1e6, 1),
        "archive_compression": round(count * 16 * 1024 * 1024 / stored, 2) if stored else None,
        "restore_seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "restore_median": {k: round(v, 2) for k, v in median.items()},
        "restore_phases": phases,
        "ratio_pgherd_to_cp": round(median["pgherd"] / median["cp"], 3),
        "ratio_s3_to_local": round(median["pgherd-s3"] / median["pgherd"], 3),
    }


def push_to_both(node: Node, work: Path, s3: RepositorySpec) -> pusher_mod.Pusher:
    """From here on every segment goes to a plain copy (for the cp baseline) and, through
    the pusher's code, to both repositories (backups wait for their end in each)."""
    copies = make_dir(work / "cp-archive")
    spool = make_dir(work / "pitr-spool")
    main_spec = RepositorySpec("main", path=str(node.directory / "archive"))
    write_spool(spool, [main_spec, s3], USER)
    pusher = pusher_mod.Pusher(node.data, spool, WalRepositories.open([main_spec, s3]), 4)
    threading.Thread(target=pusher.run, daemon=True).start()
    node.set_archive_command(f"cp %p {shlex.quote(str(copies))}/%f && {spool_push_command(spool)}")
    return pusher


def restore_pgherd(
    node: Node, into: Path, port: int, target: list[str], repo: str, *more: str
) -> tuple[float, int]:
    """(seconds, bytes fetched from the repository)."""
    seconds, done = restore_pgherd_json(node, into, port, target, repo, *more)
    return seconds, int(done.get("fetched_bytes", 0))


def restore_pgherd_json(
    node: Node, into: Path, port: int, target: list[str], repo: str, *more: str
) -> tuple[float, dict[str, Any]]:
    """(seconds, what ``restore --json`` printed: fetched_bytes, phases…)."""
    started = time.monotonic()
    done = pgherd(
        "restore",
        "--into",
        str(into),
        "--port",
        str(port),
        *target,
        "--target-action",
        "promote",
        "--repo",
        repo,
        *more,
        "--json",
        config=node.config,
    )
    return time.monotonic() - started, dict(json.loads(done))


def one_percent(node: Node, scale: int, where: float) -> None:
    """Change 1 % of pgbench_accounts: a contiguous range of rows from ``where`` (0–1)."""
    rows = scale * 100_000
    first = int(rows * where) + 1
    node.sql(
        "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN %s AND %s",
        first,
        first + rows // 100 - 1,
    )


def timed_backup(node: Node, *args: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    made = json.loads(pgherd("backup", "create", *args, "--json", config=node.config))
    return time.monotonic() - started, made


def backups(node: Node, work: Path, scale: int) -> dict[str, Any]:
    """pg_basebackup, a bundled full backup, then an incremental after 1 % changed."""
    target = work / "basebackup"
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    run(
        [
            PGBIN["pg_basebackup"],
            "-h",
            node.socket,
            "-p",
            str(node.port),
            "-U",
            "postgres",
            "-D",
            target,
            "-c",
            "fast",
            "-X",
            "none",  # like pgherd's backups, which take their WAL from the archive
        ],
        USER,
        timeout=3600,
    )
    basebackup_s = time.monotonic() - started
    basebackup_bytes = stored_bytes(target)
    shutil.rmtree(target, ignore_errors=True)
    full_s, full = timed_backup(node)
    one_percent(node, scale, 0.3)
    node.sql("CHECKPOINT")
    inc_s, inc = timed_backup(node, "--type", "incremental")
    # the same again with every file read and every chunk hashed (--checksum): what
    # trusting size, time and page LSNs saves, in the same run
    one_percent(node, scale, 0.4)
    node.sql("CHECKPOINT")
    checked_s, checked = timed_backup(node, "--type", "incremental", "--checksum")
    console.print(
        f"  pg_basebackup {basebackup_s:.1f} s; full {full_s:.1f} s "
        f"({full['stored_bytes'] / 1e6:.0f} MB stored); incremental after 1 % {inc_s:.1f} s "
        f"({inc['stored_bytes'] / 1e6:.1f} MB); with --checksum {checked_s:.1f} s"
    )
    return {
        "pg_basebackup": {"seconds": round(basebackup_s, 2), "bytes": basebackup_bytes},
        "full": {
            "seconds": round(full_s, 2),
            "size_bytes": full["size_bytes"],
            "stored_bytes": full["stored_bytes"],
            "phases": full.get("phases", {}),
        },
        "incremental": {
            "seconds": round(inc_s, 2),
            "size_bytes": inc["size_bytes"],
            "stored_bytes": inc["stored_bytes"],
            "phases": inc.get("phases", {}),
        },
        "incremental_checksum": {
            "seconds": round(checked_s, 2),
            "stored_bytes": checked["stored_bytes"],
        },
        "full_vs_pg_basebackup_time": round(full_s / basebackup_s, 3),
        "incremental_vs_full_time": round(inc_s / full_s, 3),
        "incremental_vs_full_stored": round(inc["stored_bytes"] / full["stored_bytes"], 3),
    }


def delta_restore(node: Node, work: Path, scale: int, repo: str, where: float) -> dict[str, Any]:
    """A restore into an empty directory of an up-to-date backup, then after 1 % changed
    (and an incremental backup) a --delta restore into that directory against a full one
    into a new one, both from ``repo`` (the local directory, or S3: where a delta restore
    saves the transfer too)."""
    first = work / "delta-target"
    remove_restore(first)
    port = free_port_base()
    # The repository's newest backup up to date first: S3's last one was taken before
    # the earlier parts changed 3 % more, and the delta would carry those too.
    timed_backup(node, "--type", "incremental", "--repo", repo)
    initial, _fetched = restore_pgherd(node, first, port, ["--latest"], repo)
    remove_restore_keep(first)
    one_percent(node, scale, where)
    node.sql("CHECKPOINT")
    timed_backup(node, "--type", "incremental", "--repo", repo)
    results: dict[str, float] = {}
    fetched: dict[str, int] = {}
    phases: dict[str, dict[str, float]] = {}
    fresh = work / "delta-full"
    for how in ("delta", "delta-checksum", "full"):
        if how.startswith("delta"):
            more = ["--delta", "--checksum"] if how == "delta-checksum" else ["--delta"]
            results[how], done = restore_pgherd_json(node, first, port, ["--latest"], repo, *more)
            remove_restore_keep(first)
        else:
            remove_restore(fresh)
            results[how], done = restore_pgherd_json(node, fresh, port, ["--latest"], repo)
            remove_restore(fresh)
        fetched[how] = int(done.get("fetched_bytes", 0))
        phases[how] = done.get("phases", {})
    remove_restore(first)
    console.print(
        f"  restore from {repo} after 1 % changed: --delta {results['delta']:.1f} s "
        f"({fetched['delta'] / 1e6:.1f} MB fetched), --delta --checksum "
        f"{results['delta-checksum']:.1f} s, full {results['full']:.1f} s (first restore "
        f"{initial:.1f} s)"
    )
    return {
        "repository": repo,
        "first_restore_seconds": round(initial, 2),
        "delta_seconds": round(results["delta"], 2),
        "delta_checksum_seconds": round(results["delta-checksum"], 2),
        "full_seconds": round(results["full"], 2),
        "fetched_bytes": fetched,
        "phases": phases,
        "delta_vs_full": round(results["delta"] / results["full"], 3),
    }


def remove_restore_keep(into: Path) -> None:
    """Stop a restored server, keeping its directory (for a --delta restore into it)."""
    pm = process.running_postmaster(into)
    if pm is not None:
        process.signal_pid(pm.pid, signal.SIGINT)
        process.wait_gone(pm.pid, 60)


def restore_cp(node: Node, into: Path, port: int, target: str, label: str, copies: Path) -> float:
    """What an operator does by hand, with the same backup and target."""
    backup = node.directory / "archive" / "backups" / label / "data"
    started = time.monotonic()
    make_dir(into)
    run(["cp", "-a", f"{backup}/.", str(into)], USER, timeout=3600)
    for stale in ("standby.signal", "postmaster.pid"):
        (into / stale).unlink(missing_ok=True)
    settings = {
        "port": port,
        "listen_addresses": "",
        "unix_socket_directories": str(into),
        "archive_mode": "off",
        "primary_conninfo": "",
        "primary_slot_name": "",
        "restore_command": f"cp {shlex.quote(str(copies))}/%f %p",
        "recovery_target_time": target,
        "recovery_target_action": "promote",
    }
    lines = [f"{k} = '{v}'" for k, v in settings.items()]
    conf = into / "pgherd.conf"  # the backup's settings stay; later lines win
    USER.write_file(conf, conf.read_text() + "\n".join(lines) + "\n")
    USER.write_file(into / "recovery.signal", "")
    log = into / "restore.log"
    run([PGBIN["pg_ctl"], "start", "-D", into, "-l", log, "-W"], USER, timeout=60)
    gone = 0  # postmaster.pid is rewritten at the end of recovery: look twice
    while True:
        try:
            with psycopg.connect(host=str(into), port=port, user="postgres") as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row == (False,):
                    break
        except psycopg.OperationalError:
            pass
        running = process.running_postmaster(into) is not None
        gone = 0 if running else gone + 1
        if gone >= 10 and time.monotonic() - started > 5:
            raise RuntimeError(f"the cp restore stopped: see {log}")
        time.sleep(0.1)
    return time.monotonic() - started


def log_phases(into: Path) -> dict[str, float]:
    """From the server log: seconds from start to recovery start (the data directory's
    fsync), replay (redo) and from the end of redo to accepting writes."""
    stamps: dict[str, datetime] = {}
    marks = {
        "start": "starting PostgreSQL",
        "recovery": "starting point-in-time recovery",
        "redo_done": "redo done at",
        "ready": "database system is ready to accept connections",
    }
    for log in into.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            for key, text in marks.items():
                if text in line and key not in stamps:
                    stamps[key] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
    if len(stamps) < len(marks):
        return {}
    return {
        "until_recovery": round((stamps["recovery"] - stamps["start"]).total_seconds(), 2),
        "replay": round((stamps["redo_done"] - stamps["recovery"]).total_seconds(), 2),
        "end": round((stamps["ready"] - stamps["redo_done"]).total_seconds(), 2),
    }


def remove_restore(into: Path) -> None:
    pm = process.running_postmaster(into)
    if pm is not None:
        process.signal_pid(pm.pid, signal.SIGQUIT)
        process.wait_gone(pm.pid, 20)
    shutil.rmtree(into, ignore_errors=True)


# ---- main ------------------------------------------------------------------------------


def push_startup(node: Node) -> dict[str, float]:
    """Start-up of the push path against the full CLI (what archive_command pays)."""

    def best(argv: list[str]) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=False)
            runs.append(time.perf_counter() - started)
        return round(min(runs), 3)

    program = pgherd_program()
    return {
        "wal_fetch_missing_s": best(
            [
                *program,
                "wal",
                "fetch",
                "00000001000000FF000000FF",
                "/dev/null",
                "--archive",
                str(node.directory / "archive"),
            ]
        ),
        "full_cli_help_s": best([*program, "backup", "--help"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s runs, 0.2 GB PITR")
    parser.add_argument("--duration", type=int, default=None)
    parser.add_argument("--pitr-gb", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=1, help="pgbench rounds per archiver")
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument(
        "--only",
        choices=("all", "backups"),
        default="all",
        help="backups: only the backups and restores of issue 20 (no archiving runs, no PITR)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT,
        help=f"working directory, emptied first (default {ROOT}; give your own on a shared "
        "machine)",
    )
    args = parser.parse_args()
    duration = args.duration or (10 if args.quick else 60)
    gigabytes = args.pitr_gb or (0.2 if args.quick else 1.0)
    process.become_subreaper()
    root = args.work.absolute()
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(mode=0o755, exist_ok=True)
    os.chmod(root.parent, 0o755)  # noqa: S103 - postgres must traverse it
    work = make_dir(root)
    with s3_server() as server:
        server.make_bucket("pgherd-bench")
        run_all(args, work, duration, gigabytes, server)


def add_s3_repository(node: Node, work: Path, server: S3Server) -> RepositorySpec:
    """The lab's pgherd.yaml gains an S3 repository (read by the CLI; the node's agent
    keeps archiving into the local one). It is moto itself (``server.direct``), not the
    fault-injecting proxy the tests put in front of it: that proxy buffers every body in
    Python and would be timed as part of S3."""
    import yaml

    credentials = work / "s3.credentials"
    write_credentials(credentials)
    os.chown(credentials, USER.uid, USER.gid)  # restore_command reads it as postgres
    raw = yaml.safe_load(node.config.read_text())
    repository = {
        "name": "s3",
        "repo": "s3://pgherd-bench/archive",
        "endpoint": server.direct,
        "credentials_file": str(credentials),
    }
    raw["archive"]["repositories"] = [repository]
    node.config.write_text(yaml.safe_dump(raw, sort_keys=False))
    pgherd("archive", "init", config=node.config)
    return RepositorySpec(
        "s3", repo=repository["repo"], endpoint=server.direct, credentials_file=str(credentials)
    )


def run_all(
    args: argparse.Namespace, work: Path, duration: int, gigabytes: float, server: S3Server
) -> None:
    base = free_port_base()
    lab = work / "lab"
    console.print(f"lab up (1 node, --archive) on port {base}; pgbench -i -s {args.scale}")
    pgherd("lab", "up", "--dir", str(lab), "--nodes", "1", "--archive", "--port-base", str(base))
    node = Node(lab, base)
    started = datetime.now(UTC)
    try:
        s3 = add_s3_repository(node, work, server)
        for name, value in SETTINGS.items():
            node.sql(
                pgsql.SQL("ALTER SYSTEM SET {} = {}").format(
                    pgsql.Identifier(name), pgsql.Literal(value)
                )
            )
        node.sql("SELECT pg_reload_conf()")
        node.pgbench("-i", "-s", str(args.scale), "-q")
        runs: list[dict[str, Any]] = []
        recovery: dict[str, Any] = {}
        startup: dict[str, float] = {}
        modes = ["cp", "pgherd", "pgherd-s3", "pg_receivewal"]
        for n in range(args.rounds if args.only == "all" else 0):
            for mode in modes if n % 2 == 0 else list(reversed(modes)):
                console.print(f"  pgbench -c 4 -T {duration} with {mode}…")
                runs.append(archive_run(node, mode, duration, work, s3))
        if args.only == "all":
            startup = push_startup(node)
        pusher = push_to_both(node, work, s3)
        if args.only == "all":
            recovery = pitr(node, gigabytes, work, max(1, args.rounds), s3)
        else:  # the S3 repository's chain needs a full backup of its own
            node.sql("SELECT pg_switch_wal()")
            wait_drained(node, 120)
            pgherd("backup", "create", "--repo", "s3", "--json", config=node.config)
        console.print("  backups: pg_basebackup, full, incremental after 1 % changed…")
        taken = backups(node, work, args.scale)
        delta = delta_restore(node, work, args.scale, "main", 0.6)
        delta_s3 = delta_restore(node, work, args.scale, "s3", 0.8)
        pusher.stop()
    finally:
        subprocess.run(
            [*pgherd_program(), "lab", "down", "--dir", str(lab)], capture_output=True, check=False
        )
    report(Results(runs, recovery, startup, taken, [delta, delta_s3], duration, gigabytes, started))


@dataclass(frozen=True)
class Results:
    """One run's figures (``recovery`` and ``startup`` are empty with --only backups)."""

    runs: list[dict[str, Any]]
    recovery: dict[str, Any]
    startup: dict[str, float]
    taken: dict[str, Any]
    deltas: list[dict[str, Any]]
    duration: int
    gigabytes: float
    started: datetime


def report(results: Results) -> None:
    runs, duration = results.runs, results.duration
    table = Table(title=f"archiving under pgbench -c 4 -T {duration}", title_justify="left")
    columns = [
        "mode",
        "wal_mb_per_s",
        "tps",
        "waiting_at_end",
        "drain_seconds",
        "kept_up",
        "compression",
        "cpu_seconds",
        "cpu_ms_per_wal_mb",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in runs:
        table.add_row(*(str(r[c]) for c in columns))
    if runs:
        console.print(table)
    if results.recovery:
        report_pitr(results.recovery, results.startup)
    report_backups(results.taken, results.deltas)
    write_results(results)


def report_pitr(recovery: dict[str, Any], startup: dict[str, float]) -> None:
    pitr_table = Table(
        title=f"PITR of {recovery['wal_mb_replayed']} MB of WAL to a time", title_justify="left"
    )
    for column in ("restore", "seconds (median)", "ratio to cp"):
        pitr_table.add_column(column)
    for how in ("cp", "pgherd", "pgherd-s3"):
        seconds = recovery["restore_median"][how]
        pitr_table.add_row(
            how, f"{seconds:.1f}", f"{seconds / recovery['restore_median']['cp']:.2f}"
        )
    console.print(pitr_table)
    console.print(
        f"archive: {recovery['archive_stored_mb']} MB for {recovery['archive_segments']} "
        f"segments ({recovery['archive_compression']}x smaller than the WAL); push start-up "
        f"{startup['wal_fetch_missing_s']} s vs full CLI {startup['full_cli_help_s']} s"
    )


def report_backups(taken: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
    backup_table = Table(title="backups (same cluster, one run)", title_justify="left")
    for column in ("what", "seconds", "stored MB", "ratio"):
        backup_table.add_column(column)
    backup_table.add_row(
        "pg_basebackup -X none",
        str(taken["pg_basebackup"]["seconds"]),
        f"{taken['pg_basebackup']['bytes'] / 1e6:.0f}",
        "1.00",
    )
    backup_table.add_row(
        "pgherd full",
        str(taken["full"]["seconds"]),
        f"{taken['full']['stored_bytes'] / 1e6:.0f}",
        f"{taken['full_vs_pg_basebackup_time']:.2f} of pg_basebackup",
    )
    backup_table.add_row(
        "pgherd incremental (1 %)",
        str(taken["incremental"]["seconds"]),
        f"{taken['incremental']['stored_bytes'] / 1e6:.1f}",
        f"{taken['incremental_vs_full_time']:.2f} of full",
    )
    checked = taken["incremental_checksum"]
    backup_table.add_row(
        "pgherd incremental --checksum (1 %)",
        str(checked["seconds"]),
        f"{checked['stored_bytes'] / 1e6:.1f}",
        f"{checked['seconds'] / taken['full']['seconds']:.2f} of full",
    )
    for delta in deltas:
        fetched = delta["fetched_bytes"]
        backup_table.add_row(
            f"restore --delta (1 %) from {delta['repository']}",
            str(delta["delta_seconds"]),
            f"{fetched['delta'] / 1e6:.1f} fetched",
            f"{delta['delta_vs_full']:.2f} of a full restore ({delta['full_seconds']} s)",
        )
        backup_table.add_row(
            f"restore --delta --checksum from {delta['repository']}",
            str(delta["delta_checksum_seconds"]),
            f"{fetched['delta-checksum'] / 1e6:.1f} fetched",
            f"{delta['delta_checksum_seconds'] / delta['full_seconds']:.2f} of a full restore",
        )
    console.print(backup_table)
    report_phases(taken, deltas)


def report_phases(taken: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
    """Where each one's time went: the ``phases`` of its ``--json``, as measured by
    pgherd itself (seconds), and the wall time this benchmark measured around it."""
    table = Table(title="where the time goes (phases, seconds)", title_justify="left")
    for column in ("what", "wall", "phases"):
        table.add_column(column)
    rows = [
        ("backup full", taken["full"]["seconds"], taken["full"].get("phases", {})),
        (
            "backup incremental",
            taken["incremental"]["seconds"],
            taken["incremental"].get("phases", {}),
        ),
    ]
    for delta in deltas:
        for how, key in (("delta", "delta_seconds"), ("full", "full_seconds")):
            rows.append(
                (
                    f"restore {how} from {delta['repository']}",
                    delta[key],
                    delta["phases"].get(how, {}),
                )
            )
    for what, wall, phases in rows:
        table.add_row(what, f"{wall:.2f}", ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    console.print(table)


def write_results(results: Results) -> None:
    runs, recovery, taken, deltas = results.runs, results.recovery, results.taken, results.deltas
    started = results.started

    def rate(mode: str) -> float | None:
        rates = [r["wal_mb_per_s"] for r in runs if r["mode"] == mode]
        return float(statistics.median(rates)) if rates else None

    def ratio(mode: str) -> float | None:
        mine, cp = rate(mode), rate("cp")
        return round(mine / cp, 3) if mine is not None and cp else None

    data = {
        "benchmark": "archive",
        "started": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgresql": PGBIN.version,
            "load_average": [round(v, 2) for v in os.getloadavg()],
        },
        "duration_s": results.duration,
        "settings": SETTINGS,
        "pitr_gb": results.gigabytes,
        "archiving": runs,
        "startup": results.startup,
        "pitr": recovery,
        "backups": taken,
        "delta_restore": deltas,
        "targets": {
            "s3_kept_up": all(r["kept_up"] for r in runs if r["mode"] == "pgherd-s3")
            if runs
            else None,
            "s3_wal_rate_vs_cp": ratio("pgherd-s3"),
            "incremental_under_15_percent_of_full": taken["incremental_vs_full_time"] < 0.15,
            "delta_restore_under_20_percent_of_full": {
                d["repository"]: d["delta_vs_full"] < 0.2 for d in deltas
            },
            "pgherd_kept_up": all(r["kept_up"] for r in runs if r["mode"] == "pgherd")
            if runs
            else None,
            "pgherd_wal_rate_vs_cp": ratio("pgherd"),
            "restore_ratio_at_most_1_1": recovery["ratio_pgherd_to_cp"] <= 1.1
            if recovery
            else None,
            "archive_at_least_2x_smaller": (recovery.get("archive_compression") or 0) >= 2
            if recovery
            else None,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"archive-{started.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
