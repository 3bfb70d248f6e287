"""The shape of a lab: names, ports and paths, and the limits on --nodes and --port-base."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd.errors import InvalidInput
from pgherd.lab import layout

LAB = Path("/var/tmp/pgherd-lab")


def test_lab_config_names_nodes_and_gives_each_its_ports_and_directory() -> None:
    config = layout.lab_config(LAB, layout.LabShape(3, 5440, "postgres", None))
    assert config.cluster == "lab"
    assert config.os_user == "postgres"
    assert config.pg_bin is None
    assert config.node_names == ["node1", "node2", "node3"]
    assert [n.port for n in config.nodes] == [5440, 5441, 5442]
    assert [n.api_port for n in config.nodes] == [6440, 6441, 6442]
    assert {n.host for n in config.nodes} == {"127.0.0.1"}
    assert {n.api_host for n in config.nodes} == {"127.0.0.1"}
    assert [n.data_dir for n in config.nodes] == [LAB / f"node{i}" / "data" for i in (1, 2, 3)]
    assert config.passfile == LAB / "secrets" / "pgpass"
    assert config.api_token_file == LAB / "secrets" / "api-token"


def test_lab_config_keeps_the_chosen_binaries_and_user() -> None:
    config = layout.lab_config(LAB, layout.LabShape(1, 20000, "pgtest", Path("/opt/pg16/bin")))
    assert config.os_user == "pgtest"
    assert config.pg_bin == Path("/opt/pg16/bin")
    assert config.node_names == ["node1"]


def test_lab_config_makes_a_relative_directory_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/var/tmp")
    config = layout.lab_config(Path("lab"), layout.LabShape(1, 5440, "postgres", None))
    assert config.nodes[0].data_dir == Path("/var/tmp/lab/node1/data")


@pytest.mark.parametrize("nodes", [0, -1, 17])
def test_nodes_out_of_range(nodes: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        layout.lab_config(LAB, layout.LabShape(nodes, 5440, "postgres", None))
    assert caught.value.one_line() == f"--nodes {nodes} is out of range — use 1 to 16 nodes"


def test_ten_nodes_fit() -> None:
    config = layout.lab_config(
        LAB, layout.LabShape(10, 5440, "postgres", None, failover="automatic")
    )
    assert config.node_names[-1] == "node10"
    assert len({n.port for n in config.nodes} | {n.api_port for n in config.nodes}) == 20


@pytest.mark.parametrize(("port_base", "nodes"), [(1023, 3), (64534, 3), (64528, 9), (0, 1)])
def test_port_base_out_of_range(port_base: int, nodes: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        layout.lab_config(LAB, layout.LabShape(nodes, port_base, "postgres", None))
    top = port_base + 1000 + nodes - 1
    assert caught.value.message == (
        f"--port-base {port_base} gives ports outside 1024-65535 (the API ports go up to {top})"
    )
    assert caught.value.hint == f"use a port base from 1024 to {65535 - 1000 - nodes + 1}"


@pytest.mark.parametrize(("port_base", "nodes"), [(1024, 3), (64533, 3), (64527, 9)])
def test_port_base_at_the_limits(port_base: int, nodes: int) -> None:
    config = layout.lab_config(LAB, layout.LabShape(nodes, port_base, "postgres", None))
    assert max(n.api_port for n in config.nodes) <= 65535
    assert min(n.port for n in config.nodes) == port_base


def test_wanted_ports_lists_every_server_and_agent_port() -> None:
    config = layout.lab_config(LAB, layout.LabShape(2, 5440, "postgres", None))
    assert layout.wanted_ports(config) == [
        ("127.0.0.1", 5440, "node1 PostgreSQL"),
        ("127.0.0.1", 6440, "node1 agent API"),
        ("127.0.0.1", 5441, "node2 PostgreSQL"),
        ("127.0.0.1", 6441, "node2 agent API"),
    ]
