"""Switchover, follow and events through the CLI against a 3-node lab.

Every test leaves the lab as it found it: node1 the primary, node2 and node3 streaming
from it.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.pg import osuser, tlsfiles
from pgherd.tls.context import client_context
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.e2e.ops_support import (
    Writer,
    cluster,
    primary_of,
    roles,
    slots_on,
    wait_healthy,
)
from tests.support import pgherd, query, wait_until

pytestmark = pytest.mark.e2e

LAYOUT = {
    "node1": ("primary", None),
    "node2": ("standby", "node1"),
    "node3": ("standby", "node1"),
}


@pytest.fixture(autouse=True)
def as_found(lab3: Lab) -> Iterator[None]:
    """Each test starts from, and must return to, node1 primary with two standbys."""
    wait_healthy(lab3)
    assert roles(lab3) == LAYOUT
    yield
    wait_healthy(lab3)
    assert roles(lab3) == LAYOUT


def switchover(lab: Lab, *args: str, check: bool = True) -> dict[str, object]:
    done = pgherd("standby", "switchover", *args, "--json", config=lab.config_path, check=check)
    result = json.loads(done.stdout) if done.stdout.strip() else {}
    result["exit"] = done.returncode
    result["stderr"] = done.stderr
    return result


def refused(lab: Lab, *args: str) -> str:
    done = pgherd(*args, config=lab.config_path, check=False)
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_dry_run_prints_the_checks_and_the_plan_and_changes_nothing(lab3: Lab) -> None:
    before = cluster(lab3)
    slots_before = slots_on(lab3.config, "node2")
    result = switchover(lab3, "--to", "node2", "--dry-run")
    assert result["exit"] == 0
    assert result["dry_run"] is True
    checks = result["checks"]
    assert isinstance(checks, list)
    assert all(c["ok"] for c in checks)
    plan = result["plan"]
    assert isinstance(plan, list)
    assert plan[2] == "stop node1 (fast shutdown: sessions end, shutdown checkpoint)"
    assert result["steps"] == []
    text = pgherd("standby", "switchover", "--to", "node2", "--dry-run", config=lab3.config_path)
    assert "✓ lag: node2 has replayed up to" in text.stdout
    assert "nothing was changed" in text.stdout
    after = cluster(lab3)
    assert {n: (r["role"], r["timeline"]) for n, r in after.items()} == {
        n: (r["role"], r["timeline"]) for n, r in before.items()
    }
    assert slots_on(lab3.config, "node2") == slots_before


def test_switchover_refusals_name_the_reason(lab3: Lab) -> None:
    assert refused(lab3, "standby", "switchover", "--to", "node1") == (
        "error: switchover refused: node1 is already the primary — name a standby: "
        "pgherd standby switchover --to STANDBY"
    )
    assert "unknown node 'node9' — known nodes: node1, node2, node3" in refused(
        lab3, "standby", "switchover", "--to", "node9"
    )
    pgherd("node", "stop", "node3", config=lab3.config_path)
    try:
        assert "switchover refused: node3 is stopped — start it first" in refused(
            lab3, "standby", "switchover", "--to", "node3"
        )
    finally:
        pgherd("node", "start", "node3", config=lab3.config_path)
    assert primary_of(lab3) == "node1"


def test_a_standby_whose_replay_is_paused_far_behind_is_refused_with_numbers(lab3: Lab) -> None:
    config = lab3.config
    query(config, "node3", "SELECT pg_wal_replay_pause()")
    try:
        query(
            config,
            "node1",
            "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad "
            "FROM generate_series(1, 20000) g",
        )
        lsn = query(config, "node1", "SELECT pg_current_wal_lsn()")[0][0]
        wait_until(
            lambda: query(config, "node3", "SELECT pg_last_wal_receive_lsn() >= %s", lsn)[0][0],
            what="node3 to receive the WAL",
        )
        line = refused(lab3, "standby", "switchover", "--to", "node3", "--max-lag", "1MB")
        assert "switchover refused: replay is paused on node3; node3 has replayed up to" in line
        assert "behind node1 at" in line
        assert "the limit is 1048576 bytes (1.0 MB)" in line
        assert "resume it: SELECT pg_wal_replay_resume() on node3" in line
    finally:
        query(config, "node3", "SELECT pg_wal_replay_resume()")
        query(config, "node1", "DROP TABLE IF EXISTS filler")


def test_switchover_under_writes_back_and_forth_three_times(lab3: Lab) -> None:
    config = lab3.config
    timelines: list[int] = []
    with Writer(config) as writer:
        writer.wait_for_more()
        for round_trip in range(3):
            for new, old in (("node2", "node1"), ("node1", "node2")):
                # Every other run points the third node at the new primary too.
                extra = ("--siblings-follow",) if round_trip % 2 == 0 else ()
                result = switchover(lab3, "--to", new, *extra)
                assert result["outcome"] == "succeeded", result
                timelines.append(int(str(result["timeline"])))
                paused = result["writes_paused_seconds"]
                assert isinstance(paused, float)
                now = roles(lab3)
                assert now[new] == ("primary", None)
                assert now[old] == ("standby", new), now
                writer.wait_for_more()
                missing = writer.missing_on(new)
                assert missing == set(), (
                    round_trip,
                    new,
                    {m: writer.ports[m] for m in missing},
                    {n.name: n.port for n in config.nodes},
                    result,
                )
                # The old primary streams from the new one and has every row too.
                wait_until(lambda o=old: writer.missing_on(o) == set(), what="rows on " + old)  # type: ignore[misc]
                assert old in slots_on(config, new)
    assert writer.failures > 0  # the writer did see each switchover
    assert timelines == sorted(timelines)
    assert len(set(timelines)) == 6
    # node3 followed the new primary on --siblings-follow runs and cascaded otherwise;
    # back where it started, it streams from node1 again.
    assert slots_on(config, "node1") == ["node2", "node3"]
    done = [e for e in events(lab3) if e["operation"] == "switchover"][-6:]
    assert [e["outcome"] for e in done] == ["succeeded"] * 6
    assert [(e["details"]["from"], e["details"]["to"]) for e in done[:2]] == [  # type: ignore[index]
        ("node1", "node2"),
        ("node2", "node1"),
    ]
    assert [int(e["details"]["timeline"]) for e in done] == timelines  # type: ignore[index]
    assert all(str(e["finished_at"]) >= str(e["started_at"]) for e in done)


def test_an_aborted_switchover_leaves_the_old_primary_writable(lab3: Lab) -> None:
    config = lab3.config
    # node2 receives WAL but holds back every commit for an hour: it cannot replay
    # node1's shutdown checkpoint, although its lag in bytes is tiny.
    query(config, "node2", "ALTER SYSTEM SET recovery_min_apply_delay = '1h'")
    query(config, "node2", "SELECT pg_reload_conf()")
    try:
        query(config, "node1", "CREATE TABLE delayed (id int)")
        before = cluster(lab3)
        result = switchover(lab3, "--to", "node2", "--timeout", "2", check=False)
        assert result["exit"] == 1
        assert result["outcome"] == "aborted"
        reason = str(result["reason"])
        assert reason.startswith("switchover aborted, nothing changed: node2 replayed up to ")
        assert "short of node1's shutdown checkpoint at " in reason
        assert "error: switchover aborted, nothing changed" in str(result["stderr"])
        steps = result["steps"]
        assert isinstance(steps, list)
        assert [s["step"] for s in steps][-2:] == [
            "start node1 again as the primary",
            "drop the slots created on node2",
        ]
        query(config, "node1", "INSERT INTO delayed VALUES (1)")  # writable
        after = cluster(lab3)
        for name in ("node1", "node2", "node3"):
            assert after[name]["role"] == before[name]["role"]
        assert after["node1"]["timeline"] == before["node1"]["timeline"]
        assert "node1" not in slots_on(config, "node2")
        latest = events(lab3)[-1]
        assert (latest["outcome"], latest["reason"]) == ("aborted", reason)
    finally:
        query(config, "node2", "ALTER SYSTEM RESET recovery_min_apply_delay")
        query(config, "node2", "SELECT pg_reload_conf()")
    wait_until(lambda: query(config, "node2", "SELECT count(*) FROM delayed") == [(1,)])


def test_follow_a_standby_then_the_primary_again(lab3: Lab) -> None:
    config = lab3.config
    done = pgherd(
        "standby", "follow", "node3", "--upstream", "node2", "--json", config=lab3.config_path
    )
    result = json.loads(done.stdout)
    assert (result["changed"], result["previous_upstream"]) == (True, "node1")
    assert roles(lab3)["node3"] == ("standby", "node2")
    assert "node3" in slots_on(config, "node2")
    assert "node3" not in slots_on(config, "node1")
    query(config, "node1", "CREATE TABLE cascaded (v text)")
    query(config, "node1", "INSERT INTO cascaded VALUES ('through node2')")
    wait_until(lambda: query(config, "node3", "SELECT v FROM cascaded"), what="cascaded row")
    assert refused(lab3, "standby", "follow", "node2", "--upstream", "node3").startswith(
        "error: follow refused: node3 → node2 streams from node2: following node3 would make a loop"
    )
    again = pgherd("standby", "follow", "node3", config=lab3.config_path)
    assert "node3 follows node1 (was node2)" in again.stdout
    assert "node3" not in slots_on(config, "node2")
    same = pgherd("standby", "follow", "node3", config=lab3.config_path)
    assert "node3 already follows node1" in same.stdout


def test_follow_across_clusters_is_refused(lab3: Lab, module_dir: Path) -> None:
    stranger = start_lab(module_dir / "stranger", 1)
    try:
        theirs = stranger.config.node("node1")
        data = lab3.config.model_dump(mode="json")
        data["nodes"].append(theirs.model_dump(mode="json") | {"name": "stranger", "home": None})
        both = module_dir / "with-stranger.yaml"
        both.write_text(config_mod.dump(config_mod.parse(data)))
        # Another cluster has another CA: its agent is not even believed.
        done = pgherd(
            "standby", "follow", "node3", "--upstream", "stranger", config=both, check=False
        )
        assert done.returncode == 1
        assert "is not who it should be" in done.stderr
        # Two clusters under one CA (an organisation's): the system identifiers tell.
        share_ca(lab3, stranger)
        done = pgherd(
            "standby", "follow", "node3", "--upstream", "stranger", config=both, check=False
        )
        assert done.returncode == 1
        ours = cluster(lab3)["node3"]["system_identifier"]
        assert "follow refused: stranger belongs to another cluster: its system identifier" in (
            done.stderr
        )
        assert f"differs from node3's {ours}" in done.stderr
    finally:
        stop_lab(stranger)


def share_ca(ours: Lab, theirs: Lab) -> None:
    """``theirs`` issued again from ``ours``'s CA, and restarted."""
    pgherd("lab", "down", "--dir", theirs.directory)
    config = theirs.config
    user = osuser.resolve(config.os_user)
    for name in ("ca.crt", "ca.key"):
        user.write_file(config.tls_dir / name, (ours.config.tls_dir / name).read_text())
    tlsfiles.ensure(config, user, tlsfiles.members(config), renew=True)
    pgherd("lab", "up", "--dir", theirs.directory)


def _https(lab: Lab, node: str) -> http.client.HTTPSConnection:
    config = lab.config
    target = config.node(node)
    assert config.ca_file is not None
    return http.client.HTTPSConnection(
        target.api_host, target.api_port, context=client_context(config.ca_file), timeout=5
    )


def test_acting_endpoints_need_the_token(lab3: Lab) -> None:
    for method, path in (
        ("POST", "/ops/promote"),
        ("POST", "/ops/slots?name=x"),
        ("POST", "/events"),
    ):
        conn = _https(lab3, "node2")
        conn.request(method, path)
        assert conn.getresponse().status == 401
        conn.close()
    conn = _https(lab3, "node2")
    conn.request("GET", "/wal")
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["role"] == "standby"
    conn.close()


def test_doctor_reports_a_slot_of_a_removed_node(lab3: Lab) -> None:
    config = lab3.config
    query(config, "node1", "SELECT pg_create_physical_replication_slot('node9', true)")
    try:
        done = pgherd("doctor", "--json", config=lab3.config_path, check=False)
        findings = json.loads(done.stdout)
        (orphan,) = [f for f in findings if f["check"] == "orphan-slot"]
        assert orphan["node"] == "node1"
        assert "inactive slot 'node9' belongs to no node in the config" in orphan["message"]
        assert "of WAL" in orphan["message"]
        assert "pg_drop_replication_slot('node9')" in orphan["fix"]
    finally:
        query(config, "node1", "SELECT pg_drop_replication_slot('node9')")


def events(lab: Lab) -> list[dict[str, object]]:
    found = json.loads(pgherd("cluster", "events", "--json", config=lab.config_path).stdout)
    assert isinstance(found, list)
    return found


def test_events_tell_who_asked_for_what_and_why_it_was_refused(lab3: Lab) -> None:
    refused(lab3, "standby", "switchover", "--to", "node1")
    switchover(lab3, "--to", "node2", "--dry-run")  # a dry run is not an event
    latest = events(lab3)[-1]
    assert (latest["operation"], latest["node"], latest["outcome"]) == (
        "switchover",
        "node1",
        "refused",
    )
    assert latest["reason"] == "switchover refused: node1 is already the primary"
    assert str(latest["requested_by"]).count("@") == 1
    # Standbys have the history too, by replication: it survives the loss of a node.
    rows = wait_until(
        lambda: (
            query(lab3.config, "node3", "SELECT count(*) FROM pg_database WHERE datname = 'pgherd'")
            == [(1,)]
        ),
        what="the events database on node3",
    )
    assert rows
    table = pgherd("cluster", "events", config=lab3.config_path).stdout
    assert "refused" in table


def test_lab_up_refuses_an_unknown_failover_mode(lab3: Lab, module_dir: Path) -> None:
    assert lab3.config.failover == "manual"
    done = pgherd("lab", "up", "--dir", module_dir / "auto", "--failover", "sometimes", check=False)
    assert done.returncode == 1
    assert "--failover 'sometimes' is not a mode" in done.stderr
    assert not (module_dir / "auto").exists()
