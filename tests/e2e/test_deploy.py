"""pgherd on real servers, as docs/deploy.md deploys it: test hosts in network namespaces
(tests/hosts), a three-member etcd with one member per host, one pgherd.yaml, an agent per
host started as a service, as the OS user ``postgres``. Never through ``lab``.

The module shares one cluster ("main", synchronous mode) across its tests, in order: the
three servers bootstrap from nothing, a stale data directory is refused and then
re-cloned, an etcd member goes down, the primary's host is cut off, the whole cluster is
stopped and started again in a shuffled order (twice: cleanly with the default
primary_start_timeout, by power-off with 0). A second cluster ("adopted", in the same
etcd) adopts a running primary that holds data and its operator's pg_hba lines.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgherd.pg import osuser
from tests.hosts.agents import as_user, service_env
from tests.hosts.deployment import Deployment, Hosts, provision_hosts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NODES = ("node1", "node2", "node3")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def hosts(module_dir: Path) -> Iterator[Hosts]:
    with provision_hosts(module_dir, 4, etcd_tls=True) as found:
        yield found


def store_of(directory: Path, hosts: Hosts) -> dict[str, Any]:
    """ha.dcs as docs/deploy.md writes it: etcd over https, verified against the cluster
    CA, with the store's client certificate that ``pgherd secrets init`` issues."""
    tls = directory / "secrets" / "tls"
    return {
        "etcd": hosts.etcd.endpoints,
        "cert": str(tls / "dcs-client.crt"),
        "key": str(tls / "dcs-client.key"),
    }


def cluster_yaml(directory: Path, hosts: Hosts, **ha: object) -> dict[str, Any]:
    """pgherd.yaml for the cluster "main" on host1..host3, as docs/deploy.md writes it."""
    return {
        "cluster": "main",
        "passfile": str(directory / "secrets" / "pgpass"),
        "api_token_file": str(directory / "secrets" / "api-token"),
        "failover": "automatic",
        "ha": {"dcs": store_of(directory, hosts), "synchronous": True, **ha},
        "nodes": [
            {
                "name": f"node{i}",
                "host": hosts[f"host{i}"].address,
                "api_host": hosts[f"host{i}"].address,
                "data_dir": str(directory / f"node{i}" / "data"),
            }
            for i in (1, 2, 3)
        ],
    }


@pytest.fixture(scope="module")
def main(hosts: Hosts, module_dir: Path, os_user: osuser.OsUser) -> Iterator[Deployment]:
    """docs/deploy.md steps 1-4: pgherd.yaml the same on every host (checked), the secrets
    made once (on these hosts, one file system stands for the copies), etcd on three hosts
    with the certificates the secrets include."""
    directory = module_dir / "main"
    os_user.make_dir(directory)
    deployment = Deployment(hosts, directory / "pgherd.yaml", os_user)
    config = deployment.write_config(cluster_yaml(directory, hosts))
    deployment.pgherd("config", "check", on="host1")
    deployment.pgherd("secrets", "init", on="host1")
    hosts.start_store(config)
    try:
        yield deployment
    finally:
        deployment.stop_all()


# ---- helpers ------------------------------------------------------------------------------


def leader_of(data: dict[str, Any]) -> str | None:
    primary: str | None = data.get("primary")
    return primary


def healthy(deployment: Deployment, on: str, members: tuple[str, ...] = NODES) -> str | None:
    """The primary when every member runs and every standby streams from it, else None."""
    data = deployment.show(on)
    primary = leader_of(data)
    rows = {row["name"]: row for row in data.get("nodes", [])}
    if primary is None or data.get("problems"):
        return None
    for name in members:
        row = rows.get(name)
        if row is None:
            return None
        if name == primary and row.get("state") != "running":
            return None
        if name != primary and (row.get("state") != "streaming" or row.get("upstream") != primary):
            return None
    return primary


def store_record(hosts: Hosts, cluster: str) -> dict[str, Any] | None:
    """The store's initialize key for ``cluster``, read from etcd's JSON gateway."""
    value = hosts.etcd.get(f"/pgherd/{cluster}/initialize")
    if value is None:
        return None
    record: dict[str, Any] = json.loads(value)
    return record


def system_identifier(deployment: Deployment, node: str) -> str:
    rows = deployment.sql(node, "SELECT system_identifier FROM pg_control_system()")
    return rows[0][0]


def other_host(deployment: Deployment, *nodes: str) -> str:
    """A host that runs none of ``nodes``."""
    busy = {deployment.host_of(n).name for n in nodes}
    return next(h for h in deployment.hosts.names if h not in busy)


# ---- three servers from nothing -------------------------------------------------------------


def marker(deployment: Deployment, node: str) -> str:
    """What the node's bootstrap marker says is under way ("" when there is none)."""
    try:
        return str(
            json.loads((deployment.node(node).home_dir / "bootstrap.json").read_text())["work"]
        )
    except (FileNotFoundError, ValueError, KeyError):
        return ""


def test_three_servers_from_nothing_one_initdb_the_others_clone(main: Deployment) -> None:
    order = list(NODES)
    random.shuffle(order)
    for name in order:  # docs/deploy.md step 5: each host's unit started, in any order
        main.start_agent(name)

    # The agent that claimed the creation is killed in the middle of its initdb: nobody
    # takes what it left for a cluster, and its next start cleans up and carries on.
    claimer = main.wait(
        lambda: next((n for n in NODES if marker(main, n) == "initdb"), None), 120, "an initdb"
    )
    main.agents[claimer].kill()
    time.sleep(3)
    for name in NODES:
        assert "bootstrap: cloned" not in main.log(name), f"{name} cloned a half-made cluster"
    main.start_agent(claimer)
    primary = main.wait(lambda: healthy(main, "host4"), 240, "three nodes streaming")
    assert primary == claimer
    cleaned = [line for line in main.log(claimer).splitlines() if "did not finish" in line]
    assert len(cleaned) == 1 and "an initdb did not finish" in cleaned[0], cleaned

    logs = {name: main.log(name) for name in NODES}
    claims = {n for n, text in logs.items() if "in the store (initdb)" in text}
    initialised = [
        n for n, text in logs.items() for _ in range(text.count("initialised the cluster"))
    ]
    assert claims == {primary} and initialised == [primary], f"{claims}, {initialised}"
    for name in NODES:
        if name != primary:
            assert "bootstrap: cloned" in logs[name] and f"from {primary}" in logs[name]
    sysids = {system_identifier(main, n) for n in NODES}
    record = store_record(main.hosts, "main")
    assert record is not None and sysids == {record["system_identifier"]}
    assert record["by"] == primary and record["origin"] == "initdb"

    # TLS everywhere: the standbys stream over TLS, verified against the cluster CA.
    streams = main.sql(
        primary,
        "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
    )
    assert streams == [["t"], ["t"]], streams
    assert main.node(primary).api_url.startswith("https://")

    # The agents run as postgres, not root, and so do their servers.
    for agent in main.agents.values():
        uid_line = next(
            line
            for line in Path(f"/proc/{agent.proc.pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert uid_line.split()[1] == str(main.user.uid), f"{agent.node.name} runs as root"

    main.sql(primary, "CREATE TABLE acked (id bigint PRIMARY KEY)")
    main.sql(primary, "INSERT INTO acked SELECT generate_series(1, 1000)")


# ---- refusals ------------------------------------------------------------------------------


def test_a_data_directory_of_another_cluster_is_refused_then_cloned_once_moved(
    main: Deployment,
) -> None:
    primary = main.wait(lambda: healthy(main, "host4"), 120, "a healthy cluster")
    victim = next(n for n in NODES if n != primary)
    node = main.node(victim)
    main.shut_down(victim)  # its host goes down; the data directory is replaced meanwhile
    real = node.data_dir.with_name("data.real")
    node.data_dir.rename(real)
    subprocess.run(
        [*as_user(main.user), str(PG_BIN / "initdb"), "-D", str(node.data_dir), "-U", "postgres"],
        capture_output=True,
        check=True,
        env=service_env(main.user),
        cwd="/",
    )
    stale = main.node(victim)
    main.boot(victim)

    expected = store_record(main.hosts, "main")
    assert expected is not None

    def refused() -> str:
        text = main.log(victim)
        return next((line for line in text.splitlines() if "not starting" in line), "")

    line = main.wait(refused, 120, f"{victim} to refuse the stale data directory")
    assert expected["system_identifier"] in line
    assert f"mv {stale.data_dir} {stale.data_dir}.old" in line
    time.sleep(2)
    rows = {row["name"]: row for row in main.show("host4")["nodes"]}
    assert rows[victim]["state"] != "running"

    # What the message says to do: move it aside. The agent then clones by itself.
    node.data_dir.rename(node.data_dir.with_name("data.old"))
    main.wait(lambda: healthy(main, "host4"), 240, f"{victim} cloned again and streaming")
    assert system_identifier(main, victim) == expected["system_identifier"]
    subprocess.run(["rm", "-rf", str(real), str(node.data_dir.with_name("data.old"))], check=True)


# ---- the store -------------------------------------------------------------------------------


def test_one_etcd_member_down_changes_nothing(main: Deployment) -> None:
    primary = main.wait(lambda: healthy(main, "host4"), 120, "a healthy cluster")
    # An etcd member on another host than the primary's.
    member = next(h for h in main.hosts.etcd.hosts if h.name != main.host_of(primary).name)
    events_before = len(json.loads(main.pgherd("cluster", "events", "--json", on="host4").stdout))
    main.hosts.etcd.stop(member)
    try:
        time.sleep(10)  # three leases' time
        assert healthy(main, "host4") == primary
        main.sql(primary, "INSERT INTO acked VALUES (1001)")
        events = json.loads(main.pgherd("cluster", "events", "--json", on="host4").stdout)
        assert len(events) == events_before, f"something happened: {events[events_before:]}"
    finally:
        main.hosts.etcd.start(member)


# ---- the primary's host is lost ------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, sys, time, psycopg
    conninfo, out, stop, first = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    conn, next_id = None, first
    with open(out, "a") as log:
        while not os.path.exists(stop):
            try:
                if conn is None:
                    conn = psycopg.connect(conninfo, autocommit=True)
                conn.execute("INSERT INTO acked VALUES (%s)", (next_id,))
                log.write(f"{next_id}\\n")
                log.flush()
                next_id += 1
            except psycopg.errors.UniqueViolation:
                # Committed before, its acknowledgement lost with the connection: move on
                # (only acknowledged ids are logged, and only they must survive).
                next_id += 1
            except psycopg.Error as exc:
                print(time.time(), type(exc).__name__, str(exc).strip()[:200], flush=True)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
    """
)


def test_host_loss_of_the_primary_loses_no_acknowledged_commit(
    main: Deployment, module_dir: Path
) -> None:
    primary = main.wait(lambda: healthy(main, "host4"), 120, "a healthy cluster")
    config = main.config
    hosts = ",".join(main.node(n).host for n in NODES)
    conninfo = (
        f"host={hosts} port=5432,5432,5432 user=postgres dbname=postgres "
        f"passfile={config.passfile} target_session_attrs=read-write connect_timeout=2 "
        f"sslmode=verify-full sslrootcert={config.ca_file} "
        # A client gives a connection up 2 s after its host went silent (a cut link sends
        # no reset), as an application's pool should.
        "tcp_user_timeout=2000 keepalives_idle=1 keepalives_interval=1 keepalives_count=2"
    )
    out, stop = module_dir / "main" / "acked.log", module_dir / "main" / "acked.stop"
    errors = module_dir / "main" / "writer.log"
    client = other_host(main, primary)
    with errors.open("w") as sink:
        writer = subprocess.Popen(
            main.hosts[client].argv(
                *as_user(main.user),
                sys.executable,
                "-c",
                WRITER,
                conninfo,
                str(out),
                str(stop),
                "100000",
            ),
            env=service_env(main.user),
            cwd="/",
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    host = main.host_of(primary)
    try:
        main.wait(lambda: out.exists() and len(out.read_text().split()) > 100, 60, "writes")
        main.hosts.network.cut(host)
        survivor = next(h for h in ("host4", *main.hosts.names) if h != host.name)

        def new_primary() -> str | None:
            found = leader_of(main.show(survivor))
            return found if found not in (None, primary) else None

        new = main.wait(new_primary, 60, "another node to lead")
        count = len(out.read_text().split())
        try:
            main.wait(lambda: len(out.read_text().split()) > count + 50, 60, "writes on " + new)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe writer said:\n{errors.read_text()[-3000:]}") from None
    finally:
        stop.touch()
        try:
            writer.wait(30)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait(10)
    acked = [int(i) for i in out.read_text().split()]
    found = {int(r[0]) for r in main.sql(new, "SELECT id FROM acked WHERE id >= 100000")}
    missing = sorted(set(acked) - found)
    assert not missing, f"{len(missing)} acknowledged commits lost, first {missing[:5]}"

    main.hosts.network.heal(host)  # the old primary comes back as a standby by itself
    assert main.wait(lambda: healthy(main, "host4"), 120, f"{primary} rejoined") == new


# ---- a cold start --------------------------------------------------------------------------


def cold_start(main: Deployment, power_off: bool) -> tuple[str, str]:
    """Every host down together (SIGTERM to every process, or SIGKILL), then up again in a
    shuffled order, a few seconds apart; returns the primary before and after, having checked that
    no two nodes ran as primaries at any moment it looked."""
    before = main.wait(lambda: healthy(main, "host4"), 120, "a healthy cluster")
    rows = main.sql(before, "SELECT count(*), max(id) FROM acked")[0]
    # All at once (a power cut, or every host shut down together): hosts stopped one by
    # one leave time for a failover in between, which is another test (host loss).
    main.shut_down(*NODES, power_off=power_off)
    order = list(NODES)
    random.shuffle(order)
    primaries_seen: list[list[str]] = []
    for name in order:
        main.boot(name)
        time.sleep(random.uniform(0, 3))
    deadline = time.monotonic() + 240
    after = None
    while time.monotonic() < deadline and after is None:
        data = main.show("host4")
        running = [
            r["name"]
            for r in data.get("nodes", [])
            if r.get("role") == "primary" and r.get("state") == "running"
        ]
        primaries_seen.append(running)
        after = healthy(main, "host4")
    assert after is not None, f"no healthy cluster after the cold start: {main.show('host4')}"
    assert all(len(seen) <= 1 for seen in primaries_seen), f"two primaries: {primaries_seen}"
    assert main.sql(after, "SELECT count(*), max(id) FROM acked")[0] == rows
    return before, after


def test_cold_start_in_a_shuffled_order(main: Deployment) -> None:
    before, after = cold_start(main, power_off=False)
    assert after == before, "the former primary, which holds every commit, leads again"


def test_cold_start_by_power_off_with_primary_start_timeout_0(main: Deployment) -> None:
    raw = json.loads(json.dumps(main.config.model_dump(mode="json")))
    raw["ha"]["primary_start_timeout"] = 0
    main.write_config(raw)  # read by each agent when its host boots
    before, after = cold_start(main, power_off=True)
    assert after == before, "the former primary, which holds every commit, leads again"


# ---- adding a node ----------------------------------------------------------------------------


def test_add_a_fourth_node_by_starting_its_agent(main: Deployment, module_dir: Path) -> None:
    """docs/deploy.md, "Add a node": the node in pgherd.yaml on every host, its secrets
    (``secrets init`` again: node4's token and certificate, the others kept), the agents
    reloaded (systemctl reload: SIGHUP), the new host's unit started. The same edit
    changes a setting: the reload applies it on every node, restarting nothing."""
    primary = main.wait(lambda: healthy(main, "host4"), 120, "a healthy cluster")
    raw = json.loads(json.dumps(main.config.model_dump(mode="json")))
    host4 = main.hosts["host4"]
    raw["nodes"].append(
        {
            "name": "node4",
            "host": host4.address,
            "api_host": host4.address,
            "data_dir": str(module_dir / "main" / "node4" / "data"),
        }
    )
    raw["settings"] = {**raw.get("settings", {}), "work_mem": "7MB"}
    started = {n: main.sql(n, "SELECT pg_postmaster_start_time()") for n in NODES}
    main.write_config(raw)
    secrets = json.loads(main.pgherd("secrets", "init", "--json", on="host1").stdout)
    made = {Path(f["path"]).name for f in secrets["files"] if f["action"] != "kept"}
    assert made == {"node4", "node4.crt", "node4.key", "api-grants.json"}, secrets
    for name in NODES:
        main.agents[name].reload()
    hba = main.node(primary).data_dir / "pg_hba.conf"
    main.wait(
        lambda: host4.address in hba.read_text(), 60, "the leader's pg_hba.conf to let node4 in"
    )
    for name in NODES:
        main.wait(lambda n=name: main.sql(n, "SHOW work_mem") == [["7MB"]], 30, "work_mem")

    # Its first copy is cut short (the agent killed half-way, on a slow link): the next
    # start removes what it left, says so once, and copies again.
    main.hosts.network.limit_rate(host4, "8mbit", inbound=True)
    main.start_agent("node4")
    main.wait(lambda: "bootstrap: cloning" in main.log("node4"), 120, "node4's copy to start")
    main.agents["node4"].kill()
    assert marker(main, "node4") == "clone"
    main.hosts.network.limit_rate(host4, None, inbound=True)
    main.start_agent("node4")
    members = (*NODES, "node4")
    assert main.wait(lambda: healthy(main, "host1", members), 240, "node4 streaming") == primary
    log = main.log("node4")
    assert f"a clone from {primary} did not finish" in log and "bootstrap: cloned" in log
    slots = main.sql(primary, "SELECT slot_name FROM pg_replication_slots WHERE active")
    assert ["node4"] in slots
    count = main.sql(primary, "SELECT count(*) FROM acked")
    main.wait(lambda: main.sql("node4", "SELECT count(*) FROM acked") == count, 30, "rows on node4")
    # The reloads restarted no PostgreSQL (and node4 streams from the same leader).
    assert {n: main.sql(n, "SELECT pg_postmaster_start_time()") for n in NODES} == started
    assert main.sql("node4", "SHOW work_mem") == [["7MB"]]


# ---- adopting a running primary that holds data ------------------------------------------------


def test_adopt_a_running_primary_with_its_data_and_pg_hba_lines(
    hosts: Hosts, module_dir: Path, os_user: osuser.OsUser, main: Deployment
) -> None:
    directory = module_dir / "adopted"
    os_user.make_dir(directory)
    data = directory / "a1" / "data"
    os_user.make_dir(data.parent)
    socket_dir = directory / "a1" / "sock"  # the operator's own socket directory
    os_user.make_dir(socket_dir)
    h1 = hosts["host1"]
    env = service_env(os_user)

    def as_postgres(*argv: str) -> None:
        subprocess.run(
            h1.argv(*as_user(os_user), *argv), env=env, cwd="/", check=True, capture_output=True
        )

    # The starting point of every replication guide: a primary with data, set up by hand.
    as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres")
    operator_line = f"host all app {hosts['host2'].address}/32 md5"
    with (data / "pg_hba.conf").open("a") as rules:
        rules.write(operator_line + "\n")
    as_postgres(
        str(PG_BIN / "pg_ctl"),
        "start",
        "-D",
        str(data),
        "-w",
        "-l",
        str(data.parent / "log"),
        "-o",
        f"-p 5433 -k {socket_dir}",
    )
    psql = ["psql", "-XAt", "-h", str(socket_dir), "-p", "5433", "-U", "postgres"]
    as_postgres(*psql, "-c", "CREATE TABLE orders (id int PRIMARY KEY)")
    as_postgres(*psql, "-c", "INSERT INTO orders SELECT generate_series(1, 500)")
    as_postgres(*psql, "-c", "CREATE ROLE app LOGIN PASSWORD 'app'")

    adopted = Deployment(hosts, directory / "pgherd.yaml", os_user)
    adopted.write_config(
        {
            "cluster": "adopted",  # a second cluster in the same etcd
            "passfile": str(directory / "secrets" / "pgpass"),
            "api_token_file": str(directory / "secrets" / "api-token"),
            "failover": "automatic",
            # The store is main's etcd: its CA and client certificate are main's.
            "ha": {"dcs": {**store_of(module_dir / "main", hosts), "ca": str(main.config.ca_file)}},
            "nodes": [
                {
                    "name": name,
                    "host": hosts[host].address,
                    # Two ports: these "hosts" share one filesystem, so one /var/run/postgresql
                    # (the operator's socket directory, which the adopted settings keep).
                    "port": port,
                    "api_host": hosts[host].address,
                    "api_port": 8009,
                    "data_dir": str(directory / name / "data"),
                }
                for name, host, port in (("a1", "host1", 5433), ("a2", "host2", 5434))
            ],
        }
    )
    adopted.pgherd("secrets", "init", on="host1")
    main_leader = healthy(main, "host4")
    try:
        dry = json.loads(
            adopted.pgherd("node", "adopt", "a1", "--dry-run", "--json", on="host1").stdout
        )
        changed = {s["name"] for s in dry["settings"]}
        assert "wal_log_hints" in changed and dry["restart"], dry
        assert not (data / "pgherd.conf").exists(), "the dry run changed something"

        adopted.start_agent("a2")  # any order: a2 waits for a1 to adopt its data
        adopted.start_agent("a1")
        adopted.wait(lambda: healthy(adopted, "host4", ("a1", "a2")) == "a1", 240, "a2 streaming")
        log = adopted.log("a1")
        assert "adopt: restarting PostgreSQL:" in log and "wal_log_hints" in log
        assert "initialised the cluster" not in log and "(initdb)" not in log
        assert adopted.sql("a2", "SELECT count(*) FROM orders") == [["500"]]
        for name in ("a1", "a2"):
            assert operator_line in (directory / name / "data" / "pg_hba.conf").read_text()
        roles = adopted.sql(
            "a1",
            "SELECT rolname FROM pg_roles WHERE rolname IN ('app', 'replicator') ORDER BY 1",
        )
        assert roles == [["app"], ["replicator"]]
        # The two clusters in one store never mixed: main kept its leader.
        assert healthy(main, "host4") == main_leader
        assert store_record(hosts, "adopted")["origin"] == "adopt"  # type: ignore[index]
    finally:
        adopted.stop_all()
        for name in ("a1", "a2"):
            subprocess.run(
                [
                    *as_user(os_user),
                    str(PG_BIN / "pg_ctl"),
                    "stop",
                    "-D",
                    str(directory / name / "data"),
                    "-m",
                    "immediate",
                ],
                env=env,
                cwd="/",
                capture_output=True,
                check=False,
            )
