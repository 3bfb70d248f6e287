"""pgherd.yaml: what parses, and the one-line, located message for what does not."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pgherd import config, config_lite
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.errors import ConfigError, UnknownNode


def raw_config() -> dict[str, Any]:
    return {
        "cluster": "lab",
        "passfile": "/var/tmp/lab/secrets/pgpass",
        "api_token_file": "/var/tmp/lab/secrets/api-token",
        "settings": {"work_mem": "8MB", "pg_stat_statements.max": 5000, "jit": False},
        "nodes": [
            {"name": "node1", "port": 5441, "api_port": 6441, "data_dir": "/var/tmp/lab/n1/data"},
            {"name": "node2", "port": 5442, "api_port": 6442, "data_dir": "/var/tmp/lab/n2/data"},
            {
                "name": "node3",
                "host": "10.0.0.3",
                "port": 5441,  # the same port as node1, on another host
                "api_host": "10.0.0.3",
                "api_port": 6441,
                "data_dir": "/srv/pg/data",
                "home": "/srv/pgherd",
            },
        ],
    }


def test_valid_config_parses_into_typed_values() -> None:
    parsed = config.parse(raw_config())
    assert parsed.cluster == "lab"
    assert parsed.os_user == "postgres"
    assert parsed.superuser == "postgres"
    assert parsed.replication_user == "replicator"
    assert parsed.node_names == ["node1", "node2", "node3"]
    node1 = parsed.node("node1")
    assert (node1.host, node1.port, node1.api_port) == ("127.0.0.1", 5441, 6441)
    assert node1.data_dir == Path("/var/tmp/lab/n1/data")
    assert parsed.settings == {"work_mem": "8MB", "pg_stat_statements.max": 5000, "jit": False}


def test_dump_then_parse_gives_the_same_config() -> None:
    parsed = config.parse(raw_config())
    assert config.parse(yaml.safe_load(config.dump(parsed))) == parsed


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation of the raw config: ``nodes.1.port`` = value."""

    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = raw
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        del raw[key]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_set("nodes.0.name", "Node-1"), "nodes.0.name: ", id="upper-case-name"),
        pytest.param(_set("nodes.0.name", "1node"), "nodes.0.name: ", id="name-starts-digit"),
        pytest.param(_set("nodes.0.name", "x" * 64), "nodes.0.name: ", id="name-too-long"),
        pytest.param(_set("cluster", "my-lab"), "cluster: ", id="bad-cluster-name"),
        pytest.param(
            _set("nodes.1.name", "node1"),
            "two nodes share the node name node1",
            id="duplicate-name",
        ),
        pytest.param(
            _set("nodes.1.port", 5441),
            "two nodes share the PostgreSQL address 127.0.0.1:5441",
            id="duplicate-port",
        ),
        pytest.param(
            _set("nodes.1.api_port", 6441),
            "two nodes share the agent API address 127.0.0.1:6441",
            id="duplicate-api-port",
        ),
        pytest.param(
            _set("nodes.1.data_dir", "/var/tmp/lab/n1/data"),
            "two nodes share the data directory /var/tmp/lab/n1/data",
            id="duplicate-data-dir",
        ),
        pytest.param(
            _set("nodes.1.home", "/var/tmp/lab/n1"),
            "two nodes share the node home /var/tmp/lab/n1",
            id="duplicate-home",
        ),
        pytest.param(
            _set("nodes.1.data_dir", "n2/data"),
            "nodes.1.data_dir: must be an absolute path, got 'n2/data'",
            id="relative-data-dir",
        ),
        pytest.param(
            _set("passfile", "secrets/pgpass"),
            "passfile: must be an absolute path, got 'secrets/pgpass'",
            id="relative-passfile",
        ),
        pytest.param(
            _set("nodes.0.home", "."), "nodes.0.home: must be an absolute path", id="relative-home"
        ),
        pytest.param(_set("nodes.0.port", 70000), "nodes.0.port: ", id="port-too-high"),
        pytest.param(_set("nodes.0.port", 0), "nodes.0.port: ", id="port-zero"),
        pytest.param(_set("nodes.2.api_port", 65536), "nodes.2.api_port: ", id="api-port-high"),
        pytest.param(_set("nodes.0.port", "fivefour"), "nodes.0.port: ", id="port-not-number"),
        pytest.param(_set("colour", "blue"), "colour: Extra inputs", id="unknown-key"),
        pytest.param(_set("nodes.0.prot", 5), "nodes.0.prot: Extra inputs", id="unknown-node-key"),
        pytest.param(
            _set("nodes.0.data_dir", "/" + "d" * 100 + "/data"),
            "is too long for a Unix socket; use a shorter data_dir or home",
            id="socket-path-too-long",
        ),
        pytest.param(
            _set("settings", {"work_mem = 1; shared_buffers": 1}),
            "settings: 'work_mem = 1; shared_buffers' is not a PostgreSQL parameter name",
            id="bad-settings-key",
        ),
        pytest.param(
            _set("settings", {"a\nb": 1}), "is not a PostgreSQL parameter name", id="newline-key"
        ),
        pytest.param(_set("settings", {"work_mem": [1]}), "settings.work_mem", id="list-value"),
        pytest.param(_set("nodes", []), "nodes: ", id="no-nodes"),
        pytest.param(_drop("passfile"), "passfile: Field required", id="missing-passfile"),
        pytest.param(_set("superuser", "Admin"), "superuser: ", id="bad-role-name"),
        pytest.param(
            _set("slots", {"cdc": {"type": "logical"}}),
            "a logical slot needs database:",
            id="logical-slot-without-database",
        ),
        pytest.param(
            _set("slots", {"node1": {"type": "physical"}}),
            "slot 'node1' has a node's name",
            id="slot-named-after-a-node",
        ),
        pytest.param(
            _set("slots", {"Bad-Name": {"type": "physical"}}), "slots.Bad-Name", id="bad-slot-name"
        ),
    ],
)
def test_validation_errors_are_one_located_line(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    raw = copy.deepcopy(raw_config())
    mutate(raw)
    with pytest.raises(ConfigError) as caught:
        config.parse(raw, source="/etc/pgherd.yaml")
    line = caught.value.one_line()
    assert "\n" not in line
    assert line.startswith("/etc/pgherd.yaml: ")
    assert expected in line
    assert caught.value.hint  # says what to do


def servers(*nodes: tuple[str, str]) -> dict[str, Any]:
    """Nodes given as (host, api_host), each with the same paths and ports as a real
    server's: /var/lib/pgherd/data, 5432, 8008."""
    return {
        "cluster": "main",
        "passfile": "/etc/pgherd/pgpass",
        "api_token_file": "/etc/pgherd/api-token",
        "nodes": [
            {"name": f"node{i}", "host": host, "api_host": api, "data_dir": "/var/lib/pgherd/data"}
            for i, (host, api) in enumerate(nodes, start=1)
        ],
    }


@pytest.mark.parametrize(
    ("nodes", "problem"),
    [
        pytest.param(
            [("10.0.0.1", "10.0.0.1"), ("10.0.0.2", "10.0.0.2"), ("10.0.0.3", "10.0.0.3")],
            None,
            id="one-node-per-host",
        ),
        pytest.param(
            [("db1.example.net", "db1.example.net"), ("db2.example.net", "db2.example.net")],
            None,
            id="host-names",
        ),
        pytest.param(
            [("fd00::1", "fd00::1"), ("fd00::2", "fd00::2")],
            None,
            id="ipv6",
        ),
        pytest.param(
            [("10.0.0.1", "10.0.0.1"), ("10.0.0.1", "10.0.0.1")],
            "two nodes share the PostgreSQL address 10.0.0.1:5432",
            id="same-address-same-port",
        ),
        pytest.param(
            # the same host (its PostgreSQL address) and another API address: one machine
            [("10.0.0.1", "10.0.0.1"), ("10.0.0.1", "10.0.1.1")],
            "two nodes share the PostgreSQL address 10.0.0.1:5432",
            id="same-host-other-api-address",
        ),
        pytest.param(
            # every loopback address is this machine: one data directory for two nodes
            [("127.0.0.1", "127.0.0.1"), ("127.0.0.2", "127.0.0.2")],
            "two nodes share the data directory /var/lib/pgherd/data on one host (node1 and node2",
            id="loopback-is-one-host",
        ),
        pytest.param(
            [("::1", "::1"), ("localhost", "localhost")],
            "two nodes share the data directory /var/lib/pgherd/data on one host",
            id="localhost-is-loopback",
        ),
    ],
)
def test_paths_and_ports_are_unique_per_host_not_across_hosts(
    nodes: list[tuple[str, str]], problem: str | None
) -> None:
    raw = servers(*nodes)
    if problem is None:
        parsed = config.parse(raw)
        assert {n.data_dir for n in parsed.nodes} == {Path("/var/lib/pgherd/data")}
        assert {(n.port, n.api_port) for n in parsed.nodes} == {(5432, 8008)}
        return
    with pytest.raises(ConfigError) as caught:
        config.parse(raw)
    assert problem in str(caught.value)


def test_two_nodes_on_one_host_need_their_own_paths_even_on_other_ports() -> None:
    raw = servers(("10.0.0.1", "10.0.0.1"), ("10.0.0.1", "10.0.0.1"))
    raw["nodes"][1] |= {"port": 5433, "api_port": 8009}
    with pytest.raises(ConfigError, match="share the data directory /var/lib/pgherd/data on one"):
        config.parse(raw)
    raw["nodes"][1]["data_dir"] = "/var/lib/pgherd/data2"
    with pytest.raises(ConfigError, match="share the node home /var/lib/pgherd on one host"):
        config.parse(raw)
    raw["nodes"][1]["home"] = "/var/lib/pgherd2"
    assert config.parse(raw).node("node2").home_dir == Path("/var/lib/pgherd2")


def test_only_the_first_problem_is_shown_with_a_count_of_the_rest() -> None:
    raw = raw_config()
    raw["nodes"][0]["port"] = 0
    raw["nodes"][1]["port"] = 0
    with pytest.raises(ConfigError, match=r"nodes\.0\.port: .*\(and 1 more\)"):
        config.parse(raw)


def test_socket_path_limit_is_exactly_unix_socket_size() -> None:
    # sun_path holds 107 bytes plus NUL; the socket file is "<dir>/.s.PGSQL.<port>".
    fits = "/" + "h" * 87  # socket dir "<home>/run" is 92 bytes, socket path 107
    node = NodeConfig(name="n", data_dir=Path("/d/data"), home=Path(fits))
    assert len(str(node.socket_dir) + "/.s.PGSQL.65535") == 107
    with pytest.raises(ValueError, match="too long for a Unix socket"):
        NodeConfig(name="n", data_dir=Path("/d/data"), home=Path(fits + "h"))


@pytest.mark.parametrize("raw", [None, [], "just a string", 42], ids=repr)
def test_a_non_mapping_is_refused(raw: Any) -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml: expected a mapping at the top level"):
        config.parse(raw, source="x.yaml")


# ---- load ------------------------------------------------------------------------------


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pgherd.yaml"
    path.write_text(yaml.safe_dump(raw_config()))
    assert config.load(path).node_names == ["node1", "node2", "node3"]


def test_load_of_a_missing_file_says_how_to_get_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        config.load(missing)
    assert caught.value.message == f"no config file at {missing}"
    assert "pass -c FILE" in caught.value.hint
    assert "PGHERD_CONFIG" in caught.value.hint
    assert "pgherd lab up --dir DIR" in caught.value.hint


def test_load_of_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pgherd.yaml"
    path.write_text("cluster: lab\nnodes: [unclosed\n  - x: {\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.message.startswith(f"{path} is not valid YAML: ")
    assert "\n" not in caught.value.one_line()
    assert caught.value.hint


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_load_of_a_non_mapping_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pgherd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{re.escape(str(path))}: expected a mapping"):
        config.load(path)


def test_load_of_an_invalid_config_names_the_file_and_field(tmp_path: Path) -> None:
    raw = raw_config()
    raw["nodes"][1]["name"] = "Node-2"
    path = tmp_path / "pgherd.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: nodes\\.1\\.name: "):
        config.load(path)


@pytest.mark.parametrize("kind", ["directory", "not-utf8"])
def test_load_of_an_unreadable_path_is_a_config_error(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path
    else:
        path = tmp_path / "pgherd.yaml"
        path.write_bytes(b"cluster: \xff\xfe\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        config.load(path)


# ---- where the config comes from ---------------------------------------------------------


def test_config_path_prefers_the_explicit_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHERD_CONFIG", "/from/env.yaml")
    assert config.config_path(Path("/from/option.yaml")) == Path("/from/option.yaml")


def test_config_path_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHERD_CONFIG", "/from/env.yaml")
    assert config.config_path(None) == Path("/from/env.yaml")


@pytest.mark.parametrize("env", [None, ""])
def test_config_path_defaults_to_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, env: str | None, tmp_path: Path
) -> None:
    if env is None:
        monkeypatch.delenv("PGHERD_CONFIG", raising=False)
    else:
        monkeypatch.setenv("PGHERD_CONFIG", env)
    monkeypatch.chdir(tmp_path)
    server = tmp_path / "etc" / "pgherd.yaml"
    monkeypatch.setattr(config_lite, "SERVER_CONFIG", server)  # where config_path lives
    # Neither exists: ./pgherd.yaml, whose absence load() reports naming both places.
    assert config.config_path(None) == Path("pgherd.yaml")
    with pytest.raises(ConfigError, match=f"no config file at pgherd.yaml or {server}$"):
        config.load(config.config_path(None))
    # A server's file, when the current directory has none.
    server.parent.mkdir()
    server.write_text(yaml.safe_dump(raw_config()))
    assert config.config_path(None) == server
    # ./pgherd.yaml comes first.
    (tmp_path / "pgherd.yaml").write_text(yaml.safe_dump(raw_config()))
    assert config.config_path(None) == Path("pgherd.yaml")


def test_the_fingerprint_ignores_spelling_and_console_logins() -> None:
    raw = raw_config()
    base = config.fingerprint(config.parse(raw))
    assert len(base) == 12
    spelled_out = raw | {"topology": "streaming", "history": {"interval": 5}}
    assert config.fingerprint(config.parse(spelled_out)) == base
    logins = raw | {"console": {"users": [{"name": "ann", "password_hash": "x"}]}}
    assert config.fingerprint(config.parse(logins)) == base
    changed = raw | {"settings": {"work_mem": "8MB"}}
    assert config.fingerprint(config.parse(changed)) != base


# ---- the API token -----------------------------------------------------------------------


def _with_token_file(path: Path) -> ClusterConfig:
    raw = raw_config()
    raw["api_token_file"] = str(path)
    return config.parse(raw)


def test_read_token_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("PGHERD_API_TOKEN", " from-env \n")
    assert config.read_token(_with_token_file(token_file)) == "from-env"


def test_read_token_reads_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGHERD_API_TOKEN", raising=False)
    token_file = tmp_path / "api-token"
    token_file.write_text("from-file\n")
    assert config.read_token(_with_token_file(token_file)) == "from-file"


def test_read_token_without_a_file_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGHERD_API_TOKEN", raising=False)
    token_file = tmp_path / "missing-token"
    with pytest.raises(ConfigError) as caught:
        config.read_token(_with_token_file(token_file))
    assert str(token_file) in caught.value.message
    assert "PGHERD_API_TOKEN" in caught.value.hint


def test_read_token_refuses_an_empty_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGHERD_API_TOKEN", raising=False)
    token_file = tmp_path / "api-token"
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        config.read_token(_with_token_file(token_file))


# ---- nodes -------------------------------------------------------------------------------


def test_node_paths_default_to_the_data_directory_parent() -> None:
    node = config.parse(raw_config()).node("node1")
    assert node.home_dir == Path("/var/tmp/lab/n1")
    assert node.socket_dir == Path("/var/tmp/lab/n1/run")
    assert node.server_log == Path("/var/tmp/lab/n1/postgresql.log")
    assert node.agent_log == Path("/var/tmp/lab/n1/agent.log")
    assert node.agent_pid_file == Path("/var/tmp/lab/n1/agent.pid")
    assert node.api_url == "https://127.0.0.1:6441"


def test_node_paths_follow_an_explicit_home() -> None:
    node = config.parse(raw_config()).node("node3")
    assert node.home_dir == Path("/srv/pgherd")
    assert node.socket_dir == Path("/srv/pgherd/run")
    assert node.api_url == "https://10.0.0.3:6441"


def test_api_url_brackets_an_ipv6_address() -> None:
    node = NodeConfig(name="n", api_host="::1", api_port=8008, data_dir=Path("/d/data"))
    assert node.api_url == "http://[::1]:8008"


def test_unknown_node_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNode) as caught:
        config.parse(raw_config()).node("node9")
    assert caught.value.one_line() == "unknown node 'node9' — known nodes: node1, node2, node3"


@pytest.mark.parametrize(
    ("host", "port", "name"),
    [
        ("127.0.0.1", 5441, "node1"),
        ("127.0.0.1", 5442, "node2"),
        ("10.0.0.3", 5441, "node3"),
        ("127.0.0.1", 5443, None),
        ("10.0.0.9", 5441, None),
        (None, None, None),
    ],
)
def test_node_at_finds_the_node_listening_there(
    host: str | None, port: int | None, name: str | None
) -> None:
    found = config.parse(raw_config()).node_at(host, port)
    assert (found.name if found else None) == name


def test_pg_bin_of_a_node_overrides_the_clusters() -> None:
    raw = raw_config()
    raw["pg_bin"] = "/usr/lib/postgresql/15/bin"
    raw["nodes"][1]["pg_bin"] = "/opt/pg16/bin"
    parsed = config.parse(raw)
    assert parsed.pg_bin_for(parsed.node("node1")) == Path("/usr/lib/postgresql/15/bin")
    assert parsed.pg_bin_for(parsed.node("node2")) == Path("/opt/pg16/bin")


def test_permanent_slots_parse() -> None:
    raw = copy.deepcopy(raw_config())
    raw["slots"] = {"cdc": {"database": "shop"}, "archiver": {"type": "physical"}}
    found = config.parse(raw).slots
    assert (found["cdc"].type, found["cdc"].database, found["cdc"].plugin) == (
        "logical",
        "shop",
        "pgoutput",
    )
    assert found["archiver"].type == "physical"
