"""TLS between the parts, against real servers: a client with the wrong CA is refused by
the agent, by PostgreSQL and by etcd; a client without TLS gets nowhere; the cluster's
own clients get in, verified."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn

from pgherd.api.app import create_app
from pgherd.api.serving import uvicorn_tls
from pgherd.clients.agent import AgentClient
from pgherd.config import ClusterConfig, TlsConfig
from pgherd.config import parse as parse_config
from pgherd.dcs.base import StoreUnavailable
from pgherd.dcs.etcd import EtcdStore
from pgherd.errors import AgentError
from pgherd.lab.etcd_server import EtcdServer, EtcdTls
from pgherd.pg import osuser, tlsfiles
from pgherd.tls import certs
from pgherd.tls.context import client_context
from tests.conftest import free_port_base
from tests.unit.fake_agent import FakeAgent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stranger(module_dir: Path) -> tuple[Path, Path, Path]:
    """Another CA, and a certificate it signed for 127.0.0.1: what an attacker has."""
    directory = module_dir / "stranger"
    directory.mkdir()
    ca = certs.new_ca("stranger")
    made = certs.issue(ca, "node1", ["127.0.0.1"])
    paths = directory / "ca.crt", directory / "node1.crt", directory / "node1.key"
    for path, data in zip(paths, (ca.cert_pem, made.cert_pem, made.key_pem), strict=True):
        path.write_bytes(data)
        path.chmod(0o600)
    return paths


# ---- PostgreSQL ------------------------------------------------------------------------


def _connect(cluster: ClusterConfig, **kw: str) -> psycopg.Connection[tuple[object, ...]]:
    node = cluster.node("node1")
    conninfo = psycopg.conninfo.make_conninfo(
        host=node.host,
        port=node.port,
        user=cluster.superuser,
        dbname="postgres",
        passfile=str(cluster.passfile),
        connect_timeout=5,
        **kw,
    )
    return psycopg.connect(conninfo)


def test_postgresql_speaks_tls_verified_by_the_cluster_ca(cluster: ClusterConfig) -> None:
    assert cluster.ca_file is not None
    with _connect(cluster, sslmode="verify-full", sslrootcert=str(cluster.ca_file)) as conn:
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl_on, version = row.fetchone() or (None, None)
    assert ssl_on is True and str(version).startswith("TLSv1.")


def test_postgresql_refuses_a_client_without_tls(cluster: ClusterConfig) -> None:
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        _connect(cluster, sslmode="disable")


def test_a_client_with_the_wrong_ca_is_refused_by_postgresql(
    cluster: ClusterConfig, stranger: tuple[Path, Path, Path]
) -> None:
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        _connect(cluster, sslmode="verify-full", sslrootcert=str(stranger[0]))


# ---- the agent's API ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent_api(cluster: ClusterConfig) -> Iterator[ClusterConfig]:
    """The agent API of node1 served as ``pgherd agent run`` serves it (HTTPS with the
    node's certificate, client certificates asked for), in front of a fake agent."""
    raw = cluster.model_dump(mode="json")
    raw["tls"] = TlsConfig(client_certs=True).model_dump(mode="json")
    port = free_port_base(1)
    raw["nodes"][0]["api_port"] = port
    config = parse_config(raw)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(FakeAgent()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            **uvicorn_tls(config, "node1"),
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield config
    server.should_exit = True
    thread.join(10)


def test_the_agent_serves_https_to_the_clusters_clients(agent_api: ClusterConfig) -> None:
    node = agent_api.node("node1")
    assert node.api_url.startswith("https://")
    assert AgentClient(node).healthy() == (True, "running")


def test_a_client_with_the_wrong_ca_refuses_the_agent(
    agent_api: ClusterConfig, stranger: tuple[Path, Path, Path]
) -> None:
    node = agent_api.node("node1")
    node._api_ca = stranger[0]  # this client trusts another CA
    try:
        with pytest.raises(AgentError, match="is not who it should be"):
            AgentClient(node).status()
    finally:
        node._api_ca = agent_api.ca_file


def test_the_agent_refuses_a_client_certificate_of_another_ca(
    agent_api: ClusterConfig, stranger: tuple[Path, Path, Path]
) -> None:
    node = agent_api.node("node1")
    assert agent_api.ca_file is not None
    url = f"{node.api_url}/health"
    own = client_context(agent_api.ca_file, *agent_api.cert_files("node2"))
    assert httpx.get(url, verify=own).status_code == 200
    theirs = client_context(agent_api.ca_file, stranger[1], stranger[2])
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, verify=theirs)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://"))  # plain HTTP: no answer


# ---- etcd ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcd_tls(cluster: ClusterConfig, module_dir: Path) -> Iterator[tuple[EtcdServer, EtcdTls]]:
    user = osuser.resolve(cluster.os_user)
    extra = [tlsfiles.Member("etcd1", ("127.0.0.1",)), tlsfiles.Member("dcs", ("127.0.0.1",))]
    tlsfiles.ensure(cluster, user, extra)
    assert cluster.ca_file is not None
    tls = EtcdTls(cluster.ca_file, *cluster.cert_files("etcd1"), *cluster.cert_files("dcs"))
    base = free_port_base(1, (0, 1))
    server = EtcdServer(module_dir / "etcd", base, base + 1, name="etcd1", tls=tls)
    server.start()
    yield server, tls
    server.stop()


@pytest.mark.parametrize("one_shot", [False, True], ids=["pooled", "one-shot"])
def test_the_store_works_over_tls_with_a_client_certificate(
    etcd_tls: tuple[EtcdServer, EtcdTls], one_shot: bool
) -> None:
    server, tls = etcd_tls
    store = EtcdStore(
        [server.url],
        f"tls{int(one_shot)}",
        verify=client_context(tls.ca, tls.client_cert, tls.client_key),
        one_shot=one_shot,
    )
    try:
        assert store.acquire_leader("node1", 5)
        assert store.leader() is not None
    finally:
        store.close()


@pytest.mark.parametrize("one_shot", [False, True], ids=["pooled", "one-shot"])
@pytest.mark.parametrize("who", ["wrong-ca", "no-certificate", "foreign-certificate", "plain"])
def test_etcd_refuses_what_is_not_the_clusters(
    etcd_tls: tuple[EtcdServer, EtcdTls],
    stranger: tuple[Path, Path, Path],
    who: str,
    one_shot: bool,
) -> None:
    server, tls = etcd_tls
    url = server.url
    if who == "wrong-ca":  # the client does not trust etcd
        verify = client_context(stranger[0], tls.client_cert, tls.client_key)
    elif who == "no-certificate":  # etcd does not know the client
        verify = client_context(tls.ca)
    elif who == "foreign-certificate":
        verify = client_context(tls.ca, stranger[1], stranger[2])
    else:
        verify, url = client_context(tls.ca), url.replace("https://", "http://")
    store = EtcdStore([url], "tls", timeout=2, verify=verify, one_shot=one_shot)
    try:
        with pytest.raises(StoreUnavailable):
            store.leader()
    finally:
        store.close()


def test_etcd_user_and_password(module_dir: Path, etcd_tls: tuple[EtcdServer, EtcdTls]) -> None:
    """etcd's own authentication (ha.dcs.username/password_file), over TLS."""
    tls = dataclasses.replace(
        etcd_tls[1], client_cert=None, client_key=None, client_cert_auth=False
    )
    base = free_port_base(1, (0, 1))
    server = EtcdServer(module_dir / "etcd-auth", base, base + 1, name="etcd1", tls=tls)
    server.start()
    verify = client_context(tls.ca)
    try:
        with httpx.Client(base_url=server.url, verify=verify, timeout=5) as admin:
            for path, body in [
                ("/v3/auth/user/add", {"name": "root", "password": "r00t-pw"}),
                ("/v3/auth/role/add", {"name": "root"}),
                ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
                ("/v3/auth/enable", {}),
            ]:
                admin.post(path, json=body).raise_for_status()
        for one_shot in (False, True):  # the agents' transport and the quick commands'
            prefix = f"auth{int(one_shot)}"
            good = EtcdStore(
                [server.url], prefix, verify=verify, auth=("root", "r00t-pw"), one_shot=one_shot
            )
            bad = EtcdStore(
                [server.url], prefix, verify=verify, auth=("root", "wrong"), one_shot=one_shot
            )
            try:
                assert good.acquire_leader("node1", 5)
                assert good.leader() is not None
                with pytest.raises(StoreUnavailable):
                    bad.leader()
            finally:
                good.close()
                bad.close()
    finally:
        server.stop()


def test_an_unknown_database_is_the_callers_mistake_not_a_failure(cluster: ClusterConfig) -> None:
    """An API request naming a database that does not exist answers 422, not 500."""
    from pgherd.errors import InvalidInput
    from pgherd.pg.local_node import LocalNode

    instance = LocalNode.open(cluster, "node1").instance
    with pytest.raises(InvalidInput, match="does not exist"), instance.connect("no_such_db"):
        pass
