"""The quick commands start without Typer, pydantic, rich or FastAPI (issue 21): each is
run here as the ``pgherd`` program runs it, in a fresh interpreter, and what it imported
is listed when it exits.

The first command to read a config file validates it with pydantic (that is the point of
the cache: once per file text), so each case runs twice and the second run is checked.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from pgherd import config
from pgherd.cli.main import main
from pgherd.dcs.sqlite import SqliteStore
from pgherd.dcs.store_events import StoreEventLog
from pgherd.lab import layout
from pgherd.model.events import Event, Outcome
from pgherd.model.repository import RepositorySpec, write_specs
from pgherd.pg import osuser, tlsfiles
from tests.conftest import free_port_base
from tests.support import ListedRun, pgherd_listing_imports


def pgherd(tmp_path: Path, *args: str | Path) -> ListedRun:
    listing = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}.json"
    env = {"PGHERD_CACHE_DIR": str(tmp_path / "cache"), "PGHERD_CONFIG_CACHE": "on"}
    return pgherd_listing_imports(listing, *args, env=env, timeout=60)


def twice(tmp_path: Path, *args: str | Path) -> ListedRun:
    """The second of two runs (the first one validated the config)."""
    pgherd(tmp_path, *args)
    return pgherd(tmp_path, *args)


def lab_file(tmp_path: Path, **options: object) -> Path:
    """A lab's config whose agents are not running (their ports are free), with its
    cluster CA and certificates as ``lab up`` makes them (TLS on, the default; with etcd,
    the store client's certificate): the commands build their TLS contexts from them."""
    base = free_port_base(3, (0, layout.API_PORT_OFFSET))
    user = "postgres" if getpass.getuser() == "root" else getpass.getuser()
    made = layout.lab_config(tmp_path / "lab", layout.LabShape(3, base, user, None, **options))  # type: ignore[arg-type]
    if made.tls_on:
        tlsfiles.ensure(made, osuser.resolve(user), layout.tls_members(made))
    path = tmp_path / "pgherd.yaml"
    path.write_text(config.dump(made))
    return path


def test_cluster_show(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    first = pgherd(tmp_path, "cluster", "show", "-c", path)
    assert "pydantic" in first.modules  # the file was validated once…
    run = pgherd(tmp_path, "cluster", "show", "-c", path)
    assert run.heavy == []  # … and read from the cache after that
    assert run.way == "os._exit"  # a read-only look, its output flushed first:
    assert run.code == 3  # no agent answers: degraded
    assert run.stdout.startswith("cluster lab (degraded)")
    assert "node1: agent unreachable" in run.stdout
    assert run.stdout == first.stdout


def test_cluster_show_json_with_a_store(tmp_path: Path) -> None:
    path = lab_file(tmp_path, failover="automatic")
    run = twice(tmp_path, "cluster", "show", "--json", "-c", path)
    assert run.heavy == []
    data = json.loads(run.stdout)
    assert data["health"] == "degraded"
    assert data["ha"]["store"].startswith("sqlite ")


def test_cluster_show_with_etcd_needs_no_httpx(tmp_path: Path) -> None:
    path = lab_file(tmp_path, failover="automatic", dcs="etcd")  # no etcd runs there
    run = twice(tmp_path, "cluster", "show", "--json", "-c", path)
    assert run.heavy == []
    ha = json.loads(run.stdout)["ha"]
    assert ha["store"].startswith("etcd https://")
    assert not ha["store_ok"]
    assert "no etcd endpoint answered" in ha["problem"]


def test_cluster_events_from_the_store(tmp_path: Path) -> None:
    path = lab_file(tmp_path, failover="automatic")
    validated = config.load(path)
    assert validated.ha is not None
    (tmp_path / "lab").mkdir(exist_ok=True)
    store = SqliteStore(validated.ha.dcs.sqlite, cluster=validated.cluster)  # type: ignore[union-attr]
    log = StoreEventLog(store)
    started = Event(operation="switchover", node="node2", requested_by="root@host")
    assert log.save(started)
    assert log.save(started.finish(Outcome.SUCCEEDED, "node2 is the primary [now]"))
    assert log.save(Event(operation="promote", node="node3"))
    audited = Event(operation="api POST /ops/checkpoint", node="node1", requested_by="viewer")
    assert log.save(audited.finish(Outcome.REFUSED, "HTTP 403"))
    run = twice(tmp_path, "cluster", "events", "--json", "-c", path)
    assert (run.code, run.heavy) == (0, [])
    operations = [e for e in log.recent(50) if e.id != audited.id]
    assert json.loads(run.stdout) == [e.model_dump(mode="json") for e in operations]
    audit = pgherd(tmp_path, "cluster", "events", "--audit", "--json", "-c", path)
    assert (audit.code, audit.heavy) == (0, [])
    assert [e["operation"] for e in json.loads(audit.stdout)] == ["api POST /ops/checkpoint"]
    table = pgherd(tmp_path, "cluster", "events", "--limit", "1", "-c", path)
    assert (table.code, table.heavy) == (0, [])
    assert table.stdout.startswith("cluster lab: events")
    assert "promote" in table.stdout and "switchover" not in table.stdout


def test_cluster_events_without_a_store_and_no_agent(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    run = twice(tmp_path, "cluster", "events", "-c", path)
    assert (run.code, run.heavy) == (1, [])
    assert run.stderr == (
        "error: no node of the cluster runs, so no event can be read — "
        "start one: pgherd node start NODE\n"
    )


def test_connstr(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    run = twice(tmp_path, "connstr", "node2", "--replication", "-c", path)
    assert (run.code, run.heavy, run.stderr) == (0, [], "")
    assert run.stdout.startswith("postgresql://replicator@127.0.0.1:")
    assert run.stdout.rstrip().endswith(
        f"&sslmode=verify-full&sslrootcert={tmp_path}/lab/secrets/tls/ca.crt"
    )


def test_an_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    run = twice(tmp_path, "connstr", "node9", "-c", path)
    assert (run.code, run.heavy, run.stdout, run.way) == (1, [], "", "os._exit")
    assert run.stderr == "error: unknown node 'node9' — known nodes: node1, node2, node3\n"


def test_a_missing_config(tmp_path: Path) -> None:
    run = pgherd(tmp_path, "cluster", "show", "-c", tmp_path / "none.yaml")
    assert (run.code, run.heavy) == (1, [])
    assert run.stderr.startswith(f"error: no config file at {tmp_path}/none.yaml — ")


@pytest.mark.parametrize("where", ["--archive", "--repos", "-c"])
@pytest.mark.parametrize("verb", ["push", "fetch"])
def test_wal_push_and_fetch(tmp_path: Path, verb: str, where: str) -> None:
    """As PostgreSQL runs them: a directory (--archive), the repositories a node's spool
    names (--repos, what a restore writes), or the config (-c)."""
    archive = tmp_path / "archive"
    archive.mkdir()
    options: tuple[str | Path, ...] = (where, archive)
    if where == "--repos":
        specs = tmp_path / "repositories.json"
        specs.write_text(write_specs((RepositorySpec("main", path=str(archive)),)))
        options = (where, specs)
    elif where == "-c":
        options = (where, lab_file(tmp_path, archive=True))
    segment = "000000010000000000000001"
    args: Sequence[str | Path]
    if verb == "push":
        wal = tmp_path / segment
        wal.write_bytes(b"\0" * 1024)
        args = ("wal", "push", wal, *options)
    else:
        args = ("wal", "fetch", segment, tmp_path / "restored", *options)
    run = twice(tmp_path, *args)
    assert run.heavy == [], run.stderr
    assert run.code in (0, 1, 126)


def test_standby_clone_refusals(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    unlisted = twice(
        tmp_path, "standby", "clone", "--upstream", "node1", "--node", "node9", "-c", path
    )
    assert (unlisted.code, unlisted.heavy) == (1, [])
    assert unlisted.way == "exit"  # a clone writes: the interpreter's own exit
    assert unlisted.stderr == (
        f"error: node9 is not in {path} — add it there, or pass --data-dir, --port and "
        "--api-port to add it\n"
    )
    down = pgherd(
        tmp_path, "standby", "clone", "--upstream", "node1", "--node", "node3", "-c", path
    )
    assert (down.code, down.heavy) == (1, [])
    assert down.stderr.startswith("error: the agent of node1 at https://127.0.0.1:")


def test_node_check(tmp_path: Path) -> None:
    path = lab_file(tmp_path)
    run = twice(tmp_path, "node", "check", "node2", "--nagios", "-c", path)
    assert (run.code, run.heavy) == (2, [])  # CRITICAL: its agent does not answer
    assert run.stdout.startswith("PGHERD CRITICAL - node2: the agent does not answer")
    unknown = pgherd(tmp_path, "node", "check", "node9", "--nagios", "-c", path)
    assert (unknown.code, unknown.heavy) == (3, [])
    assert unknown.stdout.startswith("PGHERD UNKNOWN - unknown node 'node9'")


def test_help_still_comes_from_the_full_cli(tmp_path: Path) -> None:
    run = pgherd(tmp_path, "cluster", "show", "--help")
    assert run.code == 0
    assert "typer" in run.modules
    assert run.way == "exit"
    assert "--json" in run.stdout


def full_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str | Path
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``pgherd ARGS`` through the full Typer CLI (what
    the quick path leaves to it), in this process."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["pgherd", *map(str, args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_backup_info_of_a_repository_not_set_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = lab_file(tmp_path, archive=True)  # its archive was never initialised
    for shape in ((), ("--json",)):
        run = twice(tmp_path, "backup", "info", *shape, "-c", path)
        assert (run.code, run.heavy, run.stderr) == (3, [], "")
        assert full_cli(capsys, monkeypatch, "backup", "info", *shape, "-c", path) == (
            3,
            run.stdout,
            "",
        )
    (main,) = json.loads(run.stdout)
    assert main["problems"][0].startswith("there is no archive at ")


def test_backup_create_and_restore_refuse_bad_input_as_the_full_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same one-line error and exit code either way, with nothing imported that the
    quick path avoids; nothing is created."""
    path = lab_file(tmp_path, archive=True)  # its archive was never initialised
    into = tmp_path / "restored"
    restore = ("restore", "--into", into, "--port", "5999")
    cases: list[tuple[str | Path, ...]] = [
        ("backup", "create", "--type", "weekly"),
        ("backup", "create", "--format", "copy", "--checksum"),
        ("backup", "create", "--repo", "nowhere"),
        ("backup", "create"),  # no archive there
        (*restore,),  # no target
        (*restore, "--latest", "--target-lsn", "0/1"),
        (*restore, "--target-time", "yesterday"),
        (*restore, "--target-xid", "2"),
        (*restore, "--latest", "--checksum"),
        (*restore, "--latest", "--target-action", "explode"),
        (*restore, "--latest"),  # no archive there
        ("archive", "check", "--timeout", "5"),  # no archive there
    ]
    pgherd(tmp_path, "connstr", "node1", "-c", path)  # the config validated, once
    for args in cases:
        quick = pgherd(tmp_path, *args, "-c", path)
        assert (quick.code, quick.heavy, quick.stdout) == (1, [], ""), (args, quick.stderr)
        assert quick.stderr.startswith("error: ") and quick.stderr.count("\n") == 1, args
        assert full_cli(capsys, monkeypatch, *args, "-c", path) == (1, "", quick.stderr), args
    assert not into.exists()


def test_backup_create_and_restore_typos_go_to_the_full_cli(tmp_path: Path) -> None:
    path = lab_file(tmp_path, archive=True)
    typo = pgherd(tmp_path, "restore", "--into", tmp_path / "r", "--prot", "5999", "-c", path)
    assert typo.code == 2 and "typer" in typo.modules
    assert "No such option: --prot" in typo.stderr
    missing = pgherd(tmp_path, "backup", "create", "--type", "-c", path)
    assert missing.code == 2 and "typer" in missing.modules
    helped = pgherd(tmp_path, "backup", "create", "--help")
    assert helped.code == 0 and "--from-standby" in helped.stdout
