"""Test hosts as network namespaces on one bridge.

Each host is a namespace with its own address (``SUBNET.i``) on one end of a veth pair
whose other end is a port of a bridge in a ``hub`` namespace; nothing is added to the
machine's own namespace, and the addresses exist only inside namespaces this run created
(names carry the run's prefix). Faults: a host's link cut (as if its cable were pulled),
a queueing discipline on its link (``tc``: a slow link), packet loss (``iptables``'
statistic match), a port dropped (``iptables``), the host cut from some ports or some hosts
only, or deaf (one way: nothing reaches it, what it sends leaves); a host shut down or
powered off is the signalling of every process in its namespace (``ip netns pids``).

A fixed delay on what a host sends (one way, its link's egress, as ``tc netem delay`` on
its link's inner end): ``netem`` where the kernel has ``sch_netem`` (``netem_available``);
where it has not (this machine), ``delay``: in the hub's namespace, an iptables rule hands
what enters the bridge from the host's cable (br_netfilter, ``physdev``) to an NFQUEUE
queue, and tests/hosts/delay.py, run in the hub, lets each packet go ``ms`` after it came,
in order; with ``--queue-bypass`` packets flow undelayed if that program dies. In the
hub, not on the host's own OUTPUT chain: there a held packet still counts against its TCP
socket's small-queue budget, which netem lifts and a verdict cannot, and a 200 ms hold
throttled a stream to a few kB/s. The host's own iptables rules (``clear_rules``) are not
touched by it. A slow link (a rate, not a delay) uses ``tbf``.

Where the machine has cgroup v1's freezer and blkio controllers, every process run on a
host (``Host.argv``) also joins that host's control groups: a host can then be paused
whole, as a hypervisor pauses a VM (``pause``: every process frozen at once and its link
silent), and its disk writes throttled (tests/hosts/storage.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.211.0"
HUB_ADDRESS = f"{SUBNET}.254"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("freezer", "blkio")
# Joins the control groups named in the arguments, then runs the rest: sh -c JOIN sh
# DIR1 DIR2 -- argv… (the shell's PID is the program's: exec keeps it).
JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs"; shift; done; shift; exec "$@"'
DELAY_PROGRAM = Path(__file__).with_name("delay.py")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"hprobe{os.getpid() % 100000}"
    try:
        ip("netns", "add", probe)
        ip("netns", "del", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"ip netns is not usable here: {exc}"
    return None


@functools.cache
def netem_available() -> bool:
    """Whether this kernel has ``tc netem`` (some have no sch_netem, nor modules to load:
    then ``Network.delay`` makes the delay): tried once, on the loopback of a namespace
    of its own."""
    probe = f"hnetem{os.getpid() % 100000}"
    try:
        ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return False
    try:
        done = subprocess.run(
            ["tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            capture_output=True,
            check=False,
            timeout=20,
        )
        return done.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)


@dataclass(frozen=True)
class Delaying:
    """A delay in place: tests/hosts/delay.py running in the hub, and its iptables rule
    (after ``-A``/``-D``)."""

    proc: subprocess.Popen[str]
    rule: list[str]


@dataclass(frozen=True)
class DelayReport:
    """What tests/hosts/delay.py did, from its last line: ``ok`` when it ran until asked
    to stop, lost nothing and had every verdict taken."""

    said: str
    ran_to_the_end: bool = False
    packets: int = 0
    refused: int = 0
    overruns: int = 0
    latest_late_ms: float = 0.0

    @classmethod
    def parse(cls, said: str, ran_to_the_end: bool = False) -> DelayReport:
        found = re.fullmatch(
            r"packets (\d+) refused (\d+) overruns (\d+) latest verdict ([0-9.]+) ms late",
            said.strip(),
        )
        if found is None:
            return cls(said)
        packets, refused, overruns = (int(found.group(i)) for i in (1, 2, 3))
        return cls(said, ran_to_the_end, packets, refused, overruns, float(found.group(4)))

    @property
    def ok(self) -> bool:
        return self.ran_to_the_end and self.packets > 0 and not self.refused and not self.overruns


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str
    link: str  # the veth end in the bridge: down = the host's cable pulled
    inner: str  # the veth end inside the host
    cgroups: tuple[Path, ...] = ()  # the host's control groups (freezer, blkio), if any

    def argv(self, *argv: str) -> list[str]:
        """``argv`` run on this host (in its namespace and its control groups)."""
        inside = ["ip", "netns", "exec", self.netns, *argv]
        if not self.cgroups:
            return inside
        return ["sh", "-c", JOIN, "sh", *map(str, self.cgroups), "--", *inside]

    def cgroup(self, controller: str) -> Path | None:
        return next((c for c in self.cgroups if c.parent.parent.name == controller), None)

    def pids(self) -> list[int]:
        done = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        )
        return [int(p) for p in done.stdout.split() if p.isdigit()]


@dataclass
class Network:
    prefix: str = field(default_factory=lambda: f"h{os.getpid() % 100000}")
    hosts: dict[str, Host] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)
    _delays: dict[str, Delaying] = field(default_factory=dict)

    @property
    def hub(self) -> str:
        return f"{self.prefix}hub"

    def create(self) -> None:
        ip("netns", "add", self.hub)
        self._namespaces.append(self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        ip("-n", self.hub, "link", "set", "br0", "up")

    def add_host(self, name: str, index: int) -> Host:
        """A host ``name`` with the address SUBNET.index, linked to the bridge."""
        netns = f"{self.prefix}{name}"
        ip("netns", "add", netns)
        self._namespaces.append(netns)
        ip("-n", netns, "link", "set", "lo", "up")
        inner, outer = f"{self.prefix}{index}i", f"{self.prefix}{index}o"
        ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        ip("link", "set", inner, "netns", netns)
        ip("link", "set", outer, "netns", self.hub)
        address = f"{SUBNET}.{index}"
        ip("-n", netns, "addr", "add", f"{address}/24", "dev", inner)
        ip("-n", netns, "link", "set", inner, "up")
        ip("-n", self.hub, "link", "set", outer, "master", "br0")
        ip("-n", self.hub, "link", "set", outer, "up")
        host = Host(name, netns, address, outer, inner, self._make_cgroups(name))
        self.hosts[name] = host
        return host

    def _make_cgroups(self, name: str) -> tuple[Path, ...]:
        """The host's freezer and blkio groups under ``pgherd-tests/PREFIX`` (none where
        cgroup v1 does not offer both)."""
        made = []
        for controller in CONTROLLERS:
            base = CGROUP_ROOT / controller
            if not (base / "cgroup.procs").exists():
                return ()
            group = base / "pgherd-tests" / f"{self.prefix}{name}"
            try:
                group.mkdir(parents=True, exist_ok=True)
            except OSError:
                return ()
            made.append(group)
        return tuple(made)

    # ---- faults ------------------------------------------------------------------------

    def cut(self, host: Host) -> None:
        """The host loses the network (its end in the bridge goes down)."""
        ip("-n", self.hub, "link", "set", host.link, "down")

    def heal(self, host: Host) -> None:
        ip("-n", self.hub, "link", "set", host.link, "up")

    def qdisc(self, host: Host, *spec: str, inbound: bool = False) -> None:
        """A queueing discipline on the host's link: on what it sends, or with ``inbound``
        on what it receives (the bridge's end); no spec removes it. E.g. ``"tbf", "rate",
        "8mbit", "burst", "32kbit", "latency", "400ms"`` (a kernel without sch_netem, as this
        machine's, fails ``"netem", "delay", "200ms"`` with "qdisc kind is unknown": there,
        ``delay``)."""
        argv = (
            ["ip", "netns", "exec", self.hub, "tc", "qdisc"]
            if inbound
            else host.argv("tc", "qdisc")
        )
        device = host.link if inbound else host.inner
        if spec:
            subprocess.run(
                [*argv, "replace", "dev", device, "root", *spec],
                check=True,
                capture_output=True,
                timeout=20,
            )
        else:
            subprocess.run(
                [*argv, "del", "dev", device, "root"], check=False, capture_output=True, timeout=20
            )

    def limit_rate(self, host: Host, rate: str | None, inbound: bool = False) -> None:
        """A slow link (token bucket, e.g. ``"8mbit"``); None: full speed again."""
        if rate is None:
            self.qdisc(host, inbound=inbound)
        else:
            self.qdisc(
                host, "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms", inbound=inbound
            )

    def delay(self, host: Host, ms: float, ports: Iterable[int] = ()) -> None:
        """Every packet the host sends leaves ``ms`` later (one way: its link's egress;
        with ``ports``, only TCP to or from them), without netem: the hub's iptables hand
        what comes in from the host's cable to an NFQUEUE queue, and tests/hosts/delay.py,
        run in the hub, lets each go ``ms`` after it came. In the hub, not on the host's
        OUTPUT: a packet queued on its own host still counts against its TCP socket's
        small-queue budget (netem orphans it; an NFQUEUE verdict cannot), and a 200 ms
        hold there throttled a stream to a few kB/s. IPv4 only (the hosts speak nothing
        else; ARP passes at once, where netem would hold it too). ``undelay`` ends it."""
        if host.name in self._delays:
            raise RuntimeError(f"{host.name} is already delayed")
        queue = str(list(self.hosts).index(host.name) + 1)
        proc = subprocess.Popen(
            [
                *("ip", "netns", "exec", self.hub, sys.executable, str(DELAY_PROGRAM)),
                *("--delay-ms", f"{ms:g}", "--queue", queue),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            proc.kill()
            said = line + proc.communicate(timeout=10)[0]
            raise RuntimeError(f"the delay on {host.name} did not start: {said.strip()[-600:]}")
        # What enters the bridge from the host's cable (bridged frames pass the hub's
        # iptables: br_netfilter); --queue-bypass: on, undelayed, when nobody listens.
        listed = ",".join(str(p) for p in ports)
        rule = [
            *("PREROUTING", "-m", "physdev", "--physdev-in", host.link),
            *(("-p", "tcp", "-m", "multiport", "--ports", listed) if listed else ()),
            *("-j", "NFQUEUE", "--queue-num", queue, "--queue-bypass"),
        ]
        self._delays[host.name] = Delaying(proc, rule)
        self._in_hub("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        self._in_hub("iptables", "-t", "mangle", "-A", *rule)

    def _in_hub(self, *argv: str, check: bool = True) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.hub, *argv],
            check=check,
            capture_output=True,
            timeout=20,
        )

    def undelay(self, host: Host) -> DelayReport:
        """The delay ends: the rule goes first, then the program lets what it holds go (at
        its time: at most ``ms`` more) and exits, saying what it did."""
        delaying = self._delays.pop(host.name, None)
        if delaying is None:
            return DelayReport.parse("not delayed")
        self._in_hub("iptables", "-t", "mangle", "-D", *delaying.rule, check=False)
        proc = delaying.proc
        ran = proc.poll() is None
        proc.terminate()
        try:
            said, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            said, _ = proc.communicate(timeout=10)
        lines = said.strip().splitlines()
        return DelayReport.parse(lines[-1] if lines else "", ran)

    def lose(self, host: Host, percent: float, ports: Iterable[int] = ()) -> None:
        """Drop ``percent`` % of the packets the host sends and receives, at random
        (iptables' statistic match; only those to or from ``ports`` when given).
        ``clear_rules`` ends it."""
        chosen = ",".join(str(p) for p in ports)
        random_drop = [
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            f"{percent / 100:.4f}",
            "-j",
            "DROP",
        ]
        for chain in ("INPUT", "OUTPUT"):
            if not chosen:
                self.iptables(
                    host, "-A", chain, "!", "-o" if chain == "OUTPUT" else "-i", "lo", *random_drop
                )
                continue
            for flag in ("--dports", "--sports"):
                self.iptables(
                    host, "-A", chain, "-p", "tcp", "-m", "multiport", flag, chosen, *random_drop
                )

    def iptables(self, host: Host, *rule: str) -> None:
        subprocess.run(host.argv("iptables", *rule), check=True, capture_output=True, timeout=20)

    def cut_ports(self, host: Host, ports: Iterable[int]) -> None:
        """Nothing reaches ``ports`` on any host from this one, nor these ports here from
        anywhere: e.g. the host cut from the store (etcd's client and peer ports), its own
        member included."""
        listed = ",".join(str(p) for p in ports)
        for chain, flag in (("OUTPUT", "--dports"), ("INPUT", "--dports")):
            self.iptables(
                host, "-A", chain, "-p", "tcp", "-m", "multiport", flag, listed, "-j", "DROP"
            )
        self.iptables(
            host, "-A", "INPUT", "-p", "tcp", "-m", "multiport", "--sports", listed, "-j", "DROP"
        )

    def cut_from(self, host: Host, others: Iterable[Host], keep_ports: Iterable[int] = ()) -> None:
        """The host and ``others`` no longer hear each other, except on ``keep_ports``
        (e.g. the store's, so that only the members are cut apart)."""
        kept = ",".join(str(p) for p in keep_ports)
        for other in others:
            for chain, side in (("INPUT", "-s"), ("OUTPUT", "-d")):
                if kept:
                    for flag in ("--dports", "--sports"):
                        self.iptables(
                            host,
                            "-A",
                            chain,
                            side,
                            other.address,
                            "-p",
                            "tcp",
                            "-m",
                            "multiport",
                            flag,
                            kept,
                            "-j",
                            "ACCEPT",
                        )
                self.iptables(host, "-A", chain, side, other.address, "-j", "DROP")

    def deafen(self, host: Host) -> None:
        """One way: nothing reaches the host; what it sends still leaves."""
        self.iptables(host, "-A", "INPUT", "-i", host.inner, "-j", "DROP")

    def clear_rules(self, host: Host) -> None:
        """Every iptables rule of the host's namespace goes (only the faults put any)."""
        self.iptables(host, "-F")

    def pause(self, host: Host) -> None:
        """The host stops, as a VM its hypervisor pauses: every process on it frozen at
        once, its network silent (a paused VM's kernel answers nothing either)."""
        self.cut(host)
        self._freeze(host, "FROZEN")

    def resume(self, host: Host) -> None:
        self._freeze(host, "THAWED")
        self.heal(host)

    def _freeze(self, host: Host, state: str) -> None:
        group = host.cgroup("freezer")
        if group is None:  # no freezer: every process, one signal at a time
            sig = signal.SIGSTOP if state == "FROZEN" else signal.SIGCONT
            for pid in host.pids():
                _signal(pid, sig)
            return
        (group / "freezer.state").write_text(state)
        deadline = time.monotonic() + 20
        while (group / "freezer.state").read_text().strip() != state:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name} did not become {state}")
            time.sleep(0.01)

    def drop_port(self, host: Host, port: int, drop: bool = True) -> None:
        """Drop (or stop dropping) TCP packets to ``port`` arriving at the host."""
        action = "-A" if drop else "-D"
        rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
        subprocess.run(
            host.argv("iptables", action, *rule), check=drop, capture_output=True, timeout=20
        )

    def shut_down(self, *hosts: Host, power_off: bool = False, timeout: float = 90) -> None:
        """Every process on the hosts gets SIGTERM, as at a system shutdown (then SIGKILL
        after ``timeout``); ``power_off``: SIGKILL at once. Several hosts go down together
        (every process signalled before any is waited for), as in a power cut."""
        sig = signal.SIGKILL if power_off else signal.SIGTERM

        def pids() -> list[int]:
            return [pid for host in hosts for pid in host.pids()]

        for pid in pids():
            _signal(pid, sig)
        # A paused host's processes take their signal when thawed (a frozen one cannot
        # die), before they run another instruction of their own.
        for host in hosts:
            with contextlib.suppress(OSError, RuntimeError):
                self._freeze(host, "THAWED")
        deadline = time.monotonic() + timeout
        while pids() and time.monotonic() < deadline:
            _reap()
            time.sleep(0.1)
        for pid in pids():
            _signal(pid, signal.SIGKILL)
        while pids() and time.monotonic() < deadline + 10:
            _reap()
            time.sleep(0.1)

    def remove(self) -> None:
        for delaying in self._delays.values():  # in the hub, which goes below
            delaying.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                delaying.proc.communicate(timeout=10)
        self._delays.clear()
        for host in self.hosts.values():
            with contextlib.suppress(OSError, RuntimeError):
                self._freeze(host, "THAWED")  # a frozen process cannot die
            self.shut_down(host, power_off=True, timeout=10)
        for netns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        for host in self.hosts.values():
            for group in host.cgroups:
                with contextlib.suppress(OSError):
                    group.rmdir()


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap() -> None:
    """Collect our zombie children (as a subreaper, the test process inherits orphans)."""
    from pgherd.pg import process

    process.reap_zombie_children()
