"""The WAL archive, base backups and point-in-time recovery, end to end.

One lab with ``--archive`` serves the module: PostgreSQL itself runs ``pgherd wal push``
as archive_command and ``pgherd wal fetch`` as restore_command (as the OS user
``postgres``). Tests run in file order: the history of rows and targets is written once,
restores read it, and the destructive steps (corruption, retention, a second timeline)
come last.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgherd.archive.backup_bundled import end_segment
from pgherd.archive.catalog import Archive
from pgherd.errors import ArchiveMismatch
from pgherd.model.lsn import Lsn
from pgherd.pg import binaries, hba, osuser, process
from pgherd.pg.archive_commands import pgherd_program, push_command
from pgherd.pg.instance import Instance
from pgherd.pg.run import run
from tests.conftest import free_port_base
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.support import connect, pgherd, pgherd_listing_imports, query, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(module_dir: Path) -> Iterator[Lab]:
    lab = start_lab(module_dir / "lab", 2, "--archive")
    yield lab
    for restored in module_dir.glob("r-*"):
        stop_restored(restored)
    stop_lab(lab)


def cli(lab: Lab, *args: str, check: bool = True) -> Any:
    return pgherd(*args, config=lab.config_path, check=check)


def cli_json(lab: Lab, *args: str) -> Any:
    return json.loads(cli(lab, *args, "--json").stdout)


def quick_json(lab: Lab, module_dir: Path, *args: str) -> tuple[float, Any]:
    """(the wall time of ``pgherd ARGS --json`` as the installed program runs it, what it
    printed), checked to have taken the quick path: neither Typer, pydantic nor rich
    imported (the config cache was filled by an earlier command, as on a server where the
    file does not change)."""
    env = {"PGHERD_CACHE_DIR": str(module_dir / "cache"), "PGHERD_CONFIG_CACHE": "on"}
    config = ("-c", str(lab.config_path))
    pgherd_listing_imports(module_dir / "warm.json", "connstr", "node1", *config, env=env)
    started = time.monotonic()
    run = pgherd_listing_imports(module_dir / "imports.json", *args, "--json", *config, env=env)
    wall = time.monotonic() - started
    assert run.code == 0, run.stderr
    assert run.heavy == [], run.heavy
    return wall, json.loads(run.stdout)


def assert_phases(printed: Any, wall: float, expected: tuple[str, ...]) -> None:
    """``phases`` names what ran, each timed, together within the command's wall time."""
    phases = printed["phases"]
    assert set(expected) <= set(phases), phases
    assert all(isinstance(v, float) and v >= 0 for v in phases.values()), phases
    assert 0 < sum(phases.values()) <= wall, (phases, wall)


def archive_root(lab: Lab) -> Path:
    config = lab.config
    assert config.archive is not None
    assert config.archive.path is not None
    return config.archive.path


def archive_of(lab: Lab) -> Archive:
    return Archive.local(archive_root(lab))


def switch_and_wait(lab: Lab, node: str = "node1") -> str:
    """Close the current segment and wait until PostgreSQL has archived it."""
    segment = cli_json(lab, "wal", "switch", "--node", node)["segment"]
    wait_until(lambda: archive_of(lab).wal.find(segment), what=f"{segment} archived")
    return str(segment)


def stop_restored(directory: Path) -> None:
    pm = process.running_postmaster(directory)
    if pm is not None:
        process.signal_pid(pm.pid, signal.SIGQUIT)
        process.wait_gone(pm.pid, 10)


def restored(directory: Path, port: int) -> psycopg.Connection[Any]:
    """A connection to a restored server over its socket (peer, as the OS user's map)."""
    return psycopg.connect(
        host=str(directory), port=port, user="postgres", dbname="postgres", autocommit=True
    )


def restored_rows(directory: Path, port: int) -> list[str]:
    with restored(directory, port) as conn:
        return [r[0] for r in conn.execute("SELECT tag FROM events ORDER BY id").fetchall()]


def restore(lab: Lab, module_dir: Path, name: str, *target: str, check: bool = True) -> Any:
    into = module_dir / f"r-{name}"
    port = free_port_base(1)
    started = time.monotonic()
    done = cli(
        lab, "restore", "--into", str(into), "--port", str(port), *target, "--json", check=check
    )
    if not check:
        return done
    result = json.loads(done.stdout)
    assert_phases(result, time.monotonic() - started, ("cli_start", "plan", "settings"))
    return into, port, result


# ---- archiving as PostgreSQL does it ---------------------------------------------------


def test_postgres_archives_through_pgherd_as_its_os_user(lab: Lab) -> None:
    settings = dict(
        query(
            lab.config,
            "node1",
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('archive_mode', 'archive_command', 'restore_command')",
        )
    )
    assert settings["archive_mode"] == "on"
    assert settings["archive_command"].startswith(pgherd_program()[0])
    assert " wal push %p --spool " in settings["archive_command"]
    assert " wal fetch %f %p --spool " in settings["restore_command"]
    segment = switch_and_wait(lab)
    (found,) = archive_of(lab).wal.find(segment)
    stored = archive_root(lab) / found.key
    assert stored.stat().st_uid == osuser.resolve("postgres").uid
    assert stored.stat().st_mode & 0o777 == 0o600
    again = cli(lab, "archive", "init").stdout
    assert "already set up for this cluster" in again
    status = cli_json(lab, "archive", "status")
    assert status["archiver"]["failed_count"] == 0
    assert status["newest_segment"] >= segment
    assert status["problem"] is None


# ---- a history to restore --------------------------------------------------------------


@dataclass(frozen=True)
class History:
    backup: str
    after_a: str  # a time after row a committed, before b
    lsn_after_b: str
    xid_c: int


@pytest.fixture(scope="module")
def history(lab: Lab) -> History:
    config = lab.config
    query(config, "node1", "CREATE TABLE events (id serial PRIMARY KEY, tag text NOT NULL)")
    backup = cli_json(lab, "backup", "create")["label"]
    query(config, "node1", "INSERT INTO events (tag) VALUES ('a')")
    time.sleep(0.2)
    (after_a,) = query(config, "node1", "SELECT now()::text")[0]
    time.sleep(0.2)
    cli(lab, "restore-point", "create", "after_a")
    query(config, "node1", "INSERT INTO events (tag) VALUES ('b')")
    (lsn_after_b,) = query(config, "node1", "SELECT pg_current_wal_lsn()::text")[0]
    with connect(config, "node1") as conn, conn.transaction():
        conn.execute("INSERT INTO events (tag) VALUES ('c')")
        row = conn.execute("SELECT txid_current()").fetchone()
        assert row is not None
        xid_c = int(row[0])
    query(config, "node1", "INSERT INTO events (tag) VALUES ('d')")
    switch_and_wait(lab)
    return History(backup, str(after_a), str(lsn_after_b), xid_c)


def test_backup_is_catalogued_and_verifies(lab: Lab, history: History) -> None:
    (listed,) = [b for b in cli_json(lab, "backup", "list") if b["label"] == history.backup]
    assert listed["node"] == "node1"
    assert listed["timeline"] == 1
    assert listed["size_bytes"] > 10_000_000
    assert listed["start_lsn"] <= listed["stop_lsn"] or len(listed["start_lsn"]) < len(
        listed["stop_lsn"]
    )
    report = cli_json(lab, "backup", "verify", history.backup)
    assert report["ok"], report
    assert report["manifest_ok"]
    assert report["segments_checked"] >= 2


def test_restore_to_a_restore_point_pause_inspect_resume_promote(
    lab: Lab, module_dir: Path, history: History
) -> None:
    into, port, result = restore(lab, module_dir, "name", "--target-name", "after_a")
    assert result["state"] == "paused"
    assert result["backup"] == history.backup
    assert restored_rows(into, port) == ["a"]
    status = cli_json(lab, "replay", "status", str(into))
    assert (status["in_recovery"], status["pause_state"]) == (True, "paused")
    with restored(into, port) as conn, pytest.raises(psycopg.Error, match="read-only"):
        conn.execute("INSERT INTO events (tag) VALUES ('x')")
    cli(lab, "replay", "resume", str(into))
    wait_until(
        lambda: not cli_json(lab, "replay", "status", str(into))["in_recovery"],
        what="the restore promoted",
    )
    with restored(into, port) as conn:
        conn.execute("INSERT INTO events (tag) VALUES ('written after promotion')")
    assert restored_rows(into, port) == ["a", "written after promotion"]
    stop_restored(into)


def test_restore_to_a_time(lab: Lab, module_dir: Path, history: History) -> None:
    into, port, result = restore(lab, module_dir, "time", "--target-time", history.after_a)
    assert result["state"] == "paused"
    assert restored_rows(into, port) == ["a"]
    assert result["time"] is not None
    stop_restored(into)


def test_restore_to_an_lsn_and_promote(lab: Lab, module_dir: Path, history: History) -> None:
    into, port, result = restore(
        lab, module_dir, "lsn", "--target-lsn", history.lsn_after_b, "--target-action", "promote"
    )
    assert result["state"] == "promoted"
    assert result["timeline"] >= 2  # promotion starts a new timeline
    assert restored_rows(into, port) == ["a", "b"]
    stop_restored(into)


def test_restore_to_an_xid(lab: Lab, module_dir: Path, history: History) -> None:
    into, port, result = restore(lab, module_dir, "xid", "--target-xid", str(history.xid_c))
    assert result["state"] == "paused"
    assert restored_rows(into, port) == ["a", "b", "c"]
    stop_restored(into)


def test_restore_with_shutdown_at_the_target(lab: Lab, module_dir: Path, history: History) -> None:
    into, _port, result = restore(
        lab, module_dir, "down", "--target-name", "after_a", "--target-action", "shutdown"
    )
    assert result["state"] == "shut down"
    assert process.running_postmaster(into) is None
    assert not (into / "pgherd_prefetch").exists()


def test_restore_latest_replays_everything_archived(
    lab: Lab, module_dir: Path, history: History
) -> None:
    into, port, result = restore(lab, module_dir, "latest", "--latest")
    assert result["state"] == "promoted"
    assert restored_rows(into, port) == ["a", "b", "c", "d"]
    stop_restored(into)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--target-lsn", "0/1000000"), "is before the oldest backup"),
        (("--target-lsn", "FF/0"), "is after the end of the archive"),
        (
            ("--target-name", "no_such_point"),
            "unknown restore point 'no_such_point' — restore points in the archive: after_a",
        ),
        (("--target-time", "2999-01-01 00:00:00+00"), "is after the end of the archive"),
        (("--target-lsn", "0/1", "--latest"), "give exactly one recovery target"),
        (("--latest", "--target-action", "pause"), "always ends (promotes)"),
        (("--target-time", "yesterday"), "is not a time"),
    ],
)
def test_restore_refuses_bad_targets_and_creates_nothing(
    lab: Lab, module_dir: Path, history: History, args: tuple[str, ...], message: str
) -> None:
    done = restore(lab, module_dir, "bad", *args, check=False)
    assert done.returncode == 1
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (module_dir / "r-bad").exists()


def test_restore_refuses_a_directory_that_holds_something(
    lab: Lab, module_dir: Path, history: History
) -> None:
    target = module_dir / "r-full"
    target.mkdir()
    (target / "precious").write_text("keep me")
    done = cli(lab, "restore", "--into", str(target), "--port", "1", "--latest", check=False)
    assert done.returncode == 1
    assert "is not empty" in done.stderr
    assert (target / "precious").read_text() == "keep me"


# ---- restore points and replay on the cluster ------------------------------------------


def test_a_restore_point_on_a_standby_is_refused_with_the_reason(lab: Lab) -> None:
    done = cli(lab, "restore-point", "create", "on_standby", "--node", "node2", check=False)
    assert done.returncode == 1
    assert "node2: this node is a standby (in recovery)" in done.stderr
    assert all(p.name != "on_standby" for p in archive_of(lab).restore_points())


def test_replay_pause_and_resume_on_a_standby(lab: Lab, history: History) -> None:
    config = lab.config
    paused = cli_json(lab, "replay", "pause", "node2")
    assert paused["pause_state"] in ("pause requested", "paused")
    wait_until(
        lambda: cli_json(lab, "replay", "status", "node2")["pause_state"] == "paused",
        what="node2 paused",
    )
    query(config, "node1", "INSERT INTO events (tag) VALUES ('while paused')")
    time.sleep(0.5)
    assert "while paused" not in [r[0] for r in query(config, "node2", "SELECT tag FROM events")]
    cli(lab, "replay", "resume", "node2")
    wait_until(
        lambda: ("while paused",) in query(config, "node2", "SELECT tag FROM events"),
        what="the row replayed on node2",
    )
    done = cli(lab, "replay", "pause", "node1", check=False)
    assert done.returncode == 1
    assert "not in recovery" in done.stderr


# ---- pushes PostgreSQL must not make -----------------------------------------------------


def test_a_different_file_under_an_archived_name_fails_and_keeps_the_original(
    lab: Lab, module_dir: Path, history: History
) -> None:
    user = osuser.resolve("postgres")
    wal = archive_of(lab).wal
    segment = switch_and_wait(lab)
    (found,) = wal.find(segment)
    original = wal.read(found)
    forged_dir = module_dir / "forged" / "pg_wal"
    user.make_dir(forged_dir)
    forged = forged_dir / segment
    forged.write_bytes(original[:8192] + b"\x01" * 16 + original[8192 + 16 :])
    os.chown(forged, user.uid, user.gid)
    argv = [*pgherd_program(), "wal", "push", str(forged), "--archive", str(archive_root(lab))]
    done = run(argv, user, check=False)
    assert done.returncode == 1
    assert f"{segment} is already archived with different contents" in done.stderr
    (still,) = wal.find(segment)
    assert still == found
    assert wal.read(still) == original
    forged.write_bytes(original)
    assert run(argv, user, check=False).returncode == 0  # the same bytes again: fine


def test_another_clusters_wal_is_refused_when_postgres_archives_it(
    lab: Lab, module_dir: Path
) -> None:
    """A second cluster whose archive_command points at this lab's archive: PostgreSQL
    calls pgherd, pgherd refuses every segment, nothing of it lands in the archive."""
    user = osuser.resolve("postgres")
    root = archive_root(lab)
    home = module_dir / "other"
    port = free_port_base(1)
    other = Instance(
        data_dir=home / "data",
        pgbin=binaries.find(None),
        user=user,
        port=port,
        socket_dir=home,
        log_file=home / "postgresql.log",
    )
    user.make_dir(home)
    other.initdb("secret-not-used")
    other.write_settings(
        "other",
        {
            "listen_addresses": "",
            "port": port,
            "unix_socket_directories": str(home),
            "archive_mode": "on",
            "archive_command": push_command(root),
        },
    )
    other.write_access(
        hba.rules("postgres", "replicator", ["127.0.0.1"]),
        hba.ident_lines(["root", "postgres"], "postgres"),
    )
    before = {f.key for f in archive_of(lab).wal.files()}
    other.start()
    try:
        with other.connect() as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS x")
            conn.execute("SELECT pg_switch_wal()")
            wait_until(
                lambda: (
                    conn.execute("SELECT failed_count > 0 FROM pg_stat_archiver").fetchone()
                    == (True,)
                ),
                what="the other cluster's archive_command to fail",
            )
    finally:
        other.stop("immediate")
    assert "comes from another cluster" in other.log_file.read_text()
    assert {f.key for f in archive_of(lab).wal.files()} == before
    from pgherd.archive import setup

    config = lab.config.model_copy(update={"cluster": "other"})
    with pytest.raises(ArchiveMismatch, match="belongs to another cluster"):
        setup.init(config, other.controldata().system_identifier, 15, 16 * 1024 * 1024)


# ---- a standby that fell behind --------------------------------------------------------


def test_a_stopped_standby_catches_up_from_the_archive(lab: Lab, history: History) -> None:
    config = lab.config
    cli(lab, "node", "stop", "node2")
    query(config, "node1", "SELECT pg_drop_replication_slot('node2')")
    query(config, "node1", "ALTER SYSTEM SET wal_keep_size = 0")
    query(config, "node1", "SELECT pg_reload_conf()")
    try:
        (needed,) = query(config, "node1", "SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
        for n in range(5):
            query(config, "node1", "INSERT INTO events (tag) VALUES (%s)", f"behind {n}")
            switch_and_wait(lab)
        query(config, "node1", "CHECKPOINT")
        query(config, "node1", "CHECKPOINT")
        present = [r[0] for r in query(config, "node1", "SELECT name FROM pg_ls_waldir()")]
        assert needed not in present, "the primary still keeps the standby's WAL"
        query(config, "node1", "SELECT pg_create_physical_replication_slot('node2', true)")
        cli(lab, "node", "start", "node2")
        wait_until(
            lambda: ("behind 4",) in query(config, "node2", "SELECT tag FROM events"),
            timeout=60,
            what="node2 caught up",
        )
        log = config.node("node2").server_log.read_text()
        assert f'restored log file "{needed}" from archive' in log
        wait_until(
            lambda: (
                query(config, "node2", "SELECT status FROM pg_stat_wal_receiver")
                == [("streaming",)]
            ),
            timeout=60,
            what="node2 streaming again",
        )
    finally:
        query(config, "node1", "ALTER SYSTEM RESET wal_keep_size")
        query(config, "node1", "SELECT pg_reload_conf()")


# ---- bundled backups: incremental, info, check, delta restore, drill -------------------


BACKUP_PHASES = (
    "cli_start",
    "source",
    "plan",
    "start_checkpoint",
    "scan",
    "copy",
    "stop",
    "wal_wait",
    "catalog",
)
RESTORE_PHASES = (
    "cli_start",
    "plan",
    "local_scan",
    "fetch",
    "settings",
    "server_start",
    "replay",
    "promotion",
    "confirm",
)


def test_incremental_backup_then_info_check_delta_restore_and_drill(
    lab: Lab, module_dir: Path, history: History
) -> None:
    config = lab.config
    query(
        config,
        "node1",
        "CREATE TABLE bulk AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 50000) g",
    )
    full = cli_json(lab, "backup", "create")
    query(config, "node1", "UPDATE bulk SET pad = 'y' WHERE g <= 500")  # 1 % of the rows
    wall, inc = quick_json(lab, module_dir, "backup", "create", "--type", "incremental")
    assert (inc["kind"], inc["parent"]) == ("incremental", full["label"])
    assert inc["stored_bytes"] < full["stored_bytes"] / 4
    assert_phases(inc, wall, BACKUP_PHASES)
    # listed only once the segment holding its end is in the repository
    wal = archive_of(lab).wal
    end = end_segment(
        Lsn.parse(inc["stop_lsn"]), inc["stop_timeline"], wal.identity().wal_segment_size
    )
    assert wal.find(end)
    (main,) = quick_json(lab, module_dir, "backup", "info")[1]
    (row,) = [b for b in main["backups"] if b["label"] == inc["label"]]
    assert row["chain"] == [full["label"], inc["label"]]
    assert main["latest_restorable_lsn"] is not None
    assert main["problems"] == []
    checked = quick_json(lab, module_dir, "archive", "check")[1]
    assert checked["ok"], checked
    assert checked["repositories"][0]["fetched"]

    into, port, result = restore(lab, module_dir, "inc", "--latest")
    assert result["backup"] == inc["label"]
    with restored(into, port) as conn:
        assert conn.execute("SELECT count(*) FROM bulk WHERE pad = 'y'").fetchone() == (500,)
    stop_restored(into)
    query(config, "node1", "UPDATE bulk SET pad = 'z' WHERE g <= 500")
    switch_and_wait(lab)
    wall, again = quick_json(
        lab, module_dir, "restore", "--into", str(into), "--port", str(port), "--latest", "--delta"
    )
    assert again["state"] == "promoted"
    assert_phases(again, wall, RESTORE_PHASES)
    assert not (into / "pgherd_prefetch").exists()
    with restored(into, port) as conn:
        assert conn.execute("SELECT count(*) FROM bulk WHERE pad = 'z'").fetchone() == (500,)
    stop_restored(into)

    drill = cli_json(lab, "backup", "drill", "--scratch", str(module_dir))
    assert drill["ok"], drill
    assert drill["databases"] >= 2
    standby = cli_json(lab, "backup", "create", "--type", "differential", "--from-standby")
    assert (standby["node"], standby["from_standby"]) == ("node2", True)
    assert (standby["kind"], standby["parent"]) == ("differential", full["label"])
    # what the leader's schedule does, and what a CLI on another machine asks of an agent
    from pgherd.archive import schedule
    from pgherd.clients.archive import ArchiveAgentClient
    from pgherd.config import read_token
    from pgherd.model.backup_schedule import ScheduledRun
    from pgherd.model.events import Event

    events: list[Event] = []
    schedule.take(config, "node1", ScheduledRun("0 1 * * *", "incremental"), events.append)
    assert [e.outcome for e in events] == ["running", "succeeded"]
    scheduled = events[-1].details["label"]
    asked = ArchiveAgentClient(config.node("node2"), read_token(config)).take_backup(
        "incremental", None
    )
    assert (asked.node, asked.parent) == ("node2", scheduled)
    refused = cli(lab, "backup", "delete", full["label"], check=False)
    assert refused.returncode == 1
    assert f"build on {full['label']}" in refused.stderr
    cli(lab, "backup", "delete", asked.label)
    cli(lab, "backup", "delete", scheduled)
    cli(lab, "backup", "delete", standby["label"])
    cli(lab, "backup", "delete", inc["label"])
    cli(lab, "backup", "delete", full["label"])
    assert {b.label for b in archive_of(lab).backups()} == {history.backup}


TABLE_SUM = "SELECT count(*), md5(string_agg(g::text || pad, ',' ORDER BY g)) FROM trust"


def test_delta_restore_trusts_size_and_time_and_checksum_catches_a_hand_edit(
    lab: Lab, module_dir: Path, history: History
) -> None:
    """An incremental after a change restores by delta to exactly the backed-up rows,
    reading only what changed; a file edited by hand with its size and time put back is
    not caught by default (the documented trade-off) and is with --checksum."""
    config = lab.config
    query(config, "node1", "CREATE TABLE trust (g int PRIMARY KEY, pad text NOT NULL)")
    query(
        config,
        "node1",
        "INSERT INTO trust SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g",
    )
    # hint bits and the visibility map set now, before the full backup: with wal_log_hints
    # (pg_rewind needs it) setting them later is WAL-logged and changes every page
    query(config, "node1", "VACUUM (FREEZE, ANALYZE) trust")
    (relation,) = query(config, "node1", "SELECT pg_relation_filepath('trust')")[0]
    full = cli_json(lab, "backup", "create", "--type", "full")
    into, port, first = restore(lab, module_dir, "trust", "--latest")
    assert first["backup"] == full["label"]
    stop_restored(into)  # no query: the restored files keep the times the restore gave them

    query(config, "node1", "UPDATE trust SET pad = 'y' WHERE g <= 500")  # 1 % of the rows
    query(config, "node1", "CHECKPOINT")
    inc = cli_json(lab, "backup", "create", "--type", "incremental")
    assert inc["parent"] == full["label"]
    checked = cli_json(lab, "backup", "create", "--type", "incremental", "--checksum")
    assert checked["parent"] == inc["label"]  # reads everything, stores what changed
    assert checked["stored_bytes"] < full["stored_bytes"] / 4
    expected = query(config, "node1", TABLE_SUM)[0]
    switch_and_wait(lab)

    def restore_delta(*more: str) -> dict[str, Any]:
        result = cli_json(
            lab, "restore", "--into", str(into), "--port", str(port), "--latest", "--delta", *more
        )
        assert result["state"] == "promoted"
        return dict(result)

    # the files of the full's restore show the full's sizes and times: the relation is not
    # read, only the chunks the incrementals changed are fetched
    again = restore_delta()
    assert again["unread_bytes"] > 0
    assert 0 < again["fetched_bytes"] < again["kept_bytes"] / 4
    with restored(into, port) as conn:
        assert conn.execute(TABLE_SUM).fetchone() == expected
    stop_restored(into)

    # by hand: one byte of a row changed, the size and the recorded time put back
    manifest = archive_of(lab).manifest(checked["label"])
    entry = manifest.file(relation)
    assert entry is not None
    path = into / relation
    data = bytearray(path.read_bytes())
    assert len(data) == entry.size
    at = data.index(b"x" * 200, len(data) // 2)
    data[at] = ord("Q")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
    edited = "SELECT count(*) FROM trust WHERE pad LIKE '%Q%'"

    trusted = restore_delta()
    assert trusted["unread_bytes"] >= entry.size
    with restored(into, port) as conn:
        # not caught by the restore: the edit is still there. The lab's clusters have data
        # checksums, so PostgreSQL itself refuses the page when it reads it
        row = conn.execute("SHOW data_checksums").fetchone()
        if row == ("on",):
            with pytest.raises(psycopg.errors.DataCorrupted):
                conn.execute(edited)
        else:
            assert conn.execute(edited).fetchone() == (1,)
    stop_restored(into)

    verified = restore_delta("--checksum")
    assert verified["unread_bytes"] == 0
    assert verified["fetched_bytes"] < verified["kept_bytes"] / 4
    with restored(into, port) as conn:
        assert conn.execute(edited).fetchone() == (0,)  # caught: the chunk was fetched
        assert conn.execute(TABLE_SUM).fetchone() == expected
    stop_restored(into)
    bad = cli(
        lab,
        "restore",
        "--into",
        str(into),
        "--port",
        str(port),
        "--latest",
        "--checksum",
        check=False,
    )
    assert bad.returncode != 0 and "--checksum" in bad.stderr
    assert "Traceback" not in bad.stderr
    for label in (checked["label"], inc["label"], full["label"]):
        cli(lab, "backup", "delete", label)


# ---- destructive: corruption, retention, a second timeline -----------------------------


def test_a_corrupted_segment_is_detected_by_its_checksum_and_named(
    lab: Lab, module_dir: Path, history: History
) -> None:
    wal = archive_of(lab).wal
    backup = archive_of(lab).backup(history.backup)
    victim = (
        f"00000001{backup.start_lsn.value >> 32:08X}{(backup.start_lsn.value >> 24) & 0xFF:08X}"
    )
    (found,) = wal.find(victim)
    path = archive_root(lab) / found.key
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x55
    path.write_bytes(bytes(bad))
    try:
        done = cli(lab, "backup", "verify", history.backup, "--json", check=False)
        assert done.returncode == 3
        report = json.loads(done.stdout)
        assert any(victim in p and "corrupt" in p for p in report["problems"]), report
        failed = restore(lab, module_dir, "corrupt", "--target-name", "after_a", check=False)
        assert failed.returncode == 1
        assert f"the restore stopped: {victim} in " in failed.stderr
        assert "is corrupt" in failed.stderr
    finally:
        path.write_bytes(good)
        stop_restored(module_dir / "r-corrupt")


def test_retention_keeps_a_restorable_set_and_a_dry_run_removes_nothing(
    lab: Lab, module_dir: Path, history: History
) -> None:
    config = lab.config
    newer = cli_json(lab, "backup", "create", "--node", "node2")["label"]
    query(config, "node1", "INSERT INTO events (tag) VALUES ('after the second backup')")
    cli(lab, "restore-point", "create", "after_second_backup")
    switch_and_wait(lab)
    archive = archive_of(lab)
    before = sorted(f.key for f in archive.wal.files())

    dry = cli_json(lab, "archive", "cleanup", "--keep", "1", "--dry-run")
    assert dry["dry_run"]
    assert dry["removed_backups"] == [history.backup]
    assert dry["removed_files"]
    assert sorted(f.key for f in archive.wal.files()) == before
    assert {b.label for b in archive.backups()} == {history.backup, newer}

    done = cli_json(lab, "archive", "cleanup", "--keep", "1")
    assert done["removed_files"] == dry["removed_files"]
    assert done["freed_bytes"] > 1_000_000  # the old backup's bundles, at least
    assert [b.label for b in archive.backups()] == [newer]
    kept = archive.backup(newer)
    size = archive.wal.identity().wal_segment_size
    for found in archive.wal.files():
        if found.wal.segment is not None:
            assert found.wal.segment.number >= kept.start_lsn.value // size
    assert cli_json(lab, "backup", "verify", newer)["ok"]

    into, port, result = restore(lab, module_dir, "kept", "--target-name", "after_second_backup")
    assert result["backup"] == newer
    assert restored_rows(into, port)[-1] == "after the second backup"
    stop_restored(into)
    gone = restore(lab, module_dir, "gone", "--target-name", "after_a", check=False)
    assert "is before the oldest backup" in gone.stderr


def test_the_agent_schedule_runs_the_same_cleanup(lab: Lab) -> None:
    """What the primary's agent runs when archive.cleanup_keep is set (here every 0.2 s)."""
    import threading

    from pgherd.archive import cleanup
    from pgherd.config import ArchiveConfig

    config = lab.config
    assert config.archive is not None
    old = {b.label for b in archive_of(lab).backups()}
    newest = cli_json(lab, "backup", "create")["label"]
    scheduled = config.model_copy(
        update={
            "archive": ArchiveConfig.model_construct(
                path=config.archive.path, cleanup_keep=1, cleanup_interval=0.2
            )
        }
    )
    stop = threading.Event()
    worker = threading.Thread(target=cleanup.run_on_schedule, args=(scheduled, "node1", stop))
    worker.start()
    try:
        wait_until(
            lambda: [b.label for b in archive_of(lab).backups()] == [newest],
            what=f"the schedule to remove {old}",
        )
    finally:
        stop.set()
        worker.join(10)


def test_restore_follows_a_timeline_switch(lab: Lab, module_dir: Path, history: History) -> None:
    """node2 is promoted (timeline 2) and archives there; a restore to a point written on
    timeline 2 starts from a backup of timeline 1 and follows 00000002.history."""
    config = lab.config
    query(config, "node2", "SELECT pg_promote()")
    wait_until(
        lambda: query(config, "node2", "SELECT pg_is_in_recovery()") == [(False,)],
        what="node2 promoted",
    )
    query(config, "node2", "INSERT INTO events (tag) VALUES ('on timeline 2')")
    cli(lab, "restore-point", "create", "on_tl2", "--node", "node2")
    switch_and_wait(lab, "node2")
    wait_until(lambda: archive_of(lab).wal.find("00000002.history"), what="the history file")
    into, port, result = restore(lab, module_dir, "tl2", "--target-name", "on_tl2")
    assert result["timeline"] == 2
    assert restored_rows(into, port)[-1] == "on timeline 2"
    stop_restored(into)
    old = restore(lab, module_dir, "tl1", "--latest", "--timeline", "1")
    assert old[2]["timeline"] >= 2
    assert "on timeline 2" not in restored_rows(old[0], old[1])
    stop_restored(old[0])
