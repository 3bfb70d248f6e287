"""Secret files: created once, kept, replaced only when asked (credentials/files.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pgherd import credentials
from pgherd.config import ClusterConfig
from pgherd.credentials.files import Action, init
from pgherd.errors import Refused
from pgherd.lab import layout
from pgherd.pg.osuser import OsUser

ME = OsUser("me", os.geteuid(), os.getegid(), Path("/"))


def config_in(tmp_path: Path) -> ClusterConfig:
    config = layout.lab_config(tmp_path, layout.LabShape(1, 25440, "postgres", None))
    return config.model_copy(
        update={"passfile": tmp_path / "s" / "passfile", "api_token_file": tmp_path / "s" / "token"}
    )


class _Pair:
    """A kind with two files, as a certificate and its key are."""

    name = "pair"

    def __init__(self, base: Path) -> None:
        self.files = (base / "a.crt", base / "a.key")

    def paths(self, config: ClusterConfig) -> tuple[Path, ...]:
        return self.files

    def generate(self, config: ClusterConfig) -> Mapping[Path, str]:
        return {p: p.name for p in self.files}

    def extend(self, config: ClusterConfig, missing: Sequence[Path]) -> Mapping[Path, str] | None:
        return None


def test_missing_files_are_created_and_present_ones_kept(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    first = init(config, ME, credentials.KINDS)
    # every file of every kind once, in the kinds' order (the grants after the token)
    assert list(dict.fromkeys((w.kind, w.action) for w in first)) == [
        ("passfile", Action.CREATED),
        ("API token", Action.CREATED),
        ("API credentials (viewer, nodes, grants)", Action.CREATED),
        *([("TLS (cluster CA and member certificates)", Action.CREATED)] if config.tls_on else []),
    ]
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    token = config.api_token_file.read_text()
    config.passfile.unlink()
    second = init(config, ME, credentials.KINDS)
    assert [(w.kind, w.action) for w in second[:2]] == [
        ("passfile", Action.CREATED),
        ("API token", Action.KEPT),
    ]
    assert {w.action for w in second[2:]} == {Action.KEPT}
    assert config.api_token_file.read_text() == token
    forced = init(config, ME, credentials.KINDS, force=True)
    assert {w.action for w in forced} == {Action.REPLACED}
    assert config.api_token_file.read_text() != token


def test_a_kind_with_half_its_files_is_refused(tmp_path: Path) -> None:
    pair = _Pair(tmp_path)
    pair.files[0].write_text("only the certificate")
    with pytest.raises(Refused, match=r"pair: .*a\.crt exists but .*a\.key does not"):
        init(config_in(tmp_path), ME, [pair])
    assert not pair.files[1].exists()
    written = init(config_in(tmp_path), ME, [pair], force=True)
    assert [w.action for w in written] == [Action.REPLACED, Action.CREATED]


def servers_config(tmp_path: Path, nodes: int = 3, **dcs: object) -> ClusterConfig:
    """Three servers with an etcd member each (docs/deploy.md)."""
    from pgherd import config as config_mod

    return config_mod.parse(
        {
            "cluster": "main",
            "passfile": str(tmp_path / "s" / "pgpass"),
            "api_token_file": str(tmp_path / "s" / "api-token"),
            "failover": "automatic",
            "ha": {
                "dcs": {"etcd": [f"https://10.0.0.{i}:2379" for i in (1, 2, 3)], **dcs},
            },
            "nodes": [
                {
                    "name": f"node{i}",
                    "host": f"10.0.0.{i}",
                    "api_host": f"10.0.0.{i}",
                    "data_dir": f"/srv/node{i}/data",
                }
                for i in range(1, nodes + 1)
            ],
        }
    )


def test_secrets_init_issues_the_etcd_members_and_the_store_client_their_certificates(
    tmp_path: Path,
) -> None:
    from pgherd.tls import certs

    config = servers_config(tmp_path)
    init(config, ME, credentials.KINDS)
    ca = (config.tls_dir / "ca.crt").read_bytes()
    for i in (1, 2, 3):
        cert, key = config.cert_files(f"etcd{i}")
        found = certs.facts(cert.read_bytes(), ca)
        assert found.signed_by_ca and found.addresses == (f"10.0.0.{i}",)
        assert key.stat().st_mode & 0o777 == 0o600
    client, _ = config.cert_files("dcs-client")
    assert certs.facts(client.read_bytes(), ca).signed_by_ca


def test_an_etcd_with_a_ca_of_its_own_gets_no_certificate_from_the_cluster_ca(
    tmp_path: Path,
) -> None:
    config = servers_config(tmp_path, ca=str(tmp_path / "etcd-ca.crt"))
    init(config, ME, credentials.KINDS)
    assert config.cert_files("node1")[0].exists()
    assert not config.cert_files("etcd1")[0].exists()
    assert not config.cert_files("dcs-client")[0].exists()


def test_a_node_added_since_gets_its_token_and_certificate_and_the_rest_is_kept(
    tmp_path: Path,
) -> None:
    import json

    from pgherd.model.access import parse_grants
    from pgherd.tls import certs

    init(servers_config(tmp_path), ME, credentials.KINDS)
    before = servers_config(tmp_path)
    kept = {p: p.read_bytes() for kind in credentials.KINDS for p in kind.paths(before)}
    grants_before = parse_grants(json.loads(before.grants_file.read_text()))

    config = servers_config(tmp_path, nodes=4)  # docs/deploy.md, "Add a node"
    written = {(w.path, w.action) for w in init(config, ME, credentials.KINDS)}
    cert, key = config.cert_files("node4")
    token = config.node_token_file("node4")
    changed = {(p, a) for p, a in written if a is not Action.KEPT}
    assert changed == {
        (cert, Action.CREATED),
        (key, Action.CREATED),
        (token, Action.CREATED),
        (config.grants_file, Action.UPDATED),
    }
    for path, content in kept.items():
        if path != config.grants_file:
            assert path.read_bytes() == content, f"{path} changed"
    ca = (config.tls_dir / "ca.crt").read_bytes()
    found = certs.facts(cert.read_bytes(), ca)
    assert found.signed_by_ca and "10.0.0.4" in found.addresses
    grants = parse_grants(json.loads(config.grants_file.read_text()))
    assert set(grants_before.grants) < set(grants.grants)
    granted = grants.check(token.read_text().strip().encode(), now=0)
    assert granted is not None and granted.name == "node4"


def test_a_missing_ca_key_is_not_made_up_for_a_node_added_since(tmp_path: Path) -> None:
    init(servers_config(tmp_path), ME, credentials.KINDS)
    (servers_config(tmp_path).tls_dir / "ca.key").unlink()
    with pytest.raises(Refused, match=r"TLS .*ca\.key"):
        init(servers_config(tmp_path, nodes=4), ME, credentials.KINDS)
    assert not servers_config(tmp_path, nodes=4).cert_files("node4")[0].exists()
