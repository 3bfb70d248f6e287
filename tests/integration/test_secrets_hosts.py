"""``pgherd secrets init`` on real hosts says which files each host needs; its copy
command, run as it says (the ssh hop replaced by a second root directory standing for the
other host), puts exactly that host's files there with their modes and owner."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.lab import layout
from pgherd.pg import osuser
from tests.support import pgherd

pytestmark = pytest.mark.integration


def test_secrets_init_says_which_files_go_to_which_host(
    workdir: Path, os_user: osuser.OsUser
) -> None:
    config = layout.lab_config(
        workdir, layout.LabShape(2, 25440, "postgres", None, failover="automatic")
    )
    config = config_mod.parse(
        config.model_dump(mode="json")
        | {
            "passfile": str(workdir / "etc" / "passfile"),
            "api_token_file": str(workdir / "etc" / "token"),
        }
    )
    path = workdir / "pgherd.yaml"
    path.write_text(config_mod.dump(config))
    said = json.loads(pgherd("secrets", "init", "--json", config=path).stdout)
    assert said["owner"] == "postgres" and said["mode"] == "0600"
    hosts = {h["member"]: h for h in said["hosts"]}
    etc = workdir / "etc"
    assert hosts["node2"]["files"] == [
        str(etc / "passfile"),
        str(etc / "api-grants.json"),
        str(etc / "node-tokens" / "node2"),
        str(etc / "tls" / "ca.crt"),
        str(etc / "tls" / "node2.crt"),
        str(etc / "tls" / "node2.key"),
    ]
    assert said["stays_here"] == [str(etc / "tls" / "ca.key")]
    assert str(etc / "token") in said["operators"]

    text = pgherd("secrets", "init", config=path).stdout
    line = next(s for s in text.splitlines() if s.startswith("  node2: "))
    copy, remote = line.removeprefix("  node2: ").split(" | ")
    assert remote == "ssh root@127.0.0.1 tar -C / -xpf -"
    other_host = workdir / "node2-root"
    other_host.mkdir()
    archive = subprocess.run(shlex.split(copy), capture_output=True, check=True, timeout=30)
    subprocess.run(
        ["tar", "-C", str(other_host), "-xpf", "-"], input=archive.stdout, check=True, timeout=30
    )
    copied = sorted(
        "/" + str(p.relative_to(other_host)) for p in other_host.rglob("*") if p.is_file()
    )
    assert copied == sorted(hosts["node2"]["files"])  # node1's key and token stay behind
    for name in hosts["node2"]["files"]:
        st = (other_host / name.lstrip("/")).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os_user.uid
    for name in hosts["node2"]["directories"]:
        st = (other_host / name.lstrip("/")).stat()
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os_user.uid
