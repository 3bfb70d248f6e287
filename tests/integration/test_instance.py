"""initdb, settings, access rules, start/stop: what a new primary looks like on disk and
to a client."""

from __future__ import annotations

import os
import stat

import psycopg
import pytest

from pgherd.config import ClusterConfig
from pgherd.errors import CommandFailed, DataDirNotEmpty
from pgherd.ha import status as status_mod
from pgherd.model.status import PgState, Role
from pgherd.pg import conf, hba, osuser, passfile
from pgherd.pg.local_node import LocalNode
from tests.support import connect, query

pytestmark = pytest.mark.integration


def test_data_dir_is_private_and_owned_by_the_os_user(
    cluster: ClusterConfig, os_user: osuser.OsUser
) -> None:
    data_dir = cluster.node("node1").data_dir
    st = data_dir.stat()
    assert st.st_uid == os_user.uid
    assert stat.S_IMODE(st.st_mode) == 0o700
    for name in ("pgherd.conf", "pg_hba.conf", "pg_ident.conf", "postgresql.conf"):
        assert (data_dir / name).stat().st_uid == os_user.uid, name


def test_initdb_turns_checksums_on_and_settings_take_effect(cluster: ClusterConfig) -> None:
    local = LocalNode.open(cluster, "node1")
    assert local.instance.controldata().data_checksums
    rows = dict(
        query(
            cluster,
            "node1",
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('wal_level', 'wal_log_hints', 'hot_standby', 'password_encryption', "
            "'server_encoding', 'cluster_name')",
        )
    )
    assert rows == {
        "wal_level": "logical",
        "wal_log_hints": "on",
        "hot_standby": "on",
        "password_encryption": "scram-sha-256",
        "server_encoding": "UTF8",
        "cluster_name": "node1",
    }


def test_user_edits_to_postgresql_conf_survive_a_rewrite(cluster: ClusterConfig) -> None:
    local = LocalNode.open(cluster, "node1")
    main = local.node.data_dir / "postgresql.conf"
    original = main.read_text()
    local.user.write_file(main, original + "work_mem = '7MB'  # operator's edit\n")
    try:
        local.write_config(upstream=None)
        text = main.read_text()
        assert "work_mem = '7MB'" in text
        assert text.count(conf.INCLUDE_FILE) == 1
    finally:
        local.user.write_file(main, original)


def test_no_trust_over_tcp_and_scram_for_the_cluster(cluster: ClusterConfig) -> None:
    text = (cluster.node("node1").data_dir / "pg_hba.conf").read_text()
    assert hba.trust_over_tcp(text) == []
    assert "hostssl  replication  replicator       127.0.0.1/32         scram-sha-256" in text
    assert "hostnossl all          all              0.0.0.0/0            reject" in text


def test_replication_role_logs_in_with_its_passfile_only(cluster: ClusterConfig) -> None:
    node = cluster.node("node1")
    attrs = query(
        cluster,
        "node1",
        "SELECT rolreplication, rolsuper, rolcanlogin, left(rolpassword, 14) "
        "FROM pg_authid WHERE rolname = %s",
        cluster.replication_user,
    )
    assert attrs == [(True, False, True, "SCRAM-SHA-256$")]
    with psycopg.connect(
        host=node.host,
        port=node.port,
        user=cluster.replication_user,
        dbname="postgres",
        passfile=str(cluster.passfile),
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (cluster.replication_user,)
    wrong = passfile.password_for(cluster.passfile, cluster.superuser)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=node.host,
            port=node.port,
            user=cluster.replication_user,
            dbname="postgres",
            password=wrong,
        )


def test_local_superuser_access_is_mapped_not_trusted(cluster: ClusterConfig) -> None:
    # The agent (root) and the OS user reach the superuser over the socket via pg_ident;
    # TCP needs the password.
    with LocalNode.open(cluster, "node1").instance.connect() as conn:
        assert conn.execute("SELECT current_user").fetchone() == (cluster.superuser,)
    with connect(cluster, "node1") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_status_of_a_running_primary(cluster: ClusterConfig) -> None:
    local = LocalNode.open(cluster, "node1")
    status = status_mod.collect(local, PgState.RUNNING, "running", None, 0, None)
    assert status.role is Role.PRIMARY
    assert status.timeline == 1
    assert status.current_lsn is not None
    assert status.version_num is not None
    assert status.version_num // 10000 == local.pgbin.major
    assert status.system_identifier == local.instance.controldata().system_identifier


def test_initdb_refuses_a_non_empty_directory(cluster: ClusterConfig) -> None:
    local = LocalNode.open(cluster, "node1")
    with pytest.raises(DataDirNotEmpty, match="is not empty"):
        local.instance.initdb("x")


def test_restart_with_pg_ctl_and_the_servers_own_error_on_failure(
    cluster: ClusterConfig,
) -> None:
    instance = LocalNode.open(cluster, "node1").instance
    pid_before = instance.postmaster()
    assert pid_before is not None
    instance.restart()
    pid_after = instance.postmaster()
    assert pid_after is not None
    assert pid_after.pid != pid_before.pid
    # A bad setting: pg_ctl fails, and PostgreSQL's own explanation reaches the user.
    auto = instance.data_dir / "postgresql.auto.conf"
    saved = auto.read_text()
    instance.user.write_file(auto, saved + "shared_buffers = 'lots'\n")
    try:
        instance.stop()
        with pytest.raises(CommandFailed, match="shared_buffers"):
            instance.start(timeout=10)
    finally:
        instance.user.write_file(auto, saved)
        instance.start()
    assert os.path.exists(instance.data_dir / "postmaster.pid")


def test_pg_rewind_reaches_the_source_with_jit_off(cluster: ClusterConfig) -> None:
    """pg_rewind's recursive file listing would be JIT-compiled first (its row estimate
    passes jit_above_cost): the session pg_rewind opens has JIT off, the server's default
    stays on."""
    from pgherd.physical import rewind

    target = LocalNode.open(cluster, "node2")
    with psycopg.connect(rewind.source_conninfo(target, cluster.node("node1"))) as conn:
        assert conn.execute("SHOW jit").fetchone() == ("off",)
        assert conn.execute("SHOW application_name").fetchone() == ("pgherd_rewind_node2",)
    assert query(cluster, "node1", "SHOW jit") == [("on",)]
