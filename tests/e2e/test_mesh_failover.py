"""A mesh member that is an HA cluster keeps working through its failover.

Two members: ``lab``, a 3-node cluster (automatic failover, synchronous mode) named by its
``cluster:``, and ``solo``, one primary of another pgherd.yaml; each config names the other
in ``peers:``. Both members write; the host of ``lab``'s primary is killed (its agent and
postmaster, as a host loss); the new primary's agent starts the workers that apply into
``lab``, ``solo``'s worker follows the new primary through its multi-host connection and
reads the standby's copy of its slot; writes go on on both. Then ``mesh verify`` is clean,
both members hold every acknowledged row, and no conflict was recorded (a transaction
applied twice would have met its own rows: ``insert_exists``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from pgherd.config import ClusterConfig
from pgherd.pg import osuser
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.e2e.mesh_support import (
    LOAD_TABLE,
    Nodes,
    conflicts,
    mesh_json,
    primaries,
    wait_converged,
)
from tests.e2e.mesh_support import (
    diagnosis as mesh_diagnosis,
)
from tests.e2e.ops_support import multi_host_conninfo, primary_of
from tests.e2e.test_failover import kill_host, other_primary, tails
from tests.e2e.test_failover_slots import copy_ready, standbys
from tests.support import InBackground, query, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESH = "shop"
TABLE = "items"
PROGRESS = "SELECT pg_replication_origin_progress(%s, false)::text"


@dataclass(frozen=True)
class Members:
    east: Lab  # member "lab": a primary, two standbys, automatic failover
    solo: Nodes  # member "solo": one primary of its own pgherd.yaml

    @property
    def lab(self) -> Nodes:
        """The HA member as the mesh helpers take it (its config; mesh commands run here)."""
        return Nodes(self.east.config, self.east.config_path)


@pytest.fixture(scope="module")
def members(module_dir: Path, os_user: osuser.OsUser) -> Iterator[Members]:
    east = start_lab(module_dir / "east", 3, "--failover", "automatic", "--sync")
    try:
        solo_dir = module_dir / "solo"
        os_user.make_dir(solo_dir)
        with primaries(solo_dir, os_user, 1, cluster="solo", peers=[str(east.config_path)]) as solo:
            declared = yaml.safe_load(east.config_path.read_text())
            declared["peers"] = [str(solo.path)]
            east.config_path.write_text(yaml.safe_dump(declared))
            yield Members(east, solo)
    finally:
        stop_lab(east)


@dataclass
class KeyWriter(InBackground):
    """Inserts rows with keys of its own into one member, one every 10 ms, through every
    node of it (``target_session_attrs=read-write``: after a failover, the new primary);
    remembers the keys whose commit was acknowledged."""

    config: ClusterConfig
    origin: str
    base: int
    acknowledged: list[int] = field(default_factory=list)

    def work(self, stop: threading.Event) -> None:
        key = self.base
        conn: psycopg.Connection[Any] | None = None
        insert = f"INSERT INTO {TABLE} (id, n, origin) VALUES (%s, 0, %s)"  # noqa: S608
        while not stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(multi_host_conninfo(self.config), autocommit=True)
                conn.execute(insert, (key, self.origin))
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
            else:
                self.acknowledged.append(key)
            key += 1  # a key whose commit is unknown is never used again
            time.sleep(0.01)
        if conn is not None:
            conn.close()

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """``count`` more acknowledged rows than now."""
        goal = len(self.acknowledged) + count
        wait_until(lambda: len(self.acknowledged) >= goal, timeout, f"writes on {self.origin}")


def keys(config: ClusterConfig, node: str) -> set[int]:
    return {int(r[0]) for r in query(config, node, f"SELECT id FROM {TABLE}")}  # noqa: S608


def pairs_running(nodes: Nodes) -> dict[tuple[str, str], dict[str, Any]] | None:
    code, data = mesh_json(nodes, "status", MESH)
    if code != 0 or not data:
        return None
    found = {(p["source"], p["target"]): p for p in data["pairs"]}
    return found if all(p.get("state") == "running" for p in found.values()) else None


def diagnosis(members: Members) -> str:
    """The pairs and the end of every worker's log, both members."""
    lines = [mesh_diagnosis(members.lab, MESH)]
    for log in sorted(members.solo.config.nodes[0].home_dir.glob(f"mesh/{MESH}.from-*.log")):
        lines.append(f"== solo {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:]))
    return "\n".join(lines)


def test_a_cluster_member_fails_over_under_writes_and_the_mesh_loses_and_repeats_nothing(
    members: Members,
) -> None:
    east, solo, lab = members.east, members.solo, members.lab
    primary = primary_of(east)
    query(east.config, primary, LOAD_TABLE.format(TABLE))
    solo.sql("node1", LOAD_TABLE.format(TABLE))
    lab.cli("mesh", "create", MESH, "--nodes", "lab,solo", "--tables", TABLE)
    running = wait_until(lambda: pairs_running(lab), 60, "both workers running")
    assert running is not None
    assert set(running) == {("lab", "solo"), ("solo", "lab")}
    # Every node of the cluster member keeps the spec; only its primary's agent applies.
    for each in east.config.nodes:
        assert (each.home_dir / "mesh" / f"{MESH}.json").is_file(), each.name
    # The standbys keep a copy of the slot that solo reads, safe to use after a failover,
    # and the origin that records what solo's changes the member applied.
    for node in standbys(east):
        wait_until(
            lambda n=node: copy_ready(east, n, f"pgherd_{MESH}_solo"),  # type: ignore[misc]
            timeout=60,
            what=f"the copy of pgherd_{MESH}_solo on {node} to be safe for a failover",
        )
        origins = query(east.config, node, "SELECT roname FROM pg_replication_origin")
        assert (f"pgherd_{MESH}_solo",) in origins
    with (
        KeyWriter(east.config, "lab", 1_000_000_000) as on_lab,
        KeyWriter(solo.config, "solo", 2_000_000_000) as on_solo,
    ):
        on_lab.wait_for(50)
        on_solo.wait_for(50)
        # The origin's position reaches the standbys with the commits that move it.
        for node in standbys(east):
            seen = query(east.config, node, PROGRESS, f"pgherd_{MESH}_solo")
            assert seen[0][0] not in (None, "0/0"), (node, seen)
        kill_host(east, primary)
        new = other_primary(east, primary)
        # writes go on, on both members, after the failover
        on_lab.wait_for(50)
        on_solo.wait_for(50)
    try:
        after = wait_until(lambda: pairs_running(lab), 60, "both workers running again")
    except AssertionError:
        raise AssertionError(f"{diagnosis(members)}\n{tails(east, new, 40)}") from None
    assert after is not None
    assert after[("solo", "lab")]["pid"] != running[("solo", "lab")]["pid"]
    try:
        wait_converged(lab, MESH, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnosis(members)}") from None
    on_new, on_solo_node = keys(east.config, new), keys(solo.config, "node1")
    assert on_new == on_solo_node
    # Nothing acknowledged is lost: the synchronous standby had every commit on lab, and
    # solo's slot on lab's new primary starts where solo had applied up to.
    for writer in (on_lab, on_solo):
        missing = set(writer.acknowledged) - on_new
        assert not missing, (writer.origin, sorted(missing)[:5])
    # Nothing applied twice: a transaction applied again would have met its own rows.
    assert conflicts(lab, MESH) == []
    # The new primary's worker started where the old primary's commits had moved the
    # origin (WAL-logged with each commit, replayed on the standby), not from the start.
    log = east.config.node(new).home_dir / "mesh" / f"{MESH}.from-solo.log"
    started = [line for line in log.read_text().splitlines() if "applying solo → lab" in line]
    assert started, log.read_text()
    assert not started[0].endswith("from 0/0"), started
    # The old primary's host is still down: the drop says so, and drops the rest.
    dropped = lab.cli("mesh", "drop", MESH)
    assert f"{primary}: not reached" in dropped.stdout, dropped.stdout
    assert not (east.config.node(new).home_dir / "mesh" / f"{MESH}.json").exists()
