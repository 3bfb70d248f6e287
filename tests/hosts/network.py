"""Test hosts as network namespaces on one bridge.

Each host is a namespace with its own address (``SUBNET.i``) on one end of a veth pair
whose other end is a port of a bridge in a ``hub`` namespace; nothing is added to the
machine's own namespace, and the addresses exist only inside namespaces this run created
(names carry the run's prefix). Faults: a host's link cut (as if its cable were pulled),
a queueing discipline on its link (``tc``: a slow link), a port dropped (``iptables``); a
host shut down or powered off is the signalling of every process in its namespace
(``ip netns pids``).
Delays and losses need the kernel's ``sch_netem``, which this machine lacks; a slow link
uses ``tbf``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

SUBNET = "10.211.0"
HUB_ADDRESS = f"{SUBNET}.254"


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


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str
    link: str  # the veth end in the bridge: down = the host's cable pulled
    inner: str  # the veth end inside the host

    def argv(self, *argv: str) -> list[str]:
        """``argv`` run on this host (in its namespace)."""
        return ["ip", "netns", "exec", self.netns, *argv]

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
        host = Host(name, netns, address, outer, inner)
        self.hosts[name] = host
        return host

    # ---- faults ------------------------------------------------------------------------

    def cut(self, host: Host) -> None:
        """The host loses the network (its end in the bridge goes down)."""
        ip("-n", self.hub, "link", "set", host.link, "down")

    def heal(self, host: Host) -> None:
        ip("-n", self.hub, "link", "set", host.link, "up")

    def qdisc(self, host: Host, *spec: str, inbound: bool = False) -> None:
        """A queueing discipline on the host's link: on what it sends, or with ``inbound``
        on what it receives (the bridge's end); no spec removes it. E.g. ``"tbf", "rate",
        "8mbit", "burst", "32kbit", "latency", "400ms"`` (this machine's kernel has tbf but
        not netem: ``"netem", "delay", "200ms"`` fails here with "qdisc kind is unknown")."""
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
        for host in self.hosts.values():
            self.shut_down(host, power_off=True, timeout=10)
        for netns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap() -> None:
    """Collect our zombie children (as a subreaper, the test process inherits orphans)."""
    from pgherd.pg import process

    process.reap_zombie_children()
