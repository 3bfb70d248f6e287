"""What a service needs on a host, without servers: the systemd unit that
``pgherd agent unit`` prints passes ``systemd-analyze verify``; ``pgherd secrets init``
writes the passfile and the token once, 0600, owned by the PostgreSQL OS user."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.lab import layout
from pgherd.pg import osuser, passfile
from tests.support import pgherd

pytestmark = pytest.mark.integration


def lab_config(workdir: Path, **extra: object) -> Path:
    """A config whose secret files do not exist yet."""
    config = layout.lab_config(
        workdir, layout.LabShape(2, 25440, "postgres", None, failover="automatic")
    )
    config = config_mod.parse(
        config.model_dump(mode="json")
        | {
            "passfile": str(workdir / "etc" / "passfile"),
            "api_token_file": str(workdir / "etc" / "token"),
        }
        | extra
    )
    path = workdir / "pgherd.yaml"
    path.write_text(config_mod.dump(config))
    return path


def test_the_agent_unit_passes_systemd_analyze_verify(workdir: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze on this machine")
    path = lab_config(workdir)
    for node in ("node1", "node2"):
        (workdir / node).mkdir(exist_ok=True)  # ReadWritePaths= must exist
    unit = pgherd("agent", "unit", "--node", "node1", config=path).stdout
    assert "User=postgres" in unit and "KillMode=process" in unit
    assert f"--config {path}" in unit
    target = workdir / "pgherd@node1.service"
    target.write_text(unit)
    done = subprocess.run(
        [analyze, "verify", str(target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # not a warning either


def test_secrets_init_writes_them_once_owned_by_postgres(
    workdir: Path, os_user: osuser.OsUser
) -> None:
    path = lab_config(workdir)
    config = config_mod.load(path)
    first = json.loads(pgherd("secrets", "init", "--json", config=path).stdout)
    assert first["owner"] == "postgres"
    kinds = list(dict.fromkeys(f["kind"] for f in first["files"]))
    assert kinds == [
        "passfile",
        "API token",
        "API credentials (viewer, nodes, grants)",
        "TLS (cluster CA and member certificates)",
    ]
    assert {f["action"] for f in first["files"]} == {"created"}
    for entry in first["files"]:
        st = Path(entry["path"]).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600, entry
        assert st.st_uid == os_user.uid, entry
    for secret in (config.passfile, config.api_token_file):
        st = secret.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os_user.uid
    password = passfile.password_for(config.passfile, "replicator")
    token = config.api_token_file.read_text()
    assert len(password) >= 32 and len(token.strip()) >= 40
    # Again: nothing is replaced.
    again = pgherd("secrets", "init", config=path).stdout
    assert f"passfile {config.passfile}: exists, kept (--force replaces it)" in again
    assert passfile.password_for(config.passfile, "replicator") == password
    assert config.api_token_file.read_text() == token
    # --force replaces them, and says what that means for a running cluster.
    forced = pgherd("secrets", "init", "--force", config=path).stdout
    assert "replaced" in forced and "ALTER ROLE" in forced
    assert passfile.password_for(config.passfile, "replicator") != password
    # A kind with half its files is the operator's to sort out.
    config.api_token_file.unlink()
    done = pgherd("secrets", "init", config=path)  # the token alone is missing: created
    assert f"API token {config.api_token_file}: created" in done.stdout
