"""The faults, each a small object that injects itself into a FaultCluster and heals
itself: partitions, processes, resources, time. Each says what a correct pgherd does
about it (``expect``): fail over, stay (a change of primary is a false failover), or
either. ``Combined`` runs several at once.

A fault is made fresh for each run (``FAULTS[name]()``); it may keep state between
``inject`` and ``heal`` (a flapping link's thread, a killed process to restart).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pgherd.pg import process
from pgherd.pg.keeper import KEEPER_PROCESS_NAME
from tests.faults.checker import Rule, Violation
from tests.faults.cluster import NODES, FaultCluster
from tests.hosts import network, storage
from tests.hosts.etcd import CLIENT_PORT, PEER_PORT

STORE_PORTS = (CLIENT_PORT, PEER_PORT)


class NotHere(Exception):
    """The fault cannot be made honestly on this machine (say, a kernel without netem)."""


class Expect(StrEnum):
    FAILOVER = "failover"  # another node must lead afterwards
    STAY = "stay"  # the primary must keep leading: a change is a false failover
    EITHER = "either"  # both are correct (it depends on timing)


@dataclass(frozen=True)
class Targets:
    """Who the fault aims at, chosen when it starts."""

    primary: str
    standby: str

    def others(self, node: str) -> list[str]:
        return [n for n in NODES if n != node]


class Fault:
    name = ""
    summary = ""
    expect = Expect.EITHER
    hold = 10.0  # seconds between inject and heal

    def inject(self, c: FaultCluster, t: Targets) -> None:
        raise NotImplementedError

    def heal(self, c: FaultCluster, t: Targets) -> None:
        raise NotImplementedError

    def prepare(self, c: FaultCluster, t: Targets) -> None:
        """Before the clients start (an agent to restart with a clock of its own, say)."""

    def during(self, c: FaultCluster, t: Targets) -> None:
        """Called once, right after inject: work the fault needs while it lasts (WAL to
        archive, say); the harness sleeps out the rest of ``hold``."""

    def verify(self, c: FaultCluster, t: Targets) -> list[Violation]:
        """Checks of its own, once the cluster settled after the heal."""
        return []


# ---- partitions --------------------------------------------------------------------------


class PrimaryCut(Fault):
    name = "primary cut from everything"
    summary = "the primary's link down (cable pulled)"
    expect = Expect.FAILOVER

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.cut(c.deployment.host_of(t.primary))

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.heal(c.deployment.host_of(t.primary))


class PrimaryCutFromStore(Fault):
    name = "primary cut from the store"
    summary = "the primary's host drops etcd's ports (its own member isolated too)"
    expect = Expect.FAILOVER

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.cut_ports(c.deployment.host_of(t.primary), STORE_PORTS)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.clear_rules(c.deployment.host_of(t.primary))


class PrimaryCutFromMembers(Fault):
    name = "primary cut from the other members"
    summary = "the primary hears neither standby (etcd still reaches everyone)"
    expect = Expect.STAY

    def inject(self, c: FaultCluster, t: Targets) -> None:
        others = [c.deployment.host_of(n) for n in t.others(t.primary)]
        c.hosts.network.cut_from(c.deployment.host_of(t.primary), others, STORE_PORTS)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.clear_rules(c.deployment.host_of(t.primary))


class StandbyCut(Fault):
    name = "a standby cut from everything"
    summary = "a standby's link down"
    expect = Expect.STAY

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.cut(c.deployment.host_of(t.standby))

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.heal(c.deployment.host_of(t.standby))


class PrimaryDeaf(Fault):
    name = "one-way cut: nothing reaches the primary"
    summary = "packets to the primary's host dropped; what it sends still leaves"
    expect = Expect.FAILOVER

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.deafen(c.deployment.host_of(t.primary))

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.clear_rules(c.deployment.host_of(t.primary))


@dataclass
class Flapping(Fault):
    """The primary's link goes down and up every 1–3 s while the fault lasts."""

    hold: float = 20.0
    name = "primary's link flapping"
    summary = "down/up every 1–3 s"
    expect = Expect.EITHER
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def inject(self, c: FaultCluster, t: Targets) -> None:
        host = c.deployment.host_of(t.primary)
        rng = random.Random()

        def flap() -> None:
            up = True
            while not self._stop.wait(rng.uniform(1, 3)):
                (c.hosts.network.cut if up else c.hosts.network.heal)(host)
                up = not up
            c.hosts.network.heal(host)

        self._thread = threading.Thread(target=flap, daemon=True)
        self._thread.start()

    def heal(self, c: FaultCluster, t: Targets) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


@dataclass
class LinkDelayed(Fault):
    """Everything the primary's host sends leaves ``delay_ms`` later (one way, its link's
    egress; with ``store_only``, only its traffic with the store's ports): ``tc netem
    delay`` where the kernel has netem, else an NFQUEUE queue that tests/hosts/delay.py
    releases that much later (``Network.delay``, which also makes the store-only one: netem
    would need classifiers for it). Which one made it is in the fault's name (and so in
    docs/reliability.md's table)."""

    delay_ms: int = 200
    store_only: bool = False
    hold: float = 20.0
    expect = Expect.STAY
    netem: bool = field(default_factory=network.netem_available)

    @property
    def how(self) -> str:
        return "netem" if self.netem and not self.store_only else "nfqueue"

    @property
    def name(self) -> str:  # type: ignore[override]
        where = "link to the store" if self.store_only else "link"
        return f"primary's {where} delayed {self.delay_ms} ms ({self.how})"

    @property
    def summary(self) -> str:  # type: ignore[override]
        if self.how == "netem":
            return f"tc netem delay {self.delay_ms}ms on its link's egress"
        return (
            f"what enters the bridge from its cable{' to or from etcd' if self.store_only else ''}"
            f" goes to an NFQUEUE queue, each packet accepted {self.delay_ms} ms after it came "
            f"(tests/hosts/delay.py)"
        )

    def inject(self, c: FaultCluster, t: Targets) -> None:
        host = c.deployment.host_of(t.primary)
        if self.how == "netem":
            c.hosts.network.qdisc(host, "netem", "delay", f"{self.delay_ms}ms")
        else:
            ports = STORE_PORTS if self.store_only else ()
            c.hosts.network.delay(host, self.delay_ms, ports)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        host = c.deployment.host_of(t.primary)
        if self.how == "netem":
            c.hosts.network.qdisc(host)
            return
        report = c.hosts.network.undelay(host)
        if not report.ok:  # it died (the delay had ended), dropped or held nothing
            raise RuntimeError(f"the delay on {host.name} was not what it should be: {report}")


@dataclass
class LinkSlow(Fault):
    """A token bucket (``tc tbf``) on the primary's link, both ways: what the kernel here
    offers in netem's place. Past its rate, packets wait in a queue up to 400 ms: a slow
    link whose delay grows with the traffic (replication, clients), not a fixed one."""

    rate: str = "1mbit"
    hold: float = 20.0
    expect = Expect.STAY
    summary = "tc tbf rate 1mbit latency 400ms, both ways"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"primary's link slowed to {self.rate}"

    def inject(self, c: FaultCluster, t: Targets) -> None:
        host = c.deployment.host_of(t.primary)
        c.hosts.network.limit_rate(host, self.rate)
        c.hosts.network.limit_rate(host, self.rate, inbound=True)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        host = c.deployment.host_of(t.primary)
        c.hosts.network.limit_rate(host, None)
        c.hosts.network.limit_rate(host, None, inbound=True)


@dataclass
class LinkLossy(Fault):
    """A share of the primary's packets lost at random, both ways (iptables' statistic
    match), on every port or only the store's: TCP retransmits them after 200 ms or more,
    so a lossy link is also a slow one, at random."""

    percent: float = 10.0
    store_only: bool = False
    hold: float = 20.0
    expect = Expect.STAY
    summary = "iptables -m statistic --mode random -j DROP"

    @property
    def name(self) -> str:  # type: ignore[override]
        where = "link to the store" if self.store_only else "link"
        return f"primary's {where} losing {self.percent:g}% of packets"

    def inject(self, c: FaultCluster, t: Targets) -> None:
        ports = STORE_PORTS if self.store_only else ()
        c.hosts.network.lose(c.deployment.host_of(t.primary), self.percent, ports)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.clear_rules(c.deployment.host_of(t.primary))


# ---- processes ---------------------------------------------------------------------------


def postmaster_pid(c: FaultCluster, node: str) -> int:
    pm = process.read_postmaster_pid(c.deployment.node(node).data_dir)
    assert pm is not None and process.is_alive(pm.pid), f"{node} has no running postmaster"
    return pm.pid


def keeper_pid(c: FaultCluster, node: str) -> int:
    parent = process.parent_pid(postmaster_pid(c, node))
    assert parent is not None
    name = Path(f"/proc/{parent}/comm").read_text().strip()
    assert name == KEEPER_PROCESS_NAME.decode()[:15], f"{node}'s postmaster's parent is {name}"
    return parent


class KillPostmaster(Fault):
    name = "kill -9 of the primary's postmaster"
    summary = "its agent restarts it in place"
    expect = Expect.STAY
    hold = 5.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        os.kill(postmaster_pid(c, t.primary), signal.SIGKILL)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        pass


class KillKeeper(Fault):
    name = "kill -9 of the primary's keeper"
    summary = "the postmaster dies with it; the agent restarts it in place"
    expect = Expect.STAY
    hold = 5.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        os.kill(keeper_pid(c, t.primary), signal.SIGKILL)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        pass


class KillAgent(Fault):
    """As systemd's ``Restart=always, RestartSec=1`` would: the agent back a second later."""

    name = "kill -9 of the primary's agent"
    summary = "restarted a second later (Restart=always); the keeper fences if it is late"
    expect = Expect.EITHER
    hold = 1.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.deployment.agents[t.primary].kill()

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.boot(t.primary)  # the agent (its host's etcd member runs)


class HostLoss(Fault):
    name = "host loss of the primary"
    summary = "agent, keeper, postmaster, etcd member: every process of the host, kill -9"
    expect = Expect.FAILOVER
    hold = 10.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.deployment.shut_down(t.primary, power_off=True)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.boot(t.primary)


class KillEtcdMember(Fault):
    name = "kill -9 of the primary's etcd member"
    summary = "two members keep the store's quorum"
    expect = Expect.STAY
    hold = 10.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        host = c.deployment.host_of(t.primary)
        proc = c.hosts.etcd.members[host.name]
        proc.kill()
        c.hosts.etcd.forget(host)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.boot(c.deployment.host_of(t.primary).name)


class PauseHost(Fault):
    name = "the primary's host paused"
    summary = "every process frozen and the link silent for 3 ttl (a VM pause)"
    expect = Expect.FAILOVER
    hold = 9.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.pause(c.deployment.host_of(t.primary))

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.hosts.network.resume(c.deployment.host_of(t.primary))


class StopAgent(Fault):
    name = "SIGSTOP of the primary's agent"
    summary = "the agent frozen for 3 ttl; its keeper fences PostgreSQL at the lease's end"
    expect = Expect.FAILOVER
    hold = 9.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.deployment.agents[t.primary].proc.send_signal(signal.SIGSTOP)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        agent = c.deployment.agents.get(t.primary)  # a watchdog may have reset the host
        if agent is not None and agent.alive():
            agent.proc.send_signal(signal.SIGCONT)


# ---- time ----------------------------------------------------------------------------------


@dataclass
class ClockJump(Fault):
    """The primary's agent sees its clock jump (``monotonic`` and ``wall`` seconds) for
    the fault's length, then come back; with ``cut_store`` its host also loses the store
    meanwhile. The agent runs with tests/faults/skewed_agent.py's clock from ``prepare``
    (a clean agent restart: PostgreSQL runs on) to ``heal`` (restarted as its unit)."""

    monotonic: float = 0.0
    wall: float = 0.0
    cut_store: bool = False
    hold: float = 10.0
    summary = "a fake clock in the primary's agent (every host shares the machine's clock)"

    @property
    def name(self) -> str:  # type: ignore[override]
        parts = []
        if self.wall:
            parts.append(f"wall {self.wall:+g} s")
        if self.monotonic:
            parts.append(f"monotonic {self.monotonic:+g} s")
        text = "the primary's agent's clock jumps: " + ", ".join(parts)
        return text + (", and its host loses the store" if self.cut_store else "")

    @property
    def expect(self) -> Expect:  # type: ignore[override]
        if self.cut_store:
            return Expect.FAILOVER
        # A wall clock step changes nothing the lease depends on; a monotonic jump forward
        # is time gone by for the agent: its fence stops PostgreSQL (restarted in place).
        return Expect.STAY if not self.monotonic else Expect.EITHER

    def prepare(self, c: FaultCluster, t: Targets) -> None:
        c.start_skewed_agent(t.primary)
        c.wait_settled(120, strict=True, since=time.time() + 1)

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.set_clock(t.primary, self.monotonic, self.wall)
        if self.cut_store:
            c.hosts.network.cut_ports(c.deployment.host_of(t.primary), STORE_PORTS)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        if self.cut_store:
            c.hosts.network.clear_rules(c.deployment.host_of(t.primary))
        c.set_clock(t.primary)
        c.restart_agent(t.primary)


# ---- resources ---------------------------------------------------------------------------


def switch_wal(c: FaultCluster, node: str, times: int, pause: float = 0.5) -> None:
    """New WAL segments to archive: a row, then a switch, ``times`` times."""
    for _ in range(times):
        with contextlib.suppress(AssertionError):
            c.deployment.sql(node, "SELECT pg_switch_wal() FROM (SELECT txid_current()) AS t")
        time.sleep(pause)


def archive_temp_files(c: FaultCluster) -> list[str]:
    root = c.directory / "archive"
    return [
        str(p.relative_to(root))
        for p in root.rglob(".*")
        if p.is_file() and ".tmp" in p.name and p.name != storage.BALLAST
    ]


class ArchiveFull(Fault):
    """The archive's file system full while WAL keeps coming: writes go on, archiving
    waits, no partial file is left behind, and once space is back the archive catches up
    and stays continuous."""

    name = "the archive's file system full"
    summary = "a 96 MB tmpfs filled up while segments are switched"
    expect = Expect.STAY
    hold = 15.0

    def __init__(self) -> None:
        self.status_during: int | None = None
        self.said: object = None
        self.temp_during: list[str] = []

    def inject(self, c: FaultCluster, t: Targets) -> None:
        storage.fill(c.directory / "archive", leave_mb=0)

    def during(self, c: FaultCluster, t: Targets) -> None:
        switch_wal(c, t.primary, 8)
        # The pusher retries a failed segment after 1, 2, 4… s: ask once it has failed.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            code, said = c.cli_json("archive", "status")
            self.status_during, self.said = code, said
            if code == 3:
                break
            time.sleep(1)
        self.temp_during = archive_temp_files(c)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        storage.empty(c.directory / "archive")

    def verify(self, c: FaultCluster, t: Targets) -> list[Violation]:
        found = []
        # Space is back: the pusher retries a failed segment within 30 s (its backoff),
        # and PostgreSQL's archiver, which gave up after three failures, tries again when
        # a new segment is ready (or after 60 s): one more, as traffic would make. The
        # archive must catch up before it is verified.
        switch_wal(c, t.primary, 1, pause=0)
        deadline = time.monotonic() + 60
        code, said = c.cli_json("archive", "status")
        while code != 0 and time.monotonic() < deadline:
            time.sleep(2)
            code, said = c.cli_json("archive", "status")
        if code != 0:
            found.append(
                Violation(
                    Rule.ARCHIVE,
                    "archiving did not catch up within 60 s of the space coming back",
                    (str(said)[:800],),
                )
            )
        leftover = archive_temp_files(c)
        if leftover:
            found.append(
                Violation(Rule.ARCHIVE, "partial temporary files left", tuple(leftover[:10]))
            )
        if self.status_during != 3:
            found.append(
                Violation(
                    Rule.ARCHIVE,
                    f"archive status exited {self.status_during} with the archive full, not 3",
                    (str(self.said)[:800],),
                )
            )
        if self.temp_during:
            found.append(
                Violation(
                    Rule.ARCHIVE,
                    f"{len(self.temp_during)} partial temporary files in the full archive",
                    tuple(self.temp_during[:10]),
                )
            )
        return found


class StandbyDiskFull(Fault):
    name = "a standby's disk full"
    summary = "the disk holding its pg_wal filled to 8 MB free under a bulk write"
    expect = Expect.STAY
    hold = 15.0

    def inject(self, c: FaultCluster, t: Targets) -> None:
        storage.fill(c.disks[t.standby].mountpoint, leave_mb=8)

    def during(self, c: FaultCluster, t: Targets) -> None:
        with contextlib.suppress(AssertionError):  # ~40 MB of WAL
            c.deployment.sql(
                t.primary,
                "CREATE TABLE IF NOT EXISTS faults_bulk (n int, pad text); "
                "INSERT INTO faults_bulk "
                "SELECT g, repeat('x', 100) FROM generate_series(1, 250000) AS g",
            )

    def heal(self, c: FaultCluster, t: Targets) -> None:
        storage.empty(c.disks[t.standby].mountpoint)
        with contextlib.suppress(AssertionError):
            c.deployment.sql(t.primary, "DROP TABLE IF EXISTS faults_bulk")


@dataclass
class SlowDisk(Fault):
    """The primary's disk limited to ``iops`` writes a second (fdatasync ~1/iops s)."""

    iops: int = 20
    hold: float = 20.0
    name = "the primary's disk slow"
    summary = "blkio throttle on its loop device: fdatasync ~50 ms"
    expect = Expect.STAY

    def inject(self, c: FaultCluster, t: Targets) -> None:
        c.disks[t.primary].throttle_writes(c.deployment.host_of(t.primary), self.iops)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        c.disks[t.primary].throttle_writes(c.deployment.host_of(t.primary), 0)


@dataclass
class CpuHogs(Fault):
    """Busy loops, ``per_core`` of them per core, on the machine (every host shares it)."""

    per_core: int = 2
    hold: float = 20.0
    name = "the cores oversubscribed"
    summary = "2 busy processes per core"
    expect = Expect.STAY
    _hogs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def inject(self, c: FaultCluster, t: Targets) -> None:
        for _ in range(self.per_core * (os.cpu_count() or 1)):
            self._hogs.append(
                subprocess.Popen(
                    [sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL
                )
            )

    def heal(self, c: FaultCluster, t: Targets) -> None:
        for hog in self._hogs:
            hog.kill()
        for hog in self._hogs:
            hog.wait(10)
        self._hogs.clear()


# ---- several at once ---------------------------------------------------------------------


class Combined(Fault):
    """Several faults at once: prepared and injected in order, healed in reverse."""

    def __init__(self, *parts: Fault, expect: Expect | None = None) -> None:
        self.parts = parts
        self.name = " + ".join(p.name for p in parts)
        self.summary = "; ".join(p.summary for p in parts)
        self.hold = max(p.hold for p in parts)
        kinds = {p.expect for p in parts}
        self.expect = expect or (
            Expect.FAILOVER
            if Expect.FAILOVER in kinds
            else Expect.STAY
            if kinds == {Expect.STAY}
            else Expect.EITHER
        )

    def prepare(self, c: FaultCluster, t: Targets) -> None:
        for part in self.parts:
            part.prepare(c, t)

    def inject(self, c: FaultCluster, t: Targets) -> None:
        for part in self.parts:
            part.inject(c, t)

    def during(self, c: FaultCluster, t: Targets) -> None:
        for part in self.parts:
            part.during(c, t)

    def heal(self, c: FaultCluster, t: Targets) -> None:
        for part in reversed(self.parts):
            with contextlib.suppress(Exception):
                part.heal(c, t)

    def verify(self, c: FaultCluster, t: Targets) -> list[Violation]:
        return [v for part in self.parts for v in part.verify(c, t)]


FAULTS: dict[str, Callable[[], Fault]] = {
    "primary-cut": PrimaryCut,
    "primary-cut-from-store": PrimaryCutFromStore,
    "primary-cut-from-members": PrimaryCutFromMembers,
    "standby-cut": StandbyCut,
    "primary-deaf": PrimaryDeaf,
    "flapping": Flapping,
    "primary-delay": LinkDelayed,
    "store-delay": lambda: LinkDelayed(store_only=True),
    "primary-slow-link": LinkSlow,
    "primary-loss": LinkLossy,
    "store-loss": lambda: LinkLossy(store_only=True),
    "kill-postmaster": KillPostmaster,
    "kill-keeper": KillKeeper,
    "kill-agent": KillAgent,
    "host-loss": HostLoss,
    "kill-etcd-member": KillEtcdMember,
    "pause-host": PauseHost,
    "stop-agent": StopAgent,
    "clock-wall-forward": lambda: ClockJump(wall=3600),
    "clock-wall-back": lambda: ClockJump(wall=-3600),
    "clock-monotonic-forward": lambda: ClockJump(monotonic=6),
    "clock-monotonic-back+store-cut": lambda: ClockJump(monotonic=-30, cut_store=True),
    "archive-full": ArchiveFull,
    "standby-disk-full": StandbyDiskFull,
    "slow-disk": SlowDisk,
    "cpu-hogs": CpuHogs,
    "flapping+kill-agent": lambda: Combined(Flapping(), KillAgent()),
    "hogs+slow-disk+store-loss": lambda: Combined(
        CpuHogs(), SlowDisk(), LinkLossy(5, store_only=True)
    ),
}
