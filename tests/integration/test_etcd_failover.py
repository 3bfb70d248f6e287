"""A store call moves to another etcd member within ``retry_timeout`` when the member it
prefers stops answering, on a connection that was already open: three real etcd members
on loopback (TLS, client certificates, as a lab's), the preferred one frozen with SIGSTOP
(a member that is alive to the kernel — it completes TCP handshakes — but answers
nothing, as one behind a lossy or stalled link)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pgherd.dcs.base import StoreUnavailable
from pgherd.dcs.etcd import EtcdStore
from pgherd.dcs.etcd_transport import PooledTransport
from pgherd.lab.etcd_server import EtcdServer, EtcdTls
from pgherd.tls import certs
from pgherd.tls.context import client_context
from tests.conftest import free_port_base

pytestmark = pytest.mark.integration

# docs/failover.md's setting for lossy or delayed links: the member in use gets 1 s, the
# others 0.5 s each — room for etcd on a busy test machine, where the default's 0.25 s for
# a linearizable read is not always enough.
RETRY_TIMEOUT = 2.0
TTL = 6.0


def _tls(directory: Path) -> EtcdTls:
    ca = certs.new_ca("dcs")
    files = {"ca.crt": ca.cert_pem}
    for name in ("etcd", "client"):
        made = certs.issue(ca, name, ["127.0.0.1"])
        files |= {f"{name}.crt": made.cert_pem, f"{name}.key": made.key_pem}
    directory.mkdir(mode=0o700)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    d = directory
    return EtcdTls(d / "ca.crt", d / "etcd.crt", d / "etcd.key", d / "client.crt", d / "client.key")


def _verify(tls: EtcdTls) -> ssl.SSLContext:
    return client_context(tls.ca, tls.client_cert, tls.client_key)


@pytest.fixture(scope="module")
def cluster(module_dir: Path) -> Iterator[list[EtcdServer]]:
    """Three members of one etcd cluster."""
    tls = _tls(module_dir / "tls")
    base = free_port_base(6)
    names = ["e1", "e2", "e3"]
    peers = {n: f"https://127.0.0.1:{base + 2 * i + 1}" for i, n in enumerate(names)}
    servers = [
        EtcdServer(module_dir / n, base + 2 * i, base + 2 * i + 1, name=n, cluster=peers, tls=tls)
        for i, n in enumerate(names)
    ]
    try:
        for server in servers:
            server.start(wait=False)
        for server in servers:
            server.wait_healthy()
        yield servers
    finally:
        for server in servers:
            if server.proc is not None and server.proc.poll() is None:
                os.kill(server.proc.pid, signal.SIGCONT)  # a test that failed while frozen
            server.stop()


@pytest.fixture
def members(cluster: list[EtcdServer]) -> Iterator[list[EtcdServer]]:
    """The members in the order a store should try them: the two followers first (so
    that freezing the preferred one never waits for an election), then the Raft leader.
    Every member answers again after the test."""
    for server in cluster:
        server.wait_healthy()
    yield sorted(cluster, key=_is_leader)
    for server in cluster:
        server.wait_healthy()  # a test that froze two waits for the election it caused


def _is_leader(server: EtcdServer) -> bool:
    assert server.tls is not None
    verify = _verify(server.tls)
    answer = httpx.post(f"{server.url}/v3/maintenance/status", json={}, verify=verify)
    status = json.loads(answer.content)
    return bool(status["leader"] == status["header"]["member_id"])


def _wait_for_warm(transport: PooledTransport, endpoints: list[str]) -> None:
    deadline = time.monotonic() + 10
    while any(transport.connects.get(e, 0) < 1 for e in endpoints):
        assert time.monotonic() < deadline, f"not warmed: {transport.connects}"
        time.sleep(0.02)


def test_a_frozen_preferred_member_costs_a_call_half_its_budget_and_no_new_connection(
    members: list[EtcdServer],
) -> None:
    assert members[0].tls is not None
    endpoints = [m.url for m in members]
    store = EtcdStore(
        endpoints, f"frozen{time.time_ns()}", timeout=RETRY_TIMEOUT, verify=_verify(members[0].tls)
    )
    transport = store.transport
    assert isinstance(transport, PooledTransport)
    frozen = members[0].proc
    assert frozen is not None
    try:
        _wait_for_warm(transport, endpoints)
        assert store.acquire_leader("node1", TTL)  # answered by members[0]: preferred
        before = dict(transport.connects)
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            snapshot = store.snapshot()
            took = time.monotonic() - started
            assert snapshot.leader is not None and snapshot.leader.name == "node1"
            # The frozen member had its half (1 s); the next one answered at once on the
            # connection opened at start: no handshake at that moment.
            assert RETRY_TIMEOUT / 2 <= took < RETRY_TIMEOUT
            answered = endpoints[1:]
            assert {e: transport.connects[e] for e in answered} == {e: before[e] for e in answered}
            # A call of two requests (read the key, keep its lease alive) now goes to
            # the member that answered, within the budget.
            started = time.monotonic()
            assert store.renew_leader("node1", TTL)
            assert time.monotonic() - started < RETRY_TIMEOUT / 2
            assert {e: transport.connects[e] for e in answered} == {e: before[e] for e in answered}
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        assert store.release_leader("node1")
    finally:
        store.close()


def test_a_call_no_member_can_answer_gives_up_at_its_budget(
    members: list[EtcdServer],
) -> None:
    """Two members of three frozen: the third has no quorum and cannot answer a
    linearizable read either. Each member waits its share (1, 0.5, 0.5 s) and the call
    gives up when its budget is spent, not later: the bound the timing rule stands on."""
    assert members[0].tls is not None
    endpoints = [m.url for m in members]
    store = EtcdStore(
        endpoints,
        f"noquorum{time.time_ns()}",
        timeout=RETRY_TIMEOUT,
        verify=_verify(members[0].tls),
    )
    transport = store.transport
    assert isinstance(transport, PooledTransport)
    frozen = [m.proc for m in members[:2]]
    try:
        _wait_for_warm(transport, endpoints)
        store.members()  # preferred: members[0]
        for proc in frozen:
            assert proc is not None
            os.kill(proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as failed:
                store.members()
            took = time.monotonic() - started
            assert RETRY_TIMEOUT - 0.05 <= took <= RETRY_TIMEOUT + 0.2  # (scheduling)
            assert "(after 1.00 s)" in failed.value.message
            assert failed.value.message.count("(after 0.50 s)") == 2
        finally:
            for proc in frozen:
                assert proc is not None
                os.kill(proc.pid, signal.SIGCONT)
    finally:
        store.close()
