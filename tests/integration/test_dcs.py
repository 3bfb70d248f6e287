"""One contract for every coordination store: memory, sqlite and a real etcd."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.dcs.etcd import EtcdStore
from pgherd.dcs.memory import MemoryStore
from pgherd.dcs.sqlite import SqliteStore
from pgherd.lab.etcd_server import EtcdServer, EtcdTls
from pgherd.tls import certs
from pgherd.tls.context import client_context
from tests.conftest import free_port_base

pytestmark = pytest.mark.integration

TTL = 2.0  # whole seconds: etcd leases have a one-second resolution

NewClient = Callable[..., Store]


@pytest.fixture(scope="module")
def etcd(module_dir: Path) -> Iterator[EtcdServer]:
    """A real etcd over TLS that asks its clients for a certificate, as a lab's does."""
    ca = certs.new_ca("dcs")
    files = {"ca.crt": ca.cert_pem}
    for name in ("etcd", "client"):
        made = certs.issue(ca, name, ["127.0.0.1"])
        files |= {f"{name}.crt": made.cert_pem, f"{name}.key": made.key_pem}
    tls_dir = module_dir / "tls"
    tls_dir.mkdir(mode=0o700)
    for name, data in files.items():
        (tls_dir / name).write_bytes(data)
    d = tls_dir
    tls = EtcdTls(d / "ca.crt", d / "etcd.crt", d / "etcd.key", d / "client.crt", d / "client.key")
    base = free_port_base(1, (0, 1))
    server = EtcdServer(module_dir / "etcd", base, base + 1, tls=tls)
    server.start()
    yield server
    server.stop()


def _verify(server: EtcdServer) -> ssl.SSLContext:
    assert server.tls is not None
    tls = server.tls
    return client_context(tls.ca, tls.client_cert, tls.client_key)


@pytest.fixture(params=["memory", "sqlite", "etcd", "etcd one-shot"])
def new_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewClient]:
    """Makes clients of one fresh store; two clients stand for two agents, of the cluster
    ``cluster`` (the name in pgherd.yaml)."""
    kind: str = request.param
    prefix = f"t{time.time_ns()}"
    memory = MemoryStore()
    made: list[Store] = []

    def client(cluster: str = "main") -> Store:
        store: Store
        if kind == "memory":
            store = memory.cluster_view(cluster)
        elif kind == "sqlite":
            store = SqliteStore(tmp_path / "dcs.sqlite", cluster=cluster)
        else:
            server: EtcdServer = request.getfixturevalue("etcd")
            # "etcd one-shot": the transport of the quick commands (cluster show)
            store = EtcdStore(
                [server.url],
                f"{prefix}-{cluster}",
                verify=_verify(server),
                one_shot=kind == "etcd one-shot",
            )
        made.append(store)
        return store

    yield client
    for store in made:
        store.close()


def test_leader_is_created_only_if_absent(new_client: NewClient) -> None:
    a, b = new_client(), new_client()
    assert a.acquire_leader("node1", TTL)
    assert not b.acquire_leader("node2", TTL)
    assert not a.acquire_leader("node1", TTL)  # not even by its holder
    leader = b.leader()
    assert leader is not None and leader.name == "node1"


def test_only_the_holder_renews_and_releases(new_client: NewClient) -> None:
    a, b = new_client(), new_client()
    assert a.acquire_leader("node1", TTL)
    assert not b.renew_leader("node2", TTL)
    assert not b.release_leader("node2")
    assert a.renew_leader("node1", TTL)
    assert a.release_leader("node1")
    assert b.leader() is None
    assert b.acquire_leader("node2", TTL)


def test_an_unrenewed_lease_expires_and_another_member_takes_it(new_client: NewClient) -> None:
    a, b = new_client(), new_client()
    assert a.acquire_leader("node1", TTL)
    started = time.monotonic()
    while not b.acquire_leader("node2", TTL):
        assert time.monotonic() - started < TTL + 3, "the lease did not expire"
        time.sleep(0.1)
    assert time.monotonic() - started >= TTL - 1.0  # not before (about) its TTL
    assert not a.renew_leader("node1", TTL)  # the old holder learns it lost the lease
    leader = a.leader()
    assert leader is not None and leader.name == "node2"


def test_a_renewed_lease_outlives_its_first_ttl(new_client: NewClient) -> None:
    a, b = new_client(), new_client()
    assert a.acquire_leader("node1", TTL)
    for _ in range(4):
        time.sleep(TTL / 2)
        assert a.renew_leader("node1", TTL)
    assert not b.acquire_leader("node2", TTL)


def test_two_clients_racing_for_the_lease_one_wins(new_client: NewClient) -> None:
    clients = [new_client() for _ in range(4)]
    results: dict[str, bool] = {}
    barrier = threading.Barrier(len(clients))

    def race(i: int) -> None:
        barrier.wait()
        results[f"node{i}"] = clients[i].acquire_leader(f"node{i}", TTL)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, won in results.items() if won]
    assert len(winners) == 1
    leader = clients[0].leader()
    assert leader is not None and leader.name == winners[0]


def test_members_check_in_with_a_ttl(new_client: NewClient) -> None:
    a = new_client()
    a.touch_member("node1", '{"role": "primary"}', TTL)
    a.touch_member("node2", '{"role": "standby"}', 30)
    assert [(m.name, m.data) for m in a.members()] == [
        ("node1", '{"role": "primary"}'),
        ("node2", '{"role": "standby"}'),
    ]
    deadline = time.monotonic() + TTL + 3
    while "node1" in [m.name for m in a.members()]:
        assert time.monotonic() < deadline, "node1's check-in did not expire"
        time.sleep(0.1)
    a.remove_member("node2")
    assert a.members() == ()


def test_a_member_that_keeps_checking_in_stays_and_comes_back_after_a_gap(
    new_client: NewClient,
) -> None:
    """A check-in renews the member's TTL (etcd: the same lease, kept alive); after a gap
    longer than the TTL the member is gone, and its next check-in writes it again (etcd: a
    new lease, the old one having expired)."""
    a = new_client()
    a.touch_member("node1", "1", 1)
    time.sleep(0.6)
    a.touch_member("node1", "2", 1)
    time.sleep(0.6)
    assert [(m.name, m.data) for m in a.members()] == [("node1", "2")]  # 1.2 s > its TTL
    deadline = time.monotonic() + 4
    while a.members():
        assert time.monotonic() < deadline, "the check-in did not expire"
        time.sleep(0.1)
    a.touch_member("node1", "3", 1)
    assert [(m.name, m.data) for m in a.members()] == [("node1", "3")]


def test_config_is_compare_and_set(new_client: NewClient) -> None:
    a, b = new_client(), new_client()
    assert a.config() is None
    assert a.set_config('{"ttl": 10}', 0)
    first = b.config()
    assert first is not None and first.value == '{"ttl": 10}'
    assert not b.set_config('{"ttl": 20}', 0)  # someone created it already
    assert b.set_config('{"ttl": 20}', first.version)
    assert not a.set_config('{"ttl": 30}', first.version)  # stale version
    latest = a.config()
    assert latest is not None and latest.value == '{"ttl": 20}'


def test_events_keep_their_order(new_client: NewClient) -> None:
    a, b = new_client(), new_client()
    for i in range(5):
        (a if i % 2 else b).append_event(f"event {i}")
    assert a.events() == tuple(f"event {i}" for i in range(5))
    assert a.events(limit=2) == ("event 3", "event 4")


def test_snapshot_reads_leader_members_and_config_at_once(new_client: NewClient) -> None:
    a = new_client()
    assert a.acquire_leader("node1", TTL)
    a.touch_member("node1", "{}", 30)
    assert a.set_config("{}", 0)
    snap = a.snapshot()
    assert snap.leader is not None and snap.leader.name == "node1"
    assert [m.name for m in snap.members] == ["node1"]
    assert snap.config is not None and snap.config.value == "{}"


def test_initialize_is_created_once_of_many_racing_agents(new_client: NewClient) -> None:
    clients = [new_client() for _ in range(4)]
    results: dict[int, bool] = {}
    barrier = threading.Barrier(len(clients))

    def race(i: int) -> None:
        barrier.wait()
        results[i] = clients[i].initialize(f'{{"by": "node{i}"}}')

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1
    found = clients[0].initialization()
    assert found is not None and found.value == f'{{"by": "node{winners[0]}"}}'
    assert not clients[winners[0]].initialize("again")  # not even by its creator


def test_initialize_is_compare_and_set_and_cancelled_only_if_unchanged(
    new_client: NewClient,
) -> None:
    a, b = new_client(), new_client()
    assert a.initialization() is None
    assert not a.cancel_initialization(0)
    assert a.initialize("claimed by node1")
    claim = b.initialization()
    assert claim is not None
    assert a.initialize("system identifier 7", claim.version)  # the claimer publishes
    assert not b.initialize("taken over", claim.version)  # a stale version changes nothing
    assert not b.cancel_initialization(claim.version)
    published = b.initialization()
    assert published is not None and published.value == "system identifier 7"
    assert published.version != claim.version
    assert a.cancel_initialization(published.version)
    assert b.initialization() is None
    assert b.initialize("claimed by node2")  # absent again: created anew
    time.sleep(TTL + 0.5)
    assert b.initialization() is not None  # no TTL: it outlives every agent


def test_snapshot_reads_the_initialize_key(new_client: NewClient) -> None:
    a = new_client()
    assert a.snapshot().initialize is None
    assert a.initialize("claimed")
    snap = a.snapshot()
    assert snap.initialize is not None and snap.initialize.value == "claimed"


def test_two_clusters_in_one_store_never_mix(new_client: NewClient) -> None:
    main, other = new_client("main"), new_client("main_2")
    assert main.acquire_leader("node1", TTL)
    assert other.acquire_leader("node1", TTL)  # its own lease, not main's
    assert main.initialize("main's cluster")
    assert other.initialization() is None
    assert other.initialize("other's cluster")
    main.touch_member("node1", "main", 30)
    other.touch_member("node2", "other", 30)
    assert main.set_config("main", 0)
    main.append_event("main happened")
    other.append_event("other happened")
    snap = other.snapshot()
    assert [(m.name, m.data) for m in snap.members] == [("node2", "other")]
    assert snap.config is None
    assert snap.initialize is not None and snap.initialize.value == "other's cluster"
    assert other.events() == ("other happened",)
    assert main.events() == ("main happened",)
    assert [m.name for m in main.members()] == ["node1"]
    assert main.release_leader("node1")
    leader = other.leader()
    assert leader is not None and leader.name == "node1"  # other's lease is untouched


@pytest.mark.parametrize("one_shot", [False, True])
def test_etcd_skips_a_dead_endpoint(etcd: EtcdServer, one_shot: bool) -> None:
    dead = f"https://127.0.0.1:{free_port_base(1)}"
    store = EtcdStore(
        [dead, etcd.url],
        f"dead{time.time_ns()}",
        timeout=1,
        verify=_verify(etcd),
        one_shot=one_shot,
    )
    try:
        assert store.acquire_leader("node1", TTL)
        leader = store.leader()
        assert leader is not None and leader.name == "node1"
    finally:
        store.close()


@pytest.mark.parametrize("one_shot", [False, True])
def test_etcd_with_no_live_endpoint_is_unavailable(one_shot: bool) -> None:
    dead = f"http://127.0.0.1:{free_port_base(1)}"
    store = EtcdStore([dead], "nowhere", timeout=1, one_shot=one_shot)
    try:
        with pytest.raises(
            StoreUnavailable, match=r"no etcd endpoint answered: .*ConnectionRefused|ConnectError"
        ):
            store.leader()
    finally:
        store.close()
