"""The CLI as a user meets it without servers: one-line errors with exit 1, connstr, and
cluster show when no agent answers.

The quick commands (``cluster show``, ``connstr`` …: pgherd.cli.quick) are run both ways a
user can reach them: through the program's dispatcher, which takes their quick path, and
through the Typer CLI (what ``--help`` or a doubtful command line reaches). Both must
answer alike, errors included."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.cli import entry
from pgherd.cli.main import main
from pgherd.cli.quick import args as quick_args
from pgherd.lab import layout
from pgherd.pg import osuser, tlsfiles


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run ``pgherd ARGS`` in this process, as the console script does."""
    monkeypatch.setattr(sys, "argv", ["pgherd", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out, err


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(params=["program", "typer"])
def cli(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Cli:
    """:func:`run` through the program's dispatcher (the quick path, checked to be the one
    taken) or through the Typer CLI."""
    monkeypatch.setenv("PGHERD_CACHE_DIR", str(tmp_path / "cache"))  # not the user's cache

    def call(*args: str) -> tuple[int, str, str]:
        if request.param == "typer":
            return run(monkeypatch, capsys, *args)
        assert quick_args.parse(args) is not None, f"{args} left the quick path"
        monkeypatch.setattr(sys, "argv", ["pgherd", *args])
        with pytest.raises(SystemExit) as exited:
            entry.main()
        out, err = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 0 if code is None else 1), out, err

    return call


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    config = layout.lab_config(
        Path("/var/tmp/pgherd-lab"), layout.LabShape(3, 5440, "postgres", None)
    )
    path = tmp_path / "pgherd.yaml"
    path.write_text(config_mod.dump(config))
    return path


def test_missing_config_is_one_line_and_exit_1() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PGHERD_CONFIG")}
    done = subprocess.run(
        [sys.executable, "-m", "pgherd", "cluster", "show", "-c", "/nonexistent.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "error: no config file at /nonexistent.yaml — pass -c FILE, set PGHERD_CONFIG, "
        "or create one with `pgherd lab up --dir DIR`\n"
    )


def test_version_is_the_packages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pgherd

    assert run(monkeypatch, capsys, "--version") == (0, f"pgherd {pgherd.__version__}\n", "")


def test_config_check_describes_a_valid_file(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    tmp_path: Path,
) -> None:
    config = config_mod.load(config_file).model_copy(
        update={
            "passfile": tmp_path / "passfile",
            "api_token_file": tmp_path / "token",
            "settings": {"work_mem": "8MB", "shared_buffers": "1GB", "work_mme": "1"},
        }
    )
    config_file.write_text(config_mod.dump(config))
    (tmp_path / "token").write_text("secret\n")
    (tmp_path / "token").chmod(0o644)
    code, out, err = run(monkeypatch, capsys, "config", "check", "-c", str(config_file))
    assert (code, err) == (0, "")
    assert out.startswith(f"{config_file}: valid (fingerprint ")
    assert "3 node(s):" in out
    assert "  node2: PostgreSQL 127.0.0.1:5441, agent https://127.0.0.1:6441" in out
    text = out
    code, out, _ = run(monkeypatch, capsys, "config", "check", "-c", str(config_file), "--json")
    data = json.loads(out)
    assert code == 0 and data["valid"] is True
    assert [n["name"] for n in data["nodes"]] == ["node1", "node2", "node3"]
    assert data["fingerprint"] == config_mod.fingerprint(config_mod.load(config_file))
    assert data["warnings"][:2] == [
        f"{tmp_path / 'passfile'} does not exist: create it with `pgherd secrets init` "
        "(or copy it here)",
        f"{tmp_path / 'token'} is mode 644: make it 0600 (chmod 600 {tmp_path / 'token'})",
    ]
    if data["settings_effects"]:  # PostgreSQL's programs are on this host
        assert data["settings_effects"] == {
            "work_mem": "reload",
            "shared_buffers": "restart",
            "work_mme": "unknown",
        }
        assert data["warnings"][2].startswith("settings: work_mme is not a parameter of ")
        assert "work_mem=8MB (reload), shared_buffers=1GB (restart)" in text


def test_config_check_of_an_invalid_file_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    config_file.write_text(config_file.read_text().replace("port: 5441", "port: 99999"))
    code, out, err = run(monkeypatch, capsys, "config", "check", "-c", str(config_file))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {config_file}: nodes.1.port: ")
    assert err.count("\n") == 1


def test_config_comes_from_the_environment(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGHERD_CONFIG", str(tmp_path / "from-env.yaml"))
    code, _, err = cli("connstr", "node1")
    assert code == 1
    assert err.startswith(f"error: no config file at {tmp_path / 'from-env.yaml'} — ")


# Every quick command, with arguments that would otherwise do its work on node1. An error
# is exit 1, except for node check: a check that cannot run is UNKNOWN (3) to monitoring.
QUICK_LINES = [
    pytest.param(("cluster", "show"), id="cluster-show"),
    pytest.param(("cluster", "events"), id="cluster-events"),
    pytest.param(("node", "check", "node1"), id="node-check"),
    pytest.param(("connstr", "node1"), id="connstr"),
    pytest.param(("standby", "clone", "--upstream", "node1", "--node", "node2"), id="clone"),
    pytest.param(("backup", "create", "--type", "incremental"), id="backup-create"),
    pytest.param(("restore", "--into", "r", "--port", "5999", "--latest"), id="restore"),
    pytest.param(("backup", "info"), id="backup-info"),
    pytest.param(("archive", "check"), id="archive-check"),
]
# Open the archive before they ask an agent anything (a config without one: refused first).
ARCHIVE_LINES = ("backup-create", "restore", "backup-info", "archive-check")


def failed(line: tuple[str, ...]) -> int:
    return 3 if line[:2] == ("node", "check") else 1


def test_every_quick_command_is_tested_here() -> None:
    lines: list[tuple[str, ...]] = [line.values[0] for line in QUICK_LINES]  # type: ignore[misc]
    tested = {
        c.words for c in quick_args.COMMANDS for line in lines if line[: len(c.words)] == c.words
    }
    assert tested == {c.words for c in quick_args.COMMANDS}


@pytest.mark.parametrize("line", QUICK_LINES)
def test_invalid_config_is_one_located_line(
    cli: Cli, config_file: Path, line: tuple[str, ...]
) -> None:
    config_file.write_text(config_file.read_text().replace("name: node2", "name: Node-2"))
    code, out, err = cli(*line, "-c", str(config_file))
    assert code == failed(line)
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: {config_file}: nodes.1.name: ")


def test_connstr_of_an_unknown_node_lists_the_known_ones(cli: Cli, config_file: Path) -> None:
    code, out, err = cli("connstr", "node9", "-c", str(config_file))
    assert code == 1
    assert out == ""
    assert err == "error: unknown node 'node9' — known nodes: node1, node2, node3\n"


@pytest.mark.parametrize("name", ["[red]", "[/x]"])
def test_error_text_is_printed_literally(
    cli: Cli,
    config_file: Path,
    name: str,
) -> None:
    code, _, err = cli("connstr", name, "-c", str(config_file))
    assert code == 1
    assert err == f"error: unknown node '{name}' — known nodes: node1, node2, node3\n"


@pytest.mark.parametrize(("flags", "user"), [((), "postgres"), (("--replication",), "replicator")])
def test_connstr_prints_a_uri_with_the_passfile(
    cli: Cli,
    config_file: Path,
    flags: tuple[str, ...],
    user: str,
) -> None:
    code, out, err = cli("connstr", "node2", *flags, "-c", str(config_file))
    assert (code, err) == (0, "")
    assert out == (
        f"postgresql://{user}@127.0.0.1:5441/postgres?passfile=/var/tmp/pgherd-lab/secrets/pgpass"
        "&sslmode=verify-full&sslrootcert=/var/tmp/pgherd-lab/secrets/tls/ca.crt\n"
    )


def test_cluster_show_with_every_agent_down_reports_them_and_exits_degraded(
    cli: Cli, tmp_path: Path
) -> None:
    lab = layout.lab_config(tmp_path / "lab", layout.LabShape(2, 5440, "postgres", None))
    raw = lab.model_dump(mode="json")
    for node in raw["nodes"]:
        node["api_port"] = _unused_port()  # no agent listens there
    path = tmp_path / "pgherd.yaml"
    config = config_mod.parse(raw)
    path.write_text(config_mod.dump(config))
    tlsfiles.ensure(config, osuser.resolve("postgres"), tlsfiles.members(config))
    code, out, _ = cli("cluster", "show", "--json", "-c", str(path))
    assert code == 3
    shown = json.loads(out)
    assert shown["health"] == "degraded"
    assert shown["primary"] is None
    assert [(n["name"], n["state"]) for n in shown["nodes"]] == [
        ("node1", "unreachable"),
        ("node2", "unreachable"),
    ]
    assert "no running primary" in shown["problems"]
    assert "node1: agent unreachable" in shown["problems"]


@pytest.mark.parametrize(
    "line", [p for p in QUICK_LINES if p.id != "connstr" and p.id not in ARCHIVE_LINES]
)
def test_a_missing_cluster_ca_is_a_one_line_error(
    cli: Cli, tmp_path: Path, line: tuple[str, ...]
) -> None:
    """Every quick command that calls an agent builds its TLS context first (connstr only
    names the CA in the URI it prints)."""
    lab = layout.lab_config(tmp_path / "lab", layout.LabShape(2, 5440, "postgres", None))
    path = tmp_path / "pgherd.yaml"
    path.write_text(config_mod.dump(lab))
    code, out, err = cli(*line, "-c", str(path))
    assert (code, out) == (failed(line), "")
    assert err.startswith("error: cannot load the cluster's TLS files")
    assert "pgherd secrets init" in err


def test_agent_haproxy_checks_each_agent_and_sends_traffic_to_postgres(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    code, out, _ = run(
        monkeypatch, capsys, "agent", "haproxy", "--primary-port", "6000", "-c", str(config_file)
    )
    assert code == 0
    sections = out.split("\nlisten ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["postgres_primary", "postgres_replicas"]
    primary, replicas = sections
    assert "    bind *:6000\n" in primary and "option httpchk GET /primary\n" in primary
    assert "    bind *:5001\n" in replicas and "option httpchk GET /replica\n" in replicas
    assert "balance roundrobin" in replicas and "balance" not in primary
    for section in sections:
        servers = [line.split() for line in section.splitlines() if "    server " in line]
        check = ["check", "addr", "127.0.0.1", "port"]
        # the agents serve HTTPS: HAProxy checks them over TLS, trusting the cluster CA only
        tls = [
            "check-ssl",
            "verify",
            "required",
            "ca-file",
            "/var/tmp/pgherd-lab/secrets/tls/ca.crt",
        ]
        assert servers == [
            ["server", f"node{i}", f"127.0.0.1:{5439 + i}", *check, str(6439 + i), *tls]
            for i in (1, 2, 3)
        ]


def test_agent_haproxy_refuses_one_port_for_reads_and_writes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    code, out, err = run(
        monkeypatch,
        capsys,
        "agent",
        "haproxy",
        "--primary-port",
        "5001",
        "-c",
        str(config_file),
    )
    assert (code, out) == (1, "")
    assert "--primary-port and --replica-port are both 5001" in err
    assert len(err.strip().splitlines()) == 1
