"""Promote when the primary is gone, and bring the old primary back with pg_rewind.

One scenario on one lab, in the order an operator lives it: promote is refused while
node1 runs; node1 writes what node2 never receives and stops; promoting node2 is refused
because node3 has more WAL, then forced; node1 rejoins by pg_rewind (not a new clone);
node3, diverged too, cannot follow and rejoins; a forced re-clone works as well.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from pgherd.clients.agent import AgentClient
from pgherd.clients.ops import OpsClient
from pgherd.config import ClusterConfig, read_token
from pgherd.errors import AgentUnreachable
from pgherd.lab import agents
from tests.e2e.conftest import Lab
from tests.e2e.ops_support import cluster, roles, slots_on, wait_healthy
from tests.support import pgherd, query, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def cli(lab: Lab, *args: str, check: bool = True) -> Any:
    done = pgherd(*args, "--json", config=lab.config_path, check=check)
    if not check and done.returncode != 0:
        return done.stderr.strip()
    return json.loads(done.stdout)


def refused(lab: Lab, *args: str) -> str:
    done = pgherd(*args, config=lab.config_path, check=False)
    assert done.returncode == 1, done.stdout
    return done.stderr.strip()


def restart_agent(lab: Lab, node: str) -> None:
    """Start the node's agent from a short-lived process, as ``lab up`` does (the agent
    outlives it and this process, a subreaper, reaps it in the end)."""
    code = (
        "import sys; from pathlib import Path; from pgherd import config; "
        "from pgherd.lab import agents; p = Path(sys.argv[1]); "
        "agents.spawn(p, config.load(p).node(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(lab.config_path), node], check=True)


def agent_error(config: ClusterConfig, node: str) -> str | None:
    try:
        status = AgentClient(config.node(node)).status()
    except AgentUnreachable:
        return None
    return status.error if status.state == "stopped" else None


def relation_file(config: ClusterConfig, node: str, table: str) -> os.stat_result:
    """The stat of a table's first data file on ``node``: pg_rewind changes what differs
    inside files it keeps, a new clone writes every file anew."""
    (path,) = query(config, node, "SELECT pg_relation_filepath(%s)", table)[0]
    return os.stat(config.node(node).data_dir / str(path))


def test_promote_refused_then_forced_then_rejoin_by_rewind(lab3: Lab) -> None:
    config = lab3.config
    wait_healthy(lab3)
    query(config, "node1", "CREATE TABLE untouched AS SELECT g FROM generate_series(1, 1000) g")
    query(config, "node1", "CREATE TABLE t (id int PRIMARY KEY, note text)")
    query(config, "node1", "INSERT INTO t VALUES (1, 'everyone has it')")
    wait_until(lambda: query(config, "node2", "SELECT count(*) FROM t") == [(1,)])

    assert refused(lab3, "standby", "promote", "node2") == (
        "error: promote refused: this cluster already has an active primary 'node1' — "
        "switch over instead: pgherd standby switchover --to node2 (or stop node1 first if "
        "it must go)"
    )
    assert roles(lab3)["node1"] == ("primary", None)

    # node2 misses what node1 writes next; node3 gets it. Then node1 goes away.
    pgherd("node", "stop", "node2", config=lab3.config_path)
    query(
        config,
        "node1",
        "INSERT INTO t SELECT g, 'only node1 and node3' FROM generate_series(2, 500) g",
    )
    wait_until(lambda: query(config, "node3", "SELECT count(*) FROM t") == [(500,)])
    before = relation_file(config, "node1", "untouched")
    pgherd("node", "stop", "node1", config=lab3.config_path)
    pgherd("node", "start", "node2", config=lab3.config_path)

    message = refused(lab3, "standby", "promote", "node2")
    assert "promote refused: node3 has WAL up to " in message
    assert "bytes more than node2" in message
    assert "promoting node2 loses them — promote node3 instead, or pass --force" in message

    promoted = cli(lab3, "standby", "promote", "node2", "--force")
    assert promoted["forced"] is True
    assert promoted["timeline_after"] == promoted["timeline_before"] + 1
    rows = cluster(lab3)
    assert rows["node2"]["role"] == "primary"
    assert rows["node2"]["timeline"] == promoted["timeline_after"]
    # The new primary made a slot for each other node at once, from the segment its new
    # timeline starts in: node1's keeps every segment node1 replays after pg_rewind,
    # however much node2 writes before node1 comes back.
    assert {"node1", "node3"} <= set(slots_on(config, "node2"))
    history = f"pg_wal/{promoted['timeline_after']:08X}.history"
    text = query(config, "node2", "SELECT pg_read_file(%s)", history)[0][0]
    switch = text.strip().splitlines()[-1].split("\t")[1]  # "1<TAB>0/3000060<TAB>reason"
    kept = query(  # the segment numbers: a slot keeps whole segments
        config,
        "node2",
        "SELECT substr(pg_walfile_name(restart_lsn), 9) <= substr(pg_walfile_name(%s::pg_lsn), 9) "
        "FROM pg_replication_slots WHERE slot_name = 'node1'",
        switch,
    )
    assert kept == [(True,)], (switch, slots_on(config, "node2"))
    query(config, "node2", "INSERT INTO t VALUES (1000, 'written on node2')")

    # node1's agent comes back (its host rebooted, say): it does not start a second primary.
    node1 = config.node("node1")
    agents.stop(node1)
    restart_agent(lab3, "node1")
    held = wait_until(lambda: agent_error(config, "node1"), what="node1's agent to answer")
    assert held == (
        f"not started: node2 is the primary now (timeline {promoted['timeline_after']}); "
        "bring this node back with pgherd node rejoin node1"
    )

    # node1 diverged: it holds rows 2..500 that node2 never had. A rejoin stops after
    # pg_rewind (its agent's rewind step alone, as when the operation died there)...
    token = read_token(config)
    OpsClient(config.node("node2"), token).checkpoint()
    rewound = OpsClient(config.node("node1"), token, timeout=300).rewind("node2")
    assert rewound.rewound is True
    assert rewound.diverged_at is not None
    # Its WAL ends where pg_rewind's copy of node2's ended (not "unknown", as after a crash).
    wal = OpsClient(config.node("node1"), token).wal()
    assert wal.running is False
    assert wal.timeline == promoted["timeline_after"]
    assert wal.lsn is not None, wal.unknown
    # ...and the next rejoin finds node1 rewound and only starts it as a standby: a second
    # pg_rewind would run crash recovery first, which writes a checkpoint record of node1's
    # own on node2's timeline.
    rejoined = cli(lab3, "node", "rejoin", "node1")
    assert rejoined["method"] == "follow", rejoined
    assert rejoined["fallback"] is None
    assert not any(s["step"].startswith("pg_rewind") for s in rejoined["steps"])
    after = relation_file(config, "node1", "untouched")
    assert after.st_ino == before.st_ino  # rewound in place, not copied anew
    assert roles(lab3)["node1"] == ("standby", "node2")
    wait_until(
        lambda: query(config, "node1", "SELECT array_agg(id ORDER BY id) FROM t") == [([1, 1000],)],
        what="node1 to hold exactly node2's rows",
    )
    # It replays what node2 writes after the rewind, too.
    query(config, "node2", "INSERT INTO t VALUES (1001, 'after the rejoin')")
    wait_until(
        lambda: query(config, "node1", "SELECT max(id) FROM t") == [(1001,)],
        what="node1 to replay node2's next write",
    )
    query(config, "node2", "DELETE FROM t WHERE id = 1001")
    assert "node1" in slots_on(config, "node2")

    # node3 diverged as well: follow refuses it and names the fix; rejoin repairs it.
    message = refused(lab3, "standby", "follow", "node3")
    assert message.startswith("error: follow refused: "), message
    assert message.endswith("pgherd node rejoin node3")
    third = cli(lab3, "node", "rejoin", "node3")
    assert third["method"] == "rewind", json.dumps(third)
    assert third["rewind"]["rewound"] is True
    assert third["fallback"] is None
    # The primary checkpoints right before pg_rewind (its control file then names its new
    # timeline, and the WAL it no longer keeps is gone before pg_rewind copies pg_wal).
    names = [s["step"] for s in third["steps"]]
    assert names.index("pg_rewind node3 from node2") == names.index("CHECKPOINT on node2") + 1
    # Its slot before both: the primary keeps the WAL the rewound node replays after.
    assert names.index("create slot node3 on node2") < names.index("CHECKPOINT on node2")
    assert roles(lab3) == {
        "node1": ("standby", "node2"),
        "node2": ("primary", None),
        "node3": ("standby", "node2"),
    }
    wait_until(lambda: query(config, "node3", "SELECT count(*) FROM t") == [(2,)])

    events = cli(lab3, "cluster", "events")
    promote = [e for e in events if e["operation"] == "promote"]
    # The second refusal came while no primary ran: there was nowhere to record it.
    assert [e["outcome"] for e in promote] == ["refused", "succeeded"]
    assert promote[-1]["details"]["timeline"] == str(promoted["timeline_after"])
    assert "forced: node3 has WAL up to" in promote[-1]["reason"]
    rejoins = [e for e in events if e["operation"] == "rejoin"]
    assert [(e["node"], e["details"]["method"]) for e in rejoins] == [
        ("node1", "follow"),
        ("node3", "rewind"),
    ]


def test_rejoin_with_force_clone_copies_the_node_anew(lab3: Lab) -> None:
    config = lab3.config
    wait_healthy(lab3)
    primary = next(n for n, (role, _) in roles(lab3).items() if role == "primary")
    standby = "node3" if primary != "node3" else "node1"
    query(config, primary, "CREATE TABLE IF NOT EXISTS kept (v int)")
    query(config, primary, "INSERT INTO kept VALUES (1)")
    marker = config.node(standby).data_dir / "left-by-the-test"
    marker.write_text("a clone empties the data directory first\n")
    result = cli(lab3, "node", "rejoin", standby, "--force-clone")
    assert result["method"] == "clone"
    assert not any(s["step"].startswith("CHECKPOINT") for s in result["steps"])  # no rewind
    assert not marker.exists()
    assert roles(lab3)[standby] == ("standby", primary)
    wait_until(lambda: query(config, standby, "SELECT count(*) FROM kept") == [(1,)])
    # Rejoining a standby that streams from the primary already does nothing.
    again = cli(lab3, "node", "rejoin", standby)
    assert again["reason"] == f"{standby} already streams from {primary}"
    assert again["steps"] == []
    assert again["seconds"] > 0


def wal_segments(config: ClusterConfig, node: str) -> list[str]:
    rows = query(
        config,
        node,
        "SELECT name FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' ORDER BY name",
    )
    return [r[0] for r in rows]


def test_rejoin_clones_when_the_primary_recycled_the_wal_a_rewound_node_needs(lab3: Lab) -> None:
    """A new primary that made no slot for the old one (a promotion by an older pgherd,
    the slot dropped) and wrote past wal_keep_size before the old primary came back:
    pg_rewind succeeds, but the rewound node can never become consistent. The rejoin
    sees that within seconds and clones the node instead (at 20 GB it used to fail)."""
    config = lab3.config
    wait_healthy(lab3)
    old = next(n for n, (role, _) in roles(lab3).items() if role == "primary")
    new, other = sorted(n for n in ("node1", "node2", "node3") if n != old)
    query(config, old, "CREATE TABLE IF NOT EXISTS gone (id int PRIMARY KEY)")
    wait_until(lambda: query(config, new, "SELECT to_regclass('gone') IS NOT NULL") == [(True,)])
    # `new` misses what `old` writes next (`other` gets it); then `old` goes away.
    pgherd("node", "stop", new, config=lab3.config_path)
    query(config, old, "INSERT INTO gone SELECT generate_series(1, 100)")
    pgherd("node", "stop", old, config=lab3.config_path)
    pgherd("node", "start", new, config=lab3.config_path)
    promoted = cli(lab3, "standby", "promote", new, "--force")
    try:
        # No slot holds the new timeline's first segments, nor does wal_keep_size.
        for slot in (old, other):
            query(config, new, "SELECT pg_drop_replication_slot(%s)", slot)
        query(config, new, "ALTER SYSTEM SET wal_keep_size = 0")
        query(config, new, "SELECT pg_reload_conf()")
        first = f"{promoted['timeline_after']:08X}"
        start = min(s for s in wal_segments(config, new) if s.startswith(first))
        for _ in range(4):
            query(config, new, "INSERT INTO gone SELECT generate_series(1000, 1100)")
            query(config, new, "DELETE FROM gone WHERE id >= 1000")
            query(config, new, "SELECT pg_switch_wal()")
            query(config, new, "CHECKPOINT")
        assert min(wal_segments(config, new)) > start

        rejoined = cli(lab3, "node", "rejoin", old)
        assert rejoined["method"] == "clone", json.dumps(rejoined)
        names = [s["step"] for s in rejoined["steps"]]
        assert f"pg_rewind {old} from {new}" in names
        assert rejoined["fallback"].startswith(f"{old} did not start after pg_rewind (")
        assert "no longer has WAL segment" in rejoined["fallback"]
        assert rejoined["fallback"].endswith("; cloned instead")
        assert roles(lab3)[old] == ("standby", new)
        # `other` has the rows `new` never had: it rejoins the same way.
        assert cli(lab3, "node", "rejoin", other)["method"] == "clone"
        wait_until(lambda: query(config, old, "SELECT count(*) FROM gone") == [(0,)])
        wait_until(lambda: query(config, other, "SELECT count(*) FROM gone") == [(0,)])
    finally:
        query(config, new, "ALTER SYSTEM RESET wal_keep_size")
        query(config, new, "SELECT pg_reload_conf()")
    # The lab as the module's other tests expect it: `old` the primary again.
    pgherd("standby", "switchover", "--to", old, "--siblings-follow", config=lab3.config_path)
    assert roles(lab3)[old] == ("primary", None)
