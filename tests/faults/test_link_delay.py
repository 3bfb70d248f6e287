"""The delay the fault catalogue puts on a link where the kernel has no netem
(``Network.delay``: an NFQUEUE queue released by tests/hosts/delay.py) is a real one, and
loses nothing: between two test hosts, a TCP connect to the delayed host takes the delay
longer (its SYN-ACK waits), 4 MB echoed through it both ways arrive intact, and once
``undelay`` ran connects are as fast as before. Two namespaces, no PostgreSQL: seconds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hosts import network
from tests.hosts.network import Host, Network

pytestmark = [pytest.mark.faults]

DELAY_MS = 200
CONNECT_PORT, ECHO_PORT = 7001, 7002
ECHO_BYTES = 4 << 20

# On the delayed host: one port accepts and closes, the other echoes what it reads.
SERVER = textwrap.dedent(
    """
    import socket, sys, threading
    def serve(port, handle):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        while True:
            c, _ = s.accept()
            threading.Thread(target=handle, args=(c,), daemon=True).start()
    def echo(c):
        with c:
            while data := c.recv(65536):
                c.sendall(data)
    threading.Thread(target=serve, args=(int(sys.argv[1]), socket.socket.close),
                     daemon=True).start()
    print("ready", flush=True)
    serve(int(sys.argv[2]), echo)
    """
)

# On the other host: connect times (ms), then the echo's connect (ms), seconds and whether
# all of it came back.
CLIENT = textwrap.dedent(
    """
    import json, os, socket, sys, threading, time
    address, connect_port, echo_port, size = sys.argv[1], *map(int, sys.argv[2:])
    connects = []
    for _ in range(5):
        began = time.monotonic()
        socket.create_connection((address, connect_port), timeout=10).close()
        connects.append((time.monotonic() - began) * 1000)
    sent = os.urandom(size)
    began = time.monotonic()
    s = socket.create_connection((address, echo_port), timeout=30)
    echo_connect = (time.monotonic() - began) * 1000
    def send():
        s.sendall(sent)
        s.shutdown(socket.SHUT_WR)
    threading.Thread(target=send, daemon=True).start()
    got = bytearray()
    while len(got) < size and (data := s.recv(65536)):
        got += data
    echo = time.monotonic() - began
    print(json.dumps({"connect_ms": connects, "echo_connect_ms": echo_connect,
                      "echo_s": echo, "intact": bytes(got) == sent}))
    """
)


def _unavailable() -> str | None:
    why = network.unavailable()
    if why is None and not Path("/proc/net/netfilter/nfnetlink_queue").exists():
        why = "the kernel has no nfnetlink_queue"
    return why


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[Network, Host, Host]]:
    why = _unavailable()
    if why:
        pytest.skip(why)
    net = Network(prefix=f"d{os.getpid() % 100000}")  # not the fault cluster's names
    server: subprocess.Popen[str] | None = None
    try:
        net.create()
        delayed, other = net.add_host("a", 1), net.add_host("b", 2)
        server = subprocess.Popen(
            delayed.argv(sys.executable, "-c", SERVER, str(CONNECT_PORT), str(ECHO_PORT)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield net, delayed, other
    finally:
        if server is not None:
            server.kill()
            server.communicate(timeout=10)
        net.remove()


def measure(other: Host, delayed: Host, echo_bytes: int = ECHO_BYTES) -> dict[str, Any]:
    done = subprocess.run(
        other.argv(
            sys.executable,
            "-c",
            CLIENT,
            delayed.address,
            str(CONNECT_PORT),
            str(ECHO_PORT),
            str(echo_bytes),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-1000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_a_delayed_link_adds_its_delay_loses_nothing_and_undelay_ends_it(
    hosts: tuple[Network, Host, Host],
) -> None:
    net, delayed, other = hosts
    before = measure(other, delayed)
    net.delay(delayed, DELAY_MS)
    try:
        during = measure(other, delayed)
    finally:
        said = net.undelay(delayed)
    after = measure(other, delayed)
    report = {"before": before, "during": during, "after": after, "delay program": said.said}
    print(json.dumps(report, indent=1))  # the figures, with -s or on failure

    base = statistics.median(before["connect_ms"])
    added = [ms - base for ms in during["connect_ms"]]
    assert min(added) >= 0.8 * DELAY_MS, report
    assert statistics.median(added) <= 2 * DELAY_MS, report
    assert before["intact"] and during["intact"] and after["intact"], report
    assert said.ok, said
    assert statistics.median(after["connect_ms"]) < base + 0.2 * DELAY_MS, report


def test_a_delay_on_some_ports_leaves_the_others_alone(
    hosts: tuple[Network, Host, Host],
) -> None:
    """As the store-only fault: TCP to or from the ports listed waits, the rest does not."""
    net, delayed, other = hosts
    net.delay(delayed, DELAY_MS, ports=[CONNECT_PORT])
    try:
        during = measure(other, delayed, echo_bytes=1 << 20)
    finally:
        said = net.undelay(delayed)
    print(json.dumps({"during": during, "delay program": said.said}, indent=1))
    assert min(during["connect_ms"]) >= 0.8 * DELAY_MS, during
    assert during["echo_connect_ms"] < 0.5 * DELAY_MS and during["intact"], during
    assert said.ok, said
