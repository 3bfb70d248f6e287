"""Which secret files each host needs (model/secrets_layout.py): table tests, no files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd import config
from pgherd.credentials.hosts import layout
from pgherd.model.secrets_layout import HostFiles, Member, SecretPaths, per_host

ETC = Path("/etc/pgherd")
MEMBERS = (
    Member("node1", "10.0.0.1", data=True),
    Member("node2", "10.0.0.2", data=True),
    Member("w1", "10.0.0.9", data=False),
)


def paths(tls: bool = True) -> SecretPaths:
    return SecretPaths(
        passfile=ETC / "pgpass",
        operator_token=ETC / "api-token",
        viewer_token=ETC / "api-viewer-token",
        grants=ETC / "api-grants.json",
        node_tokens={m.name: ETC / "node-tokens" / m.name for m in MEMBERS},
        ca_cert=ETC / "tls/ca.crt" if tls else None,
        ca_key=ETC / "tls/ca.key" if tls else None,
        member_certs={
            m.name: (ETC / f"tls/{m.name}.crt", ETC / f"tls/{m.name}.key") for m in MEMBERS
        }
        if tls
        else {},
    )


@pytest.mark.parametrize(
    ("tls", "member", "files"),
    [
        (
            True,
            "node2",
            [
                "pgpass",
                "api-grants.json",
                "node-tokens/node2",
                "tls/ca.crt",
                "tls/node2.crt",
                "tls/node2.key",
            ],
        ),
        (
            True,
            "w1",
            ["api-grants.json", "node-tokens/w1", "tls/ca.crt", "tls/w1.crt", "tls/w1.key"],
        ),
        (False, "node1", ["pgpass", "api-grants.json", "node-tokens/node1"]),
        (False, "w1", ["api-grants.json", "node-tokens/w1"]),
    ],
)
def test_each_host_gets_its_own_files_only(tls: bool, member: str, files: list[str]) -> None:
    found = {h.member: h for h in per_host(MEMBERS, paths(tls)).hosts}
    assert [str(p.relative_to(ETC)) for p in found[member].paths] == files


def test_the_ca_key_and_the_peoples_tokens_go_to_no_agent() -> None:
    made = per_host(MEMBERS, paths())
    assert made.stays == (ETC / "tls/ca.key",)
    assert made.operators == (ETC / "api-token", ETC / "api-viewer-token", ETC / "tls/ca.crt")
    for host in made.hosts:
        assert ETC / "tls/ca.key" not in host.paths
        assert ETC / "api-token" not in host.paths
    assert per_host(MEMBERS, paths(tls=False)).stays == ()


def test_the_copy_command_takes_each_directory_itself_then_the_files() -> None:
    host = HostFiles("node2", "10.0.0.2", (ETC / "pgpass", ETC / "node-tokens/node2"))
    assert host.directories == (ETC, ETC / "node-tokens")
    assert host.tar_pipe() == (
        "tar --no-recursion -C / -cpf - etc/pgherd etc/pgherd/node-tokens etc/pgherd/pgpass "
        "etc/pgherd/node-tokens/node2 | ssh root@10.0.0.2 tar -C / -xpf -"
    )


def test_the_layout_follows_pgherd_yaml() -> None:
    raw = {
        "cluster": "c",
        "passfile": "/etc/pgherd/pgpass",
        "api_token_file": "/etc/pgherd/api-token",
        "nodes": [
            {"name": "node1", "host": "10.0.0.1", "api_host": "10.0.0.1", "data_dir": "/d/1/data"},
            {"name": "node2", "host": "10.0.0.2", "api_host": "10.0.0.2", "data_dir": "/d/2/data"},
        ],
    }
    made = layout(config.parse(raw))
    assert [(h.member, h.host) for h in made.hosts] == [
        ("node1", "10.0.0.1"),
        ("node2", "10.0.0.2"),
    ]
    assert ETC / "tls/node2.key" in made.hosts[1].paths
    assert ETC / "node-tokens/node2" in made.hosts[1].paths
