"""The secrets of a cluster on servers (docs/deploy.md, steps 3 and "Add a node"), through
the CLI as an operator runs it: ``secrets init`` makes the etcd members' and the store's
client certificates, run again after a node is added it makes only that node's files, and
``secrets rotate --tls`` issues every certificate again, etcd's included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pgherd import config as config_mod
from pgherd.pg import osuser
from pgherd.tls import certs


def servers_yaml(directory: Path, nodes: int) -> dict[str, Any]:
    return {
        "cluster": "main",
        "passfile": str(directory / "secrets" / "pgpass"),
        "api_token_file": str(directory / "secrets" / "api-token"),
        "failover": "automatic",
        "ha": {
            "dcs": {
                "etcd": [f"https://10.0.0.{i}:2379" for i in (1, 2, 3)],
                "cert": str(directory / "secrets" / "tls" / "dcs-client.crt"),
                "key": str(directory / "secrets" / "tls" / "dcs-client.key"),
            }
        },
        "nodes": [
            {
                "name": f"node{i}",
                "host": f"10.0.0.{i}",
                "api_host": f"10.0.0.{i}",
                "data_dir": "/var/lib/pgherd/data",  # the same on every server
            }
            for i in range(1, nodes + 1)
        ],
    }


def pgherd(path: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "pgherd", *args, "--json", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_secrets_for_servers_etcd_included_a_node_added_then_rotated(
    workdir: Path, os_user: osuser.OsUser
) -> None:
    path = workdir / "pgherd.yaml"
    os_user.write_file(path, config_mod.dump(config_mod.parse(servers_yaml(workdir, 3))))
    first = pgherd(path, "secrets", "init")
    config = config_mod.load(path)
    names = {Path(f["path"]).name for f in first["files"] if f["action"] == "created"}
    assert {"etcd1.crt", "etcd2.key", "etcd3.crt", "dcs-client.crt", "dcs-client.key"} <= names
    ca = (config.tls_dir / "ca.crt").read_bytes()
    etcd2 = certs.facts(config.cert_files("etcd2")[0].read_bytes(), ca)
    assert etcd2.signed_by_ca and etcd2.addresses == ("10.0.0.2",)
    assert config.cert_files("etcd2")[1].stat().st_uid == os_user.uid

    # docs/deploy.md, "Add a node": the config on every host, then secrets init again.
    os_user.write_file(path, config_mod.dump(config_mod.parse(servers_yaml(workdir, 4))))
    added = pgherd(path, "secrets", "init")
    changed = {(Path(f["path"]).name, f["action"]) for f in added["files"] if f["action"] != "kept"}
    assert changed == {
        ("node4", "created"),
        ("node4.crt", "created"),
        ("node4.key", "created"),
        ("api-grants.json", "updated"),
    }

    rotated = pgherd(path, "secrets", "rotate", "--tls", "--grace", "0")
    assert set(rotated["certificates"]) == {
        *(f"node{i}" for i in (1, 2, 3, 4)),
        *(f"etcd{i}" for i in (1, 2, 3)),
        "dcs-client",
    }
