"""One run of one fault against a FaultCluster, judged by the checker.

A run: wait until the cluster is settled; start the clients (the libpq multi-host URI and
HAProxy), each with keys of its own; let them write; inject the fault; keep it ``hold``
seconds; heal it; wait until the cluster settles again; let the clients write a little
more; stop them; read every member; check. The result carries the verdict and the
figures of docs/reliability.md's table: acknowledged writes lost, overlapping primaries,
the longest time a client waited for an acknowledgement, the time to settle, and whether
the primary changed (a false failover when the fault should not move it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tests.faults import checker, history
from tests.faults.catalogue import Expect, Fault, Targets
from tests.faults.checker import Check, Verdict, Violation
from tests.faults.cluster import NODES, FaultCluster

KEYS_PER_RUN = 10_000_000  # each run's clients take keys in a range of their own
CLIENTS = ("uri", "haproxy")
WARM_UP_ACKS = 20  # writes acknowledged per client before the fault
SETTLE_WITHIN = 120.0  # seconds: the checker's bound on convergence after a fault
AFTER = 2.0  # seconds of writes once settled, so that every client saw the new primary


@dataclass(frozen=True)
class RunResult:
    fault: str
    expect: Expect
    primary_before: str
    primary_after: str
    leaders: tuple[str, ...]  # the lease holders seen, in order
    verdict: Verdict
    longest_wait: float  # seconds a client went without an acknowledgement
    writes: int
    acked: int
    load: tuple[float, float, float]
    injected: float  # wall clock
    healed: float
    ended: float
    history: tuple[history.Write, ...] = ()

    @property
    def failover(self) -> bool:
        return len(self.leaders) > 1 or self.primary_after != self.primary_before

    @property
    def false_failover(self) -> bool:
        return self.expect is Expect.STAY and self.failover

    def problems(self) -> list[str]:
        found = [str(v) for v in self.verdict.violations]
        if self.false_failover:
            found.append(
                f"false failover: {self.fault} should leave {self.primary_before} leading; "
                f"the lease went {' → '.join(self.leaders)}"
            )
        if self.expect is Expect.FAILOVER and not self.failover:
            found.append(f"{self.fault}: {self.primary_before} still leads; expected a failover")
        return found


def _leaders(c: FaultCluster, since: float) -> tuple[str, ...]:
    found: list[str] = []
    for o in c.observations(since):
        if o.leader is not None and (not found or found[-1] != o.leader):
            found.append(o.leader)
    return tuple(found)


def _wait_acks(paths: list[Path], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        writes = history.read(paths)
        if all(sum(1 for w in writes if w.client == name and w.acked) >= count for name in CLIENTS):
            return
        time.sleep(0.2)
    raise AssertionError(f"the clients did not get {count} writes acknowledged each in {timeout} s")


def run(
    c: FaultCluster, fault: Fault, directory: Path, index: int, verify_archive: bool = True
) -> RunResult:
    """``fault`` once; ``index`` picks the run's keys (and which standby is aimed at);
    ``verify_archive``: ``backup verify`` the archive afterwards (a few seconds)."""
    directory.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # a prepare that moved the primary (an agent restart) aims again
        primary = c.primary()
        targets = Targets(primary, c.standbys(primary)[index % 2])
        fault.prepare(c, targets)
        if c.primary() == primary:
            break
    lo = (index + 1) * KEYS_PER_RUN
    stop = directory / "stop"
    stop.unlink(missing_ok=True)
    paths = [directory / f"{name}.jsonl" for name in CLIENTS]
    conninfo = {"uri": c.conninfo_uri(), "haproxy": c.conninfo_haproxy()}
    procs = [
        c.start_client(name, conninfo[name], lo + i * (KEYS_PER_RUN // 2), path, stop)
        for i, (name, path) in enumerate(zip(CLIENTS, paths, strict=True))
    ]
    began = time.time()
    try:
        _wait_acks(paths, WARM_UP_ACKS, 60)
        injected = time.time()
        fault.inject(c, targets)
        try:
            fault.during(c, targets)
            time.sleep(max(0.0, injected + fault.hold - time.time()))
        finally:
            fault.heal(c, targets)
        healed = time.time()
        try:
            settled_at = c.wait_settled(SETTLE_WITHIN, since=healed).at
        except AssertionError:
            settled_at = time.time()
        time.sleep(max(0.0, settled_at + AFTER - time.time()))
    finally:
        stop.touch()
        for proc in procs:
            try:
                proc.wait(30)
            except Exception:
                proc.kill()
                proc.wait(10)
    ended = time.time()
    writes = history.read(paths)
    final = c.final((lo, lo + KEYS_PER_RUN))
    extra: list[Violation] = list(fault.verify(c, targets))
    if verify_archive and c.backup_label is not None:
        code, report = c.cli_json("backup", "verify", c.backup_label, "--no-checksums")
        ok = code == 0 and bool(report.get("ok"))
        extra += checker.archive_continuous(ok, str(report.get("problems") or report)[:600])
    ttl = c.deployment.config.ha.ttl if c.deployment.config.ha else 3.0
    verdict = checker.check(
        Check(
            writes,
            final,
            c.mode,
            async_window=ttl + 1.0,
            observations=c.observations(healed),
            healed_at=healed,
            converge_within=SETTLE_WITHIN,
            extra=tuple(extra),
        )
    )
    result = RunResult(
        fault.name,
        fault.expect,
        primary,
        final.primary,
        _leaders(c, began),
        verdict,
        checker.longest_wait(writes, injected, ended),
        len(writes),
        sum(1 for w in writes if w.acked),
        os.getloadavg(),
        injected,
        healed,
        ended,
        writes,
    )
    if result.problems():
        keep_logs(c, directory)
    return result


def keep_logs(c: FaultCluster, directory: Path) -> None:
    """The agents' and the servers' logs beside a run that broke a rule: the nodes' disks,
    where they are written, go with the cluster. (The server's log holds what the
    postmaster's keeper did: a fence it fired is said there.)"""
    for node in NODES:
        found = c.deployment.node(node)
        for log, name in ((found.agent_log, "agent"), (found.server_log, "postgresql")):
            with contextlib.suppress(OSError):
                shutil.copyfile(log, directory / f"{node}.{name}.log")


def assert_clean(result: RunResult) -> None:
    problems = result.problems()
    assert not problems, f"{result.fault}:\n" + "\n".join(problems)
