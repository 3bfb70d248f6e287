"""TLS switched on or off, or certificates rotated, under a running cluster: what a reload
takes from pgherd.yaml (model/reload.py) and what the running server needs
(model/server_tls.py). Table tests, no servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgherd import config
from pgherd.lab import layout
from pgherd.model import reload as reload_model
from pgherd.model import server_tls
from pgherd.model.server_tls import RunningTls, TlsFiles
from pgherd.model.settings import SettingValue

# PostgreSQL 15's contexts for what pgherd.conf says about TLS (postgres --describe-config).
CONTEXTS = {
    "ssl": "sighup",
    "ssl_cert_file": "sighup",
    "ssl_key_file": "sighup",
    "ssl_ca_file": "sighup",
    "ssl_min_protocol_version": "sighup",
    "primary_conninfo": "sighup",
}
# PostgreSQL 12 read primary_conninfo at start only.
CONTEXTS_12 = CONTEXTS | {"primary_conninfo": "postmaster"}

OFF: dict[str, SettingValue] = {"ssl": "off", "work_mem": "4MB"}
ON: dict[str, SettingValue] = {
    "ssl": True,
    "ssl_cert_file": "/etc/pgherd/tls/node1.crt",
    "ssl_key_file": "/etc/pgherd/tls/node1.key",
    "ssl_ca_file": "/etc/pgherd/tls/ca.crt",
    "ssl_min_protocol_version": "TLSv1.2",
    "work_mem": "4MB",
}
ON_AS_WRITTEN = {k: ("on" if v is True else v) for k, v in ON.items()}
STANDBY_OFF = OFF | {"primary_conninfo": "host=10.0.0.1 port=5432 user=replicator"}
STANDBY_ON = ON | {
    "primary_conninfo": "host=10.0.0.1 port=5432 user=replicator sslmode=verify-full "
    "sslrootcert=/etc/pgherd/tls/ca.crt"
}
FILES_ON = TlsFiles(wanted=True, changed_at=1000.0)
FILES_OFF = TlsFiles(wanted=False)


@pytest.mark.parametrize(
    ("files", "running", "before", "after", "contexts", "reload", "reasons", "restart"),
    [
        # switched on: the rewrite changed ssl; the server still runs without
        (FILES_ON, RunningTls(False, 2000.0), OFF, ON, CONTEXTS, True, 5, ()),
        # switched off
        (FILES_OFF, RunningTls(True, 2000.0), ON_AS_WRITTEN, OFF, CONTEXTS, True, 5, ()),
        # on, already in force, certificates older than the last load: nothing
        (FILES_ON, RunningTls(True, 2000.0), ON_AS_WRITTEN, ON, CONTEXTS, False, 0, ()),
        # on, certificates renewed after the last load (rotation): a reload
        (FILES_ON, RunningTls(True, 500.0), ON_AS_WRITTEN, ON, CONTEXTS, True, 1, ()),
        # off and off: nothing, whatever the files' times
        (FILES_OFF, RunningTls(False, 500.0), OFF, OFF, CONTEXTS, False, 0, ()),
        # files already rewritten (an earlier boot) but the server never told: a reload
        (FILES_ON, RunningTls(False, 2000.0), ON_AS_WRITTEN, ON, CONTEXTS, True, 1, ()),
        # a standby's primary_conninfo gains sslmode: a reload on 13+ ...
        (FILES_ON, RunningTls(False, 2000.0), STANDBY_OFF, STANDBY_ON, CONTEXTS, True, 6, ()),
        # ... a restart, named, where its context is postmaster
        (
            FILES_ON,
            RunningTls(False, 2000.0),
            STANDBY_OFF,
            STANDBY_ON,
            CONTEXTS_12,
            True,
            6,
            ("primary_conninfo",),
        ),
    ],
)
def test_what_the_running_server_needs(
    files: TlsFiles,
    running: RunningTls,
    before: dict[str, SettingValue],
    after: dict[str, SettingValue],
    contexts: dict[str, str],
    reload: bool,
    reasons: int,
    restart: tuple[str, ...],
) -> None:
    decided = server_tls.decide(files, running, before, after, contexts)
    assert decided.refused is None
    assert decided.reload is reload
    assert len(decided.reasons) == reasons, decided.reasons
    assert decided.restart_for == restart


def test_the_reasons_say_why() -> None:
    switched = server_tls.decide(FILES_ON, RunningTls(False, 2000.0), OFF, ON, CONTEXTS)
    assert switched.reasons[0] == "ssl is off in the running server, on in pgherd.yaml"
    assert "ssl_cert_file changed (reload)" in switched.reasons
    rotated = server_tls.decide(FILES_ON, RunningTls(True, 500.0), ON, ON, CONTEXTS)
    assert rotated.reasons == (
        "the certificate files changed after PostgreSQL last read them (renewed or rotated)",
    )


def test_a_stopped_server_takes_the_files_at_its_start() -> None:
    decided = server_tls.decide(FILES_ON, None, STANDBY_OFF, STANDBY_ON, CONTEXTS_12)
    assert decided.reload is False
    assert decided.restart_for == ("primary_conninfo",)


def test_missing_certificate_files_are_refused_before_anything() -> None:
    files = TlsFiles(wanted=True, missing=("/etc/pgherd/tls/node1.key",))
    decided = server_tls.decide(files, RunningTls(False, 0.0), OFF, ON, CONTEXTS)
    assert decided.refused == "TLS is on but /etc/pgherd/tls/node1.key is missing"
    assert not decided.reload
    two = TlsFiles(wanted=True, missing=("/a.crt", "/a.key"))
    assert server_tls.missing(two) == "TLS is on but /a.crt, /a.key are missing"
    assert server_tls.missing(TlsFiles(wanted=False, missing=("/a.crt",))) is None


def test_only_tls_settings_are_compared() -> None:
    changed = server_tls.changes(OFF | {"work_mem": "1MB"}, ON, CONTEXTS)
    assert [c.name for c in changed] == [
        "ssl",
        "ssl_ca_file",
        "ssl_cert_file",
        "ssl_key_file",
        "ssl_min_protocol_version",
    ]
    assert server_tls.changes(ON_AS_WRITTEN, ON, CONTEXTS) == ()  # "on" is True


# ---- the reload plan ---------------------------------------------------------------------


def lab(**extra: Any) -> dict[str, Any]:
    base = layout.lab_config(
        Path("/var/tmp/lab"), layout.LabShape(3, 5440, "postgres", None, failover="automatic")
    )
    return config.parse(base.model_dump(mode="json") | extra).model_dump(mode="json")


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        (lab(tls=False), lab(), "tls false → "),
        (lab(), lab(tls=False), 'tls {"dir":null,"client_certs":false} → false'),
        (lab(), lab(tls={"dir": "/etc/pgherd/tls"}), "tls.dir unset → /etc/pgherd/tls"),
    ],
)
def test_tls_applies_on_reload_and_the_api_at_agent_restart(
    old: dict[str, Any], new: dict[str, Any], said: str
) -> None:
    plan = reload_model.plan(old, new, "node1")
    assert plan.tls and plan.tls[0].startswith(said)
    assert plan.needs_restart == (reload_model.API_TLS,)
    effective = config.parse(plan.effective)
    assert effective.tls_on is config.parse(new).tls_on
    assert effective.ca_file == config.parse(new).ca_file
    assert not plan.unchanged


def test_the_report_says_what_tls_did() -> None:
    report = reload_model.ReloadReport(
        node="node1",
        unchanged=False,
        fingerprint_before="aaa",
        fingerprint="bbb",
        file_fingerprint="bbb",
        postgres="reloaded",
        access_rules=True,
        tls=("tls false → {}",),
        tls_reload=("ssl is off in the running server, on in pgherd.yaml",),
        needs_agent_restart=(reload_model.API_TLS,),
    )
    assert report.lines()[2:5] == [
        "node1: tls false → {} (PostgreSQL follows now)",
        "node1: TLS: ssl is off in the running server, on in pgherd.yaml",
        "node1: pg_hba.conf's pgherd block rewritten",
    ]
