"""The quick commands' config (pgherd.config_lite) holds what the validated config holds:
the same fields under the same names, with the same values, and the same lookups."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pgherd import config, config_lite
from pgherd.config import ClusterConfig
from pgherd.config_lite import LiteConfig
from pgherd.errors import UnknownNode
from pgherd.lab import layout


def full_raw() -> dict[str, Any]:
    """A config that sets every optional part: etcd, witnesses, archive, per-node values."""
    return {
        "cluster": "prod",
        "os_user": "pg",
        "pg_bin": "/usr/lib/postgresql/15/bin",
        "superuser": "admin",
        "replication_user": "repl",
        "passfile": "/etc/pgherd/pgpass",
        "api_token_file": "/etc/pgherd/token",
        "settings": {"work_mem": "8MB", "max_connections": 200, "jit": False, "x.y": 1.5},
        "failover": "automatic",
        "ha": {
            "dcs": {
                "etcd": ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
                "ca": "/etc/etcd/ca.crt",
                "cert": "/etc/pgherd/etcd-client.crt",
                "key": "/etc/pgherd/etcd-client.key",
                "username": "pgherd",
                "password_file": "/etc/pgherd/etcd-password",
            },
            "ttl": 10,
            "loop_wait": 1,
            "retry_timeout": 2,
            "synchronous": True,
            "synchronous_quorum": 1,
            "failsafe": True,
        },
        "archive": {
            "path": "/srv/archive",
            "cleanup_keep": 3,
            "cleanup_interval": 600,
            "retention": {"keep_full": 2},
            "repositories": [
                {"name": "offsite", "path": "/mnt/offsite", "encryption_key_file": "/etc/key"}
            ],
        },
        "nodes": [
            {"name": "db1", "host": "10.0.0.1", "port": 5432, "api_host": "10.0.0.1",
             "api_port": 8008, "data_dir": "/srv/pg/data"},
            {"name": "db2", "host": "10.0.0.2", "port": 5432, "api_host": "10.0.0.2",
             "api_port": 8008, "data_dir": "/srv/pg/data2", "home": "/srv/pgherd",
             "pg_bin": "/opt/pg16/bin", "nofailover": True, "replicate_from": "db1"},
            {"name": "db3", "host": "::1", "port": 5433, "api_host": "::1", "api_port": 8009,
             "data_dir": "/srv/pg3/data"},
        ],
        "witnesses": [
            {"name": "w1", "api_host": "10.0.0.9", "api_port": 8008, "home": "/srv/witness"}
        ],
        "api": {"auth_reads": True},
        "tls": {"dir": "/etc/pgherd/tls", "client_certs": True},
        "backup": {"from_standby": True, "workers": 4},
    }  # fmt: skip


LAB = Path("/var/tmp/pgherd-lab")
CONFIGS = {
    "lab": layout.lab_config(LAB, layout.LabShape(3, 5440, "postgres")),
    "lab, automatic, archive": layout.lab_config(
        LAB, layout.LabShape(2, 5440, "postgres", failover="automatic", archive=True)
    ),
    "independent": layout.lab_config(LAB, layout.LabShape(2, 5440, "postgres", independent=True)),
    "everything set": config.parse(full_raw()),
    "tls off": layout.lab_config(
        LAB, layout.LabShape(2, 5440, "postgres", failover="automatic", dcs="etcd", tls=False)
    ),
    "tls: true": config.parse(
        {k: v for k, v in full_raw().items() if k not in ("ha", "failover", "witnesses")}
        | {"tls": True}
    ),
}

# Computed from the validated file, not fields of it (tested below).
DERIVED = {"fingerprint", "repository_specs", "api_ca"}
# Fields of the validated config the quick commands do not read (and so do not mirror).
NOT_MIRRORED = {
    "ClusterConfig": {"history", "console"},
    "BackupConfig": {"schedule"},  # the agents run it; backup create reads workers
    # held as the repositories ArchiveConfig.specs() makes of them (repository_specs)
    "ArchiveConfig": {"retention", "repositories"},
}
PROPERTIES = {
    "LiteNode": (
        "home_dir", "socket_dir", "server_log", "agent_log", "agent_pid_file", "api_url",
        "api_ca",
    ),
    "LiteWitness": ("home_dir", "agent_log", "agent_pid_file", "api_url", "api_ca"),
    "LiteEtcdDcs": ("https",),
    "LiteConfig": (
        "automatic", "node_names", "independent", "tls_on", "tls_dir", "ca_file",
        "viewer_token_file", "grants_file",
    ),
}  # fmt: skip


def same(lite: object, validated: object, where: str) -> None:
    """Every field (and property) of ``lite`` equals the validated config's."""
    if not dataclasses.is_dataclass(lite):
        assert lite == validated, where
        assert type(lite) is type(validated) or (
            isinstance(lite, tuple | dict) and isinstance(validated, tuple | dict)
        ), f"{where}: {type(lite).__name__} vs {type(validated).__name__}"
        return
    for f in dataclasses.fields(lite):
        if f.name in DERIVED:
            continue
        ours, theirs = getattr(lite, f.name), getattr(validated, f.name)
        if isinstance(ours, tuple) and ours and dataclasses.is_dataclass(ours[0]):
            assert len(ours) == len(theirs), f"{where}.{f.name}"
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                same(a, b, f"{where}.{f.name}.{i}")
        elif dataclasses.is_dataclass(ours):
            same(ours, theirs, f"{where}.{f.name}")
        else:
            assert ours == theirs, f"{where}.{f.name}: {ours!r} != {theirs!r}"
    for name in PROPERTIES.get(type(lite).__name__, ()):
        assert getattr(lite, name) == getattr(validated, name), f"{where}.{name}"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_lite_config_holds_what_the_validated_one_holds(name: str) -> None:
    validated = CONFIGS[name]
    same(validated.lite(), validated, name)


@pytest.mark.parametrize(
    ("lite_class", "model"),
    [
        (config_lite.LiteConfig, config.ClusterConfig),
        (config_lite.LiteNode, config.NodeConfig),
        (config_lite.LiteWitness, config.WitnessConfig),
        (config_lite.LiteHa, config.HaConfig),
        (config_lite.LiteArchive, config.ArchiveConfig),
        (config_lite.LiteSqliteDcs, config.SqliteDcs),
        (config_lite.LiteEtcdDcs, config.EtcdDcs),
        (config_lite.LiteTls, config.TlsConfig),
        (config_lite.LiteApi, config.ApiConfig),
        (config_lite.LiteBackup, config.BackupConfig),
    ],
)
def test_every_field_is_mirrored_or_left_out_on_purpose(lite_class: type, model: Any) -> None:
    mirrored = {f.name for f in dataclasses.fields(lite_class)} - DERIVED
    fields = set(model.model_fields)
    assert mirrored <= fields, f"{lite_class.__name__} has fields {model.__name__} lacks"
    assert fields - mirrored == NOT_MIRRORED.get(model.__name__, set()), (
        f"{model.__name__} has fields {sorted(fields - mirrored)} that "
        f"pgherd.config_lite.{lite_class.__name__} does not mirror: add them there (the quick "
        "commands read the config through it) or list them in NOT_MIRRORED"
    )


def test_lookups_answer_alike() -> None:
    validated = CONFIGS["everything set"]
    lite = validated.lite()
    assert lite.node("db2").name == "db2"
    assert lite.node_at("10.0.0.2", 5432) == lite.node("db2")
    assert validated.node_at("10.0.0.2", 5432) == validated.node("db2")
    assert lite.node_at("10.0.0.2", 5433) is None
    assert lite.witness("w1") is not None and lite.witness("db1") is None
    assert lite.pg_bin_for(lite.node("db2")) == validated.pg_bin_for(validated.node("db2"))
    assert lite.pg_bin_for(lite.node("db1")) == Path("/usr/lib/postgresql/15/bin")
    assert lite.node("db3").api_url == "https://[::1]:8009"
    assert lite.node_token_file("db1") == validated.node_token_file("db1")
    assert lite.cert_files("w1") == validated.cert_files("w1")
    assert lite.tls_settings.client_certs and validated.tls_settings.client_certs
    for form in (lite, validated):
        with pytest.raises(UnknownNode, match="unknown node 'db9'") as refused:
            form.node("db9")
        assert refused.value.hint == "known nodes: db1, db2, db3"


def test_a_malformed_validated_mapping_is_refused() -> None:
    good = CONFIGS["lab"].model_dump(mode="json")
    for broken in (
        good | {"cluster": 5},
        good | {"topology": "ring"},
        good | {"nodes": [good["nodes"][0] | {"port": "5432"}]},
        good | {"nodes": [good["nodes"][0] | {"nofailover": 1}]},
        {k: v for k, v in good.items() if k != "passfile"},
    ):
        with pytest.raises((KeyError, TypeError, ValueError)):
            config_lite.from_validated(broken, config.derived(CONFIGS["lab"]))


def test_as_lite_takes_either_form() -> None:
    validated: ClusterConfig = CONFIGS["lab"]
    lite: LiteConfig = validated.lite()
    assert config_lite.as_lite(lite) is lite
    assert config_lite.as_lite(validated) == lite


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_fingerprint_is_the_validated_configs(name: str) -> None:
    validated = CONFIGS[name]
    assert validated.lite().fingerprint == config.fingerprint(validated)
    assert len(config.fingerprint(validated)) == 12


def test_the_archives_repositories_are_the_validated_configs() -> None:
    validated = CONFIGS["everything set"]
    assert validated.archive is not None
    lite = validated.lite().archive
    assert lite is not None
    assert lite.specs() == validated.archive.specs()
    assert [s.name for s in lite.specs()] == ["main", "offsite"]
