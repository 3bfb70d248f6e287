"""Logical replication that survives a failover of its publisher: a 3-node HA cluster
(automatic failover, synchronous, a witness) publishes to a subscriber in another lab
through a multi-host URI. The standbys' agents keep copies of the primary's logical slots
(and of a permanent slot declared in pgherd.yaml); the primary's host is killed while a
client writes; the subscription follows the new primary, and its rows are the new
primary's: none lost, none applied twice (a primary key would stop it). Then permanent slots
removed from pgherd.yaml are dropped on every node where pgherd made them (the new primary's
copy too), and a slot made by hand is left."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pgherd.clients.agent import AgentClient
from pgherd.lab import agents
from pgherd.pg import osuser, process
from pgherd.pg.local_node import LocalNode
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.e2e.ops_support import Writer, primary_of
from tests.e2e.test_failover import kill_host, other_primary, tails
from tests.support import pgherd, query, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass(frozen=True)
class Labs:
    publisher: Lab
    subscriber: Lab


@pytest.fixture(scope="module")
def labs(module_dir: Path) -> Iterator[Labs]:
    publisher = start_lab(
        module_dir / "pub",
        3,
        "--failover",
        "automatic",
        "--sync",
        "--witness",
        spread=(0, 1000, 2000, 3000),
    )
    try:
        subscriber = start_lab(module_dir / "sub", 1, "--independent")
    except BaseException:
        stop_lab(publisher)
        raise
    yield Labs(publisher, subscriber)
    stop_lab(subscriber)
    stop_lab(publisher)


def standbys(lab: Lab) -> list[str]:
    primary = primary_of(lab)
    return [n for n in lab.config.node_names if n != primary]


def slots(lab: Lab, node: str) -> dict[str, str | None]:
    rows = query(lab.config, node, "SELECT slot_name, slot_type FROM pg_replication_slots")
    return {str(name): kind for name, kind in rows}


def publisher_uri(lab: Lab) -> str:
    """The whole publishing cluster, as a subscription follows it: every node, the one that
    takes writes chosen by libpq (target_session_attrs=read-write), TLS verified."""
    config = lab.config
    hosts = ",".join(f"{n.host}:{n.port}" for n in config.nodes)
    query_string = "target_session_attrs=read-write"
    if config.ca_file is not None:
        query_string += f"&sslmode=verify-full&sslrootcert={config.ca_file}"
    return f"postgresql://{config.replication_user}@{hosts}/postgres?{query_string}"


def subscriber_passfile(labs: Labs, directory: Path) -> Path:
    """The publishing cluster's replication password, for the subscriber's worker: a
    passfile it owns (the postgres OS user), mode 0600."""
    pub = labs.publisher.config
    password = next(
        line.rsplit(":", 1)[1]
        for line in pub.passfile.read_text().splitlines()
        if f":{pub.replication_user}:" in line
    )
    lines = [f"{n.host}:{n.port}:*:{pub.replication_user}:{password}" for n in pub.nodes]
    path = directory / "publisher.pgpass"
    user = osuser.resolve(pub.os_user)
    user.write_file(path, "\n".join(lines) + "\n")
    return path


def running(lab: Lab) -> list[str]:
    """The nodes whose agent runs (a host the failover test killed stays down)."""
    return [n.name for n in lab.config.nodes if agents.running_agent(n) is not None]


def reload_agents(lab: Lab) -> None:
    for name in running(lab):
        pid = agents.running_agent(lab.config.node(name))
        assert pid is not None
        process.signal_pid(pid, signal.SIGHUP)


def declare_slots(lab: Lab, slots: dict[str, dict[str, str]]) -> None:
    """``slots:`` in pgherd.yaml as given, and the running agents reloaded."""
    declared = yaml.safe_load(lab.config_path.read_text())
    declared["slots"] = slots
    lab.config_path.write_text(yaml.safe_dump(declared))
    reload_agents(lab)


CDC = {"type": "logical", "database": "postgres", "plugin": "pgoutput"}


def gauge_set(lab: Lab, node: str, metric: str, slot: str) -> bool:
    """The agent's /metrics shows gauge ``metric`` at 1 for ``slot`` (the slot gauges'
    "yes": ``pgherd_slot_copy_ready``, ``pgherd_slot_drop_waiting``)."""
    page = AgentClient(lab.config.node(node)).metrics()
    return any(
        sample.name == metric and sample.labels.get("slot") == slot and sample.value == 1
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    )


def copy_ready(lab: Lab, node: str, slot: str) -> bool:
    """The standby's /metrics says a failover there could use its copy of ``slot``."""
    return gauge_set(lab, node, "pgherd_slot_copy_ready", slot)


def rows(lab: Lab, node: str) -> set[int]:
    return {int(r[0]) for r in query(lab.config, node, "SELECT id FROM writes")}


def test_a_subscription_and_a_permanent_slot_survive_a_failover_under_writes(
    labs: Labs, module_dir: Path
) -> None:
    pub, sub = labs.publisher, labs.subscriber
    primary = primary_of(pub)
    # a permanent slot for a consumer outside pgherd (a CDC tool), declared in pgherd.yaml
    declare_slots(pub, {"cdc": CDC})
    query(pub.config, primary, "CREATE TABLE writes (id bigint PRIMARY KEY)")
    pgherd("publication", "create", "writes_pub", "--node", primary, "--tables", "writes",
           config=pub.config_path)  # fmt: skip
    passfile = subscriber_passfile(labs, module_dir)
    pgherd(
        "subscription", "create", "writes_sub", "--node", "node1", "--from", publisher_uri(pub),
        "--publication", "writes_pub", "--sync-schema", "--passfile", str(passfile),
        config=sub.config_path,
    )  # fmt: skip
    # Every standby keeps a copy of the subscription's slot and of the permanent one.
    for node in standbys(pub):
        wait_until(
            lambda n=node: {"writes_sub", "cdc"} <= set(slots(pub, n)),  # type: ignore[misc]
            timeout=60,
            what=f"copies of the logical slots on {node}",
        )
    assert slots(pub, primary)["cdc"] == "logical"
    # ... and each copy becomes safe for a failover: the primary keeps its catalog rows
    for node in standbys(pub):
        wait_until(
            lambda n=node: copy_ready(pub, n, "writes_sub"),  # type: ignore[misc]
            timeout=30,
            what=f"the copy of writes_sub on {node} to be safe for a failover",
        )
    with Writer(pub.config, table="writes") as writer:
        time.sleep(3)
        kill_host(pub, primary)
        new = other_primary(pub, primary)
        time.sleep(5)
    assert writer.acknowledged, "the writer wrote nothing"
    acknowledged = set(writer.acknowledged)
    published = rows(pub, new)
    # Synchronous mode: every acknowledged row is on the new primary.
    assert acknowledged <= published, sorted(acknowledged - published)[:5]

    def caught_up() -> bool:
        return rows(sub, "node1") == rows(pub, new)

    try:
        wait_until(caught_up, timeout=90, what="the subscriber to follow the new primary")
    except AssertionError:
        status = pgherd(
            "subscription", "status", "writes_sub", "--node", "node1", config=sub.config_path,
            check=False,
        )  # fmt: skip
        raise AssertionError(
            f"{status.stdout}\n{status.stderr}\n{tails(pub, new)}\n{tails(sub, 'node1')}"
        ) from None
    assert len(rows(sub, "node1")) > len(acknowledged) // 2
    # The permanent slot exists on whichever node leads now.
    assert slots(pub, new).get("cdc") == "logical"


@contextlib.contextmanager
def consumer(lab: Lab, node: str, slot: str) -> Iterator[subprocess.Popen[bytes]]:
    """A client that streams WAL through physical ``slot`` (pg_receivewal, as an archiver
    would), as the OS user postgres over the local socket, until the block ends."""
    local = LocalNode.open(lab.config, node)
    into = lab.directory / f"receivewal-{slot}"
    local.user.make_dir(into)
    argv = [
        str(local.pgbin["pg_receivewal"]),
        "-h", str(local.node.socket_dir), "-p", str(local.node.port),
        "-U", lab.config.superuser, "-S", slot, "-D", str(into), "--no-loop", "-n",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        user=local.user.uid,
        group=local.user.gid,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def waiting(lab: Lab, node: str, slot: str) -> bool:
    """The agent's /metrics says removed slot ``slot`` waits for its consumer."""
    return gauge_set(lab, node, "pgherd_slot_drop_waiting", slot)


def test_permanent_slots_removed_from_the_config_are_dropped_where_pgherd_made_them(
    labs: Labs,
) -> None:
    """After the failover above (alone it works too, with one more copy): the new primary's
    ``cdc`` is the copy its agent made as a standby, recorded in the store as pgherd's, so
    it is dropped like the physical slot pgherd made — that one once its consumer
    disconnects; a slot made by hand and then declared stays on the primary (its copies on
    the standbys were pgherd's, and go)."""
    pub = labs.publisher
    primary = primary_of(pub)
    nodes = running(pub)
    assert len(nodes) >= 2, nodes
    query(pub.config, primary, "SELECT pg_create_physical_replication_slot('by_hand')")
    physical = {"type": "physical"}
    declare_slots(pub, {"cdc": CDC, "pgherd_made": physical, "by_hand": physical})
    declared = {"cdc": "logical", "pgherd_made": "physical", "by_hand": "physical"}
    for node in nodes:
        wait_until(
            lambda n=node: declared.items() <= slots(pub, n).items(),  # type: ignore[misc]
            timeout=60,
            what=f"the permanent slots and their copies on {node}",
        )
    with consumer(pub, primary, "pgherd_made") as reader:
        active = "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgherd_made'"
        try:
            wait_until(lambda: query(pub.config, primary, active) == [(True,)], what="in use")
        except AssertionError as exc:
            reader.terminate()
            raise AssertionError(f"{exc}: {reader.communicate(timeout=10)[1]!r}") from None
        declare_slots(pub, {})
        try:
            wait_until(lambda: waiting(pub, primary, "pgherd_made"), what="a wait for the consumer")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{tails(pub, primary, 40)}") from None
        assert "pgherd_made" in slots(pub, primary)
        report = pgherd("doctor", "--json", config=pub.config_path, check=False)
        assert '"removed-slot-in-use"' in report.stdout, report.stdout
        # nobody reads cdc: dropped at once
        wait_until(lambda: "cdc" not in slots(pub, primary), what="cdc dropped on the primary")
        assert "pgherd_made" in slots(pub, primary)
    for node in nodes:
        left = {"by_hand"} if node == primary else set()
        wait_until(
            lambda n=node, k=left: set(declared) & set(slots(pub, n)) == k,  # type: ignore[misc]
            timeout=30,
            what=f"the removed slots pgherd made to be dropped on {node}, and no other",
        )
    assert not waiting(pub, primary, "pgherd_made")
    query(pub.config, primary, "SELECT pg_drop_replication_slot('by_hand')")
