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


def test_with_etcd_every_host_reaches_the_store_and_a_members_host_gets_its_certificate() -> None:
    raw = {
        "cluster": "c",
        "passfile": "/etc/pgherd/pgpass",
        "api_token_file": "/etc/pgherd/api-token",
        "failover": "automatic",
        "ha": {
            "dcs": {
                # two members on the nodes' hosts, one on a host of its own
                "etcd": [f"https://10.0.0.{i}:2379" for i in (1, 2, 7)],
                "cert": "/etc/pgherd/tls/dcs-client.crt",
                "key": "/etc/pgherd/tls/dcs-client.key",
            }
        },
        "nodes": [
            {"name": f"node{i}", "host": f"10.0.0.{i}", "api_host": f"10.0.0.{i}", "data_dir": "/d"}
            for i in (1, 2, 3)
        ],
    }
    made = layout(config.parse(raw))
    found = {h.member: [str(p.relative_to(ETC)) for p in h.paths] for h in made.hosts}
    client = ["tls/dcs-client.crt", "tls/dcs-client.key"]
    assert found["node2"][-4:] == [*client, "tls/etcd2.crt", "tls/etcd2.key"]
    assert found["node3"][-2:] == client  # no etcd member on its host
    assert not any("etcd3" in f for files in found.values() for f in files)
    assert [str(p.relative_to(ETC)) for p in made.operators][-2:] == client


def test_an_etcd_with_its_own_ca_needs_that_ca_everywhere_and_no_member_certificate() -> None:
    raw = {
        "cluster": "c",
        "passfile": "/etc/pgherd/pgpass",
        "api_token_file": "/etc/pgherd/api-token",
        "failover": "automatic",
        "ha": {
            "dcs": {
                "etcd": ["https://10.0.0.1:2379"],
                "ca": "/etc/etcd-ca.crt",
                "username": "pgherd",
                "password_file": "/etc/pgherd/etcd-password",
            }
        },
        "nodes": [
            {"name": "node1", "host": "10.0.0.1", "api_host": "10.0.0.1", "data_dir": "/d"},
        ],
    }
    made = layout(config.parse(raw))
    assert made.hosts[0].paths[-2:] == (Path("/etc/etcd-ca.crt"), ETC / "etcd-password")
