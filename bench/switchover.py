"""Switchover and rejoin, measured as an application sees them.

1. Write unavailability of ``pgherd standby switchover``: a client commits one small row
   every 10 ms through a libpq multi-host connection string with
   ``target_session_attrs=read-write``; unavailability is the time from its first failed
   commit to its first successful commit afterwards. ``--runs`` switchovers back and forth
   on a 3-node lab, in alternation with the same client against a hand-run switchover
   with PostgreSQL's own tools on two plain servers (``pg_ctl stop -m fast``, wait for replay,
   ``pg_ctl promote -w``, ``pg_ctl start`` the old primary as a standby): the floor a
   script that knows exactly what to do reaches, without any checks.
2. ``pgherd node rejoin`` of an old primary that diverged after ~1% of a ~1 GB database
   changed on each side (``pgbench -i -s 70``, then 1% of pgbench_accounts updated):
   pg_rewind, against a full re-clone (``--force-clone``) of the same node.

    $VENV/bin/python -m bench.switchover [--runs 5] [--scale 70]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import common
from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.ha import status as status_mod
from pgherd.lab import layout, lifecycle
from pgherd.model.status import NodeStatus, PgState
from pgherd.pg import osuser, passfile, roles
from pgherd.pg.local_node import LocalNode
from pgherd.physical import clone

ROOT = Path("/var/tmp/pgherd-bench-switchover")


# ---- the client -------------------------------------------------------------------------


def multi_host(config: ClusterConfig) -> str:
    hosts = ",".join(n.host for n in config.nodes)
    ports = ",".join(str(n.port) for n in config.nodes)
    return (
        f"host={hosts} port={ports} user={config.superuser} dbname=postgres "
        f"passfile={config.passfile} target_session_attrs=read-write connect_timeout=2"
    )


# ---- pgherd switchover ------------------------------------------------------------------


def pgherd_switchover(lab: common.Lab, run: int, writer: common.Writer) -> dict[str, float]:
    target = "node2" if run % 2 == 0 else "node1"
    since = time.monotonic()
    seconds, done = common.timed(lambda: lab.cli("standby", "switchover", "--to", target, "--json"))
    paused = float(json.loads(done.stdout)["writes_paused_seconds"])
    writer.steady()
    gap = writer.unavailability(since)
    common.console.print(
        f"  pgherd switchover #{run + 1} to {target}: unavailable {gap:.3f} s, "
        f"writes paused {paused:.3f} s, command {seconds:.2f} s"
    )
    return {"unavailable": gap, "paused": paused, "command": seconds}


# ---- the same with PostgreSQL's own tools -----------------------------------------------


def plain_config(directory: Path, user: osuser.OsUser) -> ClusterConfig:
    base = common.free_port_base(2, (0,))
    config = layout.lab_config(directory, layout.LabShape(2, base, user.name, None))
    lifecycle.write_lab_files(config, directory / "pgherd.yaml", user)
    return config


def plain_pair(config: ClusterConfig) -> None:
    """Two servers started by pg_ctl (no agents): a primary and a streaming standby."""
    first = LocalNode.open(config, "node1")
    first.prepare_home()
    first.instance.initdb(passfile.password_for(config.passfile, config.superuser))
    first.write_config(upstream=None)
    first.instance.start()
    with first.instance.connect() as conn:
        roles.ensure_replication_role(
            conn,
            config.replication_user,
            passfile.password_for(config.passfile, config.replication_user),
        )
    clone.clone(config, "node2", _status(config, "node1"), False, lambda _p: None)
    LocalNode.open(config, "node2").instance.start()


def _status(config: ClusterConfig, name: str) -> NodeStatus:
    local = LocalNode.open(config, name)
    return status_mod.collect(local, PgState.RUNNING, "running", None, 0, None)


def manual_switchover(config: ClusterConfig, old: str, new: str) -> None:
    """What an operator's script does with pg_ctl; no checks, no slots."""
    old_node, new_node = LocalNode.open(config, old), LocalNode.open(config, new)
    old_node.instance.stop("fast")  # pg_ctl stop -m fast
    checkpoint = old_node.instance.controldata().checkpoint_lsn
    with new_node.instance.connect() as conn:
        while True:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() > %s::pg_lsn", (str(checkpoint),))
            if row.fetchone() == (True,):
                break
            time.sleep(0.01)
    new_node.instance.promote()  # pg_ctl promote -w
    with new_node.instance.connect() as conn:
        conn.execute(
            "SELECT pg_create_physical_replication_slot(%s, true) WHERE NOT EXISTS "
            "(SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
            (old, old),
        )
    old_node.write_config(upstream=config.node(new))
    old_node.instance.start()  # pg_ctl start -w


def manual_run(config: ClusterConfig, run: int, writer: common.Writer) -> dict[str, float]:
    old, new = ("node1", "node2") if run % 2 == 0 else ("node2", "node1")
    since = time.monotonic()
    seconds, _ = common.timed(lambda: manual_switchover(config, old, new))
    writer.steady()
    gap = writer.unavailability(since)
    common.console.print(
        f"  pg_ctl switchover #{run + 1} to {new}: unavailable {gap:.3f} s, script {seconds:.2f} s"
    )
    return {"unavailable": gap, "command": seconds}


def switchovers(lab: common.Lab, plain: Path, runs: int) -> dict[str, Any]:
    """pgherd and pg_ctl runs in alternation, each cluster with its own writer, so that
    load from elsewhere on the machine hits both alike."""
    config = plain_config(plain, osuser.resolve(common.OS_USER))
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    try:
        plain_pair(config)
        lab_config = config_mod.load(lab.config_path)
        with (
            common.Writer(multi_host(lab_config)) as lab_writer,
            common.Writer(multi_host(config)) as writer,
        ):
            lab_writer.steady()
            writer.steady()
            for run in range(runs):
                ours.append(pgherd_switchover(lab, run, lab_writer))
                theirs.append(manual_run(config, run, writer))
    finally:
        for node in config.nodes:
            LocalNode.open(config, node.name).instance.stop("immediate")
        common.reap()
    return {
        "pgherd": {
            "unavailable_s": common.summary([r["unavailable"] for r in ours]),
            "writes_paused_s": common.summary([r["paused"] for r in ours]),
            "command_s": common.summary([r["command"] for r in ours]),
        },
        "pg_ctl": {
            "unavailable_s": common.summary([r["unavailable"] for r in theirs]),
            "script_s": common.summary([r["command"] for r in theirs]),
        },
    }


# ---- rejoin: pg_rewind against a re-clone -----------------------------------------------


def start_after_rewind(server_log: Path) -> list[str]:
    """node1's server log from its start after pg_rewind to its first streaming: where the
    start goes (data directory sync, WAL restored from the archive, replay)."""
    lines = server_log.read_text().splitlines()
    begin = max(i for i, line in enumerate(lines) if "starting PostgreSQL" in line)
    return lines[begin:][:60]


def rejoin(lab: common.Lab, scale: int) -> dict[str, Any]:
    """node1 primary, node2 standby, node3 (if any) stopped. node2 misses 1% of
    updates on node1; node1 stops; node2 is promoted and updates another 1%; node1 rejoins
    by pg_rewind, then once more by a full clone."""
    primary = json.loads(lab.cli("cluster", "show", "--json", check=False).stdout)["primary"]
    if primary != "node1":
        lab.cli("standby", "switchover", "--to", "node1", "--siblings-follow")
    uri1, uri2 = lab.connstr("node1"), lab.connstr("node2")
    if "node3" in config_mod.load(lab.config_path).node_names:  # bench/scale.py: 2 nodes
        lab.cli("node", "stop", "node3")
    init_seconds = common.pgbench_init(uri1, scale)
    size = common.query(uri1, "SELECT pg_database_size('postgres')")[0][0]
    common.console.print(f"  pgbench -i -s {scale}: {size / 1e9:.2f} GB in {init_seconds:.0f} s")
    lsn = common.query(uri1, "SELECT pg_current_wal_lsn()::text")[0][0]
    deadline = time.monotonic() + 600
    while common.query(uri2, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]) != [(True,)]:
        if time.monotonic() > deadline:
            raise RuntimeError("node2 did not catch up with pgbench -i")
        time.sleep(0.5)
    common.query(uri1, "CHECKPOINT")
    common.query(uri2, "CHECKPOINT")
    lab.cli("node", "stop", "node2")
    # 1% of the rows, in one stretch of the table (a scattered 1% would touch most pages).
    accounts = scale * 100_000
    changed = common.query(
        uri1,
        "WITH u AS (UPDATE pgbench_accounts SET abalance = abalance + 1 "
        "WHERE aid <= %s RETURNING 1) SELECT count(*) FROM u",
        [accounts // 100],
    )[0][0]
    lab.cli("node", "stop", "node1")
    lab.cli("node", "start", "node2")
    lab.cli("standby", "promote", "node2")
    common.query(
        uri2,
        "UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid > %s AND aid <= %s",
        [accounts // 2, accounts // 2 + accounts // 100],
    )
    wal_bytes = common.query(uri2, "SELECT sum(size) FROM pg_ls_waldir()")[0][0]
    rewind_s, done = common.timed(lambda: lab.cli("node", "rejoin", "node1", "--json"))
    rewound = json.loads(done.stdout)
    if rewound["method"] != "rewind":
        raise RuntimeError(f"expected a rewind, got {rewound['method']}: {rewound['reason']}")
    recovery = start_after_rewind(config_mod.load(lab.config_path).node("node1").server_log)
    clone_s, done = common.timed(
        lambda: lab.cli("node", "rejoin", "node1", "--force-clone", "--json")
    )
    cloned = json.loads(done.stdout)
    step = {s["step"].split(" ")[0]: s["seconds"] for s in rewound["steps"]}
    copy = next(s for s in cloned["steps"] if s["step"].startswith("clone "))
    for done_step in rewound["steps"]:
        common.console.print(f"    {done_step['seconds']:7.3f} s  {done_step['step']}")
    common.console.print(
        f"  rejoin by pg_rewind {rewind_s:.1f} s (pg_rewind {step.get('pg_rewind', 0):.1f} s, "
        f"steps {sum(s['seconds'] for s in rewound['steps']):.1f} s, "
        f"command {rewound['seconds']:.1f} s); "
        f"by a new clone {clone_s:.1f} s (copy {copy['seconds']:.1f} s)"
    )
    return {
        "scale": scale,
        "database_bytes": size,
        "rows_changed_on_old_primary": changed,
        "rows_changed_on_new_primary": accounts // 100,
        "new_primary_pg_wal_bytes": int(wal_bytes),
        "pg_rewind_copied_mb": rewound["rewind"]["copied_mb"],
        "pgbench_init_s": round(init_seconds, 2),
        "rejoin_rewind_s": round(rewind_s, 3),
        "pg_rewind_s": step.get("pg_rewind"),
        "rejoin_clone_s": round(clone_s, 3),
        "clone_copy_s": copy["seconds"],
        "rewind_over_clone": round(rewind_s / clone_s, 4),
        "rejoin_command_s": rewound["seconds"],
        "server_log_after_rewind": recovery,
        "rejoin_steps": [
            {"step": s["step"], "seconds": s["seconds"], "detail": s["detail"]}
            for s in rewound["steps"]
        ],
    }


def set_on_every_node(lab: common.Lab, settings: list[str]) -> None:
    """``NAME=VALUE`` settings by ALTER SYSTEM and a reload: pg_basebackup and pg_rewind
    copy postgresql.auto.conf, so they stay with every node."""
    for text in settings:
        name, _, value = text.partition("=")
        statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(
            sql.Identifier(name.strip()), sql.Literal(value.strip())
        )
        for node in ("node1", "node2", "node3"):
            with psycopg.connect(lab.connstr(node), autocommit=True) as conn:
                conn.execute(statement)
                conn.execute("SELECT pg_reload_conf()")


# ---- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: ~1 GB)")
    parser.add_argument("--skip-rejoin", action="store_true")
    parser.add_argument(
        "--skip-switchover", action="store_true", help="the rejoin only (no switchover runs)"
    )
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="ALTER SYSTEM SET on every node after lab up (what a setting changes)",
    )
    parser.add_argument(
        "--archive",
        action="store_true",
        help="a lab with a WAL archive: less WAL kept, pg_rewind fetches from the archive",
    )
    args = parser.parse_args()
    common.become_subreaper()
    started = common.now()
    results: dict[str, Any] = {
        "machine": common.machine(),
        "load_before": common.load_average(),
        "archive": args.archive,
        "server_settings": args.server_setting,
    }
    with (
        common.fresh_directory(ROOT) as root,
        common.Lab(
            root / "lab",
            3,
            common.free_port_base(3),
            # Operations by hand, as the pg_ctl script does them: no HA loop acting beside
            # the rejoin scenario's stop and promote.
            extra=("--failover", "manual", *(("--archive",) if args.archive else ())),
        ) as lab,
    ):
        osuser.resolve(common.OS_USER).make_dir(root, mode=0o755)
        results["lab_up_s"] = round(lab.up(), 2)
        set_on_every_node(lab, args.server_setting)
        common.console.print(f"lab up in {results['lab_up_s']} s")
        if not args.skip_switchover:
            results |= switchovers(lab, root / "plain", args.runs)
        if not args.skip_rejoin:
            results["rejoin"] = rejoin(lab, args.scale)
    results["load_after"] = common.load_average()
    rows: list[list[object]] = []
    if "pgherd" in results:
        pg, manual = results["pgherd"], results["pg_ctl"]
        ratio = pg["unavailable_s"]["median"] / manual["unavailable_s"]["median"]
        results["unavailable_ratio_pgherd_over_pg_ctl"] = round(ratio, 3)
        rows += [
            [
                "switchover: write unavailability (median)",
                f"{pg['unavailable_s']['median']:.3f} s",
                f"{manual['unavailable_s']['median']:.3f} s",
                f"{ratio:.2f}×",
            ],
            [
                "switchover: whole command / script (median)",
                f"{pg['command_s']['median']:.2f} s",
                f"{manual['script_s']['median']:.2f} s",
                "",
            ],
        ]
    if "rejoin" in results:
        rj = results["rejoin"]
        rows.append(
            [
                f"rejoin after 1% changed ({rj['database_bytes'] / 1e9:.2f} GB): rewind vs clone",
                f"{rj['rejoin_rewind_s']:.1f} s",
                f"{rj['rejoin_clone_s']:.1f} s",
                f"{rj['rewind_over_clone']:.3f}×",
            ]
        )
    common.print_table(
        f"switchover and rejoin ({args.runs} runs)",
        ["measure", "pgherd", "baseline", "ratio"],
        rows,
    )
    path = common.write_json("switchover", results, started)
    common.console.print(f"results: {path}")


if __name__ == "__main__":
    main()
