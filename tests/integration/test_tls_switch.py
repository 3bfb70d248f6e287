"""TLS switched on for a cluster that ran without it, by a reload of its agents, against
real servers: a primary and its standby start with ``tls: off``; the operator makes the
certificates and sets TLS on in pgherd.yaml; a reload (what SIGHUP and ``pgherd agent
reload`` run) rewrites ``ssl``, pg_hba.conf's pgherd block and the standby's
``primary_conninfo`` and reloads both servers, without a restart. Then a client without
TLS is refused, one that verifies the server gets in, and the standby streams over TLS.
Certificates renewed later reach the running server on the next reload."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.ha import status as status_mod
from pgherd.ha.reload import Reloader
from pgherd.ha.supervisor import Supervisor
from pgherd.model.status import NodeStatus, PgState
from pgherd.pg import conf, osuser, tlsfiles
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap, clone
from tests.conftest import free_port_base
from tests.support import cluster_config, connect, wait_until

pytestmark = pytest.mark.integration


@dataclass
class Plain:
    """Two nodes running with ``tls: off``, supervised as their agents would."""

    path: Path  # pgherd.yaml
    config: ClusterConfig
    locals: dict[str, LocalNode]
    supervisors: dict[str, Supervisor]

    def reloader(self, name: str) -> Reloader:
        return Reloader(
            self.path,
            self.locals[name],
            self.supervisors[name],
            threading.Lock(),
            None,
            self.config,
        )


def _status(local: LocalNode) -> NodeStatus:
    return status_mod.collect(local, PgState.RUNNING, "running", None, 0, None)


@pytest.fixture(scope="module")
def plain(module_dir: Path, os_user: osuser.OsUser) -> Iterator[Plain]:
    config = cluster_config(module_dir, os_user, 2, free_port_base(2), tls=False)
    path = module_dir / "pgherd.yaml"
    primary = LocalNode.open(config, "node1")
    bootstrap.init_primary(primary)
    supervisors = {"node1": Supervisor(primary.instance)}
    try:
        supervisors["node1"].start(timeout=60)
        bootstrap.create_replication_role(primary)
        clone.clone(config, "node2", _status(primary), False, lambda _p: None)
        standby = LocalNode.open(config, "node2")
        supervisors["node2"] = Supervisor(standby.instance)
        supervisors["node2"].start(timeout=60)
        yield Plain(path, config, {"node1": primary, "node2": standby}, supervisors)
    finally:
        for supervisor in supervisors.values():
            supervisor.stop("immediate")


def _connect(config: ClusterConfig, **kw: str) -> psycopg.Connection[tuple[object, ...]]:
    return connect(config, "node1", **kw)


def _streams_over_tls(config: ClusterConfig) -> bool:
    with _connect(config) as conn:
        row = conn.execute(
            "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) "
            "WHERE r.application_name = 'node2' AND r.state = 'streaming'"
        ).fetchone()
    return bool(row and row[0])


def test_tls_switched_on_by_a_reload(plain: Plain, os_user: osuser.OsUser) -> None:
    # Without TLS: a plain client gets in; the standby streams in plain text.
    with _connect(plain.config, sslmode="disable") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    wait_until(lambda: _status(plain.locals["node2"]).state, 20, what="the standby")
    assert not _streams_over_tls(plain.config)

    # The operator makes the certificates, sets TLS on, and reloads every agent.
    raw = plain.config.model_dump(mode="json")
    raw["tls"] = {}
    on = config_mod.parse(raw)
    tlsfiles.ensure(on, os_user, tlsfiles.members(on))
    os_user.write_file(plain.path, config_mod.dump(on))
    reports = {name: plain.reloader(name).reload() for name in ("node1", "node2")}

    for name, report in reports.items():
        assert report.postgres == "reloaded", report.lines()
        assert report.pending_restart == ()
        assert report.access_rules
        assert report.tls and report.tls[0].startswith("tls false → ")
        assert report.tls_reload[0] == "ssl is off in the running server, on in pgherd.yaml"
        assert any(s.name == "ssl" and s.effect == "reload" for s in report.settings)
        hba = (plain.locals[name].node.data_dir / "pg_hba.conf").read_text()
        assert "hostssl  replication" in hba and "hostnossl" in hba
    written = conf.read_include(plain.locals["node2"].node.data_dir)
    assert "sslmode=verify-full" in written["primary_conninfo"]
    assert any(s.name == "primary_conninfo" for s in reports["node2"].settings)

    # A client without TLS is refused; one that verifies the server gets in.
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        _connect(plain.config, sslmode="disable")
    assert on.ca_file is not None
    with _connect(plain.config, sslmode="verify-full", sslrootcert=str(on.ca_file)) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert row.fetchone() == (True,)
    # The standby's walreceiver reconnected with the new primary_conninfo, over TLS.
    wait_until(lambda: _streams_over_tls(on), 30, what="the standby to stream over TLS")

    # A new CA and certificates (pgherd secrets rotate --tls after a compromise): the next
    # reload makes the running server read them, though no file of its data changed.
    old_ca = plain.path.with_name("old-ca.crt")
    old_ca.write_bytes(on.ca_file.read_bytes())
    for name in ("ca.crt", "ca.key"):
        (on.tls_dir / name).unlink()
    tlsfiles.ensure(on, os_user, tlsfiles.members(on))
    report = plain.reloader("node1").reload()
    assert report.postgres == "reloaded", report.lines()
    assert report.tls_reload == (
        "the certificate files changed after PostgreSQL last read them (renewed or rotated)",
    )
    assert not report.unchanged  # pgherd.yaml is, but the server was not: said so
    assert "node1: PostgreSQL reloaded" in report.lines()
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        _connect(plain.config, sslmode="verify-full", sslrootcert=str(old_ca))
    with _connect(plain.config, sslmode="verify-full", sslrootcert=str(on.ca_file)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
