"""``pgherd doctor``'s checks: each finding with its severity and the fix it proposes."""

from __future__ import annotations

from typing import Any

import pytest

from pgherd.model import slots
from pgherd.model.doctor import Finding, NodeFacts, Severity, check_cluster, check_node
from pgherd.model.lsn import Lsn
from pgherd.model.status import Desired, NodeStatus, PgState, Role, Slot, WalReceiver, unreachable

DATA = "/var/tmp/lab/node2/data"
CLEAN_SETTINGS = {
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "hot_standby": "on",
    "wal_log_hints": "on",
    "password_encryption": "scram-sha-256",
    "data_checksums": "on",
}


def facts(**over: Any) -> NodeFacts:
    fields: dict[str, Any] = {
        "name": "node2",
        "os_user": "postgres",
        "data_dir": DATA,
        "data_dir_exists": True,
        "data_dir_owner": "postgres",
        "data_dir_mode": 0o700,
        "settings": CLEAN_SETTINGS,
        "data_checksums": True,
    }
    return NodeFacts(**(fields | over))


def with_settings(**changed: str) -> NodeFacts:
    return facts(settings=CLEAN_SETTINGS | changed)


def only(found: list[Finding]) -> Finding:
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("is_standby", [False, True])
def test_clean_facts_have_no_findings(is_standby: bool) -> None:
    assert check_node(facts(), node_count=3, is_standby=is_standby) == []


def test_clean_facts_with_group_readable_data_dir() -> None:
    assert check_node(facts(data_dir_mode=0o750), 3, False) == []


def test_missing_data_directory_says_to_clone() -> None:
    finding = only(check_node(facts(data_dir_exists=False), 3, True))
    assert (finding.severity, finding.check, finding.node) == (Severity.ERROR, "data-dir", "node2")
    assert DATA in finding.message
    assert "pgherd standby clone --upstream PRIMARY --node node2" in finding.fix


def test_wrong_owner() -> None:
    finding = only(check_node(facts(data_dir_owner="root"), 3, False))
    assert (finding.severity, finding.check) == (Severity.ERROR, "data-dir-owner")
    assert "owned by root, not postgres" in finding.message
    assert finding.fix == f"chown -R postgres: {DATA}"


@pytest.mark.parametrize("mode", [0o755, 0o777, 0o701])
def test_data_dir_open_to_others(mode: int) -> None:
    finding = only(check_node(facts(data_dir_mode=mode), 3, False))
    assert (finding.severity, finding.check) == (Severity.ERROR, "data-dir-mode")
    assert f"mode {mode:04o}" in finding.message
    assert finding.fix == f"chmod 0700 {DATA}"


def test_config_file_owned_by_root() -> None:
    conf = f"{DATA}/postgresql.conf"
    finding = only(check_node(facts(foreign_owned_files=((conf, "root"),)), 3, False))
    assert (finding.severity, finding.check) == (Severity.WARNING, "file-owner")
    assert f"{conf} is owned by root" in finding.message
    assert finding.fix == f"chown postgres: {conf}"


def test_trust_over_tcp() -> None:
    rule = "host all all 0.0.0.0/0 trust"
    finding = only(check_node(facts(hba_trust_tcp=(rule,)), 3, False))
    assert (finding.severity, finding.check) == (Severity.ERROR, "hba-trust")
    assert rule in finding.message
    assert "scram-sha-256" in finding.fix


def test_wal_level_minimal() -> None:
    finding = only(check_node(with_settings(wal_level="minimal"), 3, False))
    assert (finding.severity, finding.check) == (Severity.ERROR, "wal-level")
    assert "wal_level is minimal" in finding.message
    assert "wal_level = logical" in finding.fix


@pytest.mark.parametrize("wal_level", ["replica", "logical"])
def test_wal_levels_that_stream(wal_level: str) -> None:
    assert check_node(with_settings(wal_level=wal_level), 3, False) == []


@pytest.mark.parametrize("setting", ["max_wal_senders", "max_replication_slots"])
def test_too_few_senders_or_slots_for_the_cluster(setting: str) -> None:
    finding = only(check_node(with_settings(**{setting: "2"}), node_count=3, is_standby=False))
    assert (finding.severity, finding.check) == (Severity.ERROR, setting.replace("_", "-"))
    assert f"{setting} is 2, fewer than the cluster's 3 nodes" in finding.message
    assert finding.fix == f"set {setting} = 10 and restart"


def test_enough_senders_for_the_cluster() -> None:
    assert check_node(with_settings(max_wal_senders="3"), node_count=3, is_standby=False) == []


def test_sender_fix_grows_with_a_large_cluster() -> None:
    finding = only(check_node(with_settings(max_wal_senders="5"), node_count=8, is_standby=False))
    assert finding.fix == "set max_wal_senders = 16 and restart"


def test_hot_standby_off_matters_on_a_standby_only() -> None:
    off = with_settings(hot_standby="off")
    finding = only(check_node(off, 3, is_standby=True))
    assert (finding.severity, finding.check) == (Severity.WARNING, "hot-standby")
    assert check_node(off, 3, is_standby=False) == []


def test_no_wal_log_hints_and_no_checksums_blocks_rewind() -> None:
    found = check_node(
        facts(settings=CLEAN_SETTINGS | {"wal_log_hints": "off"}, data_checksums=False), 3, False
    )
    finding = only(found)
    assert (finding.severity, finding.check) == (Severity.WARNING, "rewind")
    assert "pg_rewind" in finding.message
    assert finding.fix == "set wal_log_hints = on and restart"


def test_no_wal_log_hints_is_fine_with_checksums() -> None:
    assert check_node(with_settings(wal_log_hints="off"), 3, False) == []


def test_md5_password_encryption() -> None:
    finding = only(check_node(with_settings(password_encryption="md5"), 3, False))
    assert (finding.severity, finding.check) == (Severity.WARNING, "password-encryption")
    assert "scram-sha-256" in finding.fix


def test_several_problems_are_all_reported() -> None:
    bad = facts(
        data_dir_owner="root",
        data_dir_mode=0o755,
        hba_trust_tcp=("host all all ::/0 trust",),
        settings=CLEAN_SETTINGS | {"wal_level": "minimal", "password_encryption": "md5"},
    )
    checks = [f.check for f in check_node(bad, 3, False)]
    assert checks == [
        "data-dir-owner",
        "data-dir-mode",
        "hba-trust",
        "wal-level",
        "password-encryption",
    ]


# ---- the cluster -------------------------------------------------------------------------

SYSID = "7642011472967116994"


def status(name: str, role: Role = Role.STANDBY, **over: Any) -> NodeStatus:
    fields: dict[str, Any] = {
        "name": name,
        "state": PgState.RUNNING,
        "desired": Desired.RUNNING,
        "role": role,
        "system_identifier": SYSID,
        "current_lsn": Lsn.parse("0/5000000") if role is Role.PRIMARY else None,
        "replay_lsn": Lsn.parse("0/5000000") if role is Role.STANDBY else None,
        "wal_receiver": (
            WalReceiver(
                status="streaming",
                sender_host="127.0.0.1",
                sender_port=5441,
                slot_name=name,
                received_tli=1,
                flushed_lsn=None,
                latest_end_lsn=None,
                last_msg_receipt_time=None,
            )
            if role is Role.STANDBY
            else None
        ),
    }
    return NodeStatus(**(fields | over))


def slot(name: str, active: bool, retained_mb: float) -> Slot:
    return Slot(
        name=name,
        slot_type="physical",
        active=active,
        restart_lsn=Lsn.parse("0/1000000"),
        wal_status="reserved",
        retained_bytes=int(retained_mb * 1024 * 1024),
    )


def healthy() -> list[NodeStatus]:
    return [status("node1", Role.PRIMARY), status("node2"), status("node3")]


def test_a_healthy_cluster_has_no_findings() -> None:
    assert check_cluster(healthy()) == []


def test_unreachable_agent() -> None:
    statuses = [*healthy()[:2], unreachable("node3", "connection refused")]
    finding = only(check_cluster(statuses))
    assert (finding.severity, finding.node, finding.check) == (Severity.ERROR, "node3", "agent")
    assert "connection refused" in finding.message
    assert finding.fix == "start it: pgherd agent run --node node3"


def test_stopped_node() -> None:
    statuses = [*healthy()[:2], status("node3", state=PgState.STOPPED, wal_receiver=None)]
    finding = only(check_cluster(statuses))
    assert (finding.node, finding.check) == ("node3", "running")
    assert finding.message == "PostgreSQL is stopped"
    assert finding.fix == "start it: pgherd node start node3"


def test_standby_not_streaming() -> None:
    statuses = [*healthy()[:2], status("node3", wal_receiver=None)]
    finding = only(check_cluster(statuses))
    assert (finding.severity, finding.node, finding.check) == (Severity.ERROR, "node3", "streaming")
    assert finding.message == "standby is not streaming from its upstream"


def test_system_identifier_mismatch_names_the_re_clone_command() -> None:
    statuses = [*healthy()[:2], status("node3", system_identifier="7000000000000000001")]
    finding = only(check_cluster(statuses))
    assert (finding.severity, finding.check) == (Severity.ERROR, "system-identifier")
    assert "7000000000000000001" in finding.message
    assert SYSID in finding.message
    assert finding.fix.endswith("pgherd standby clone --upstream node1 --node node3 --force")


def node_at(host: str | None, port: int | None) -> str | None:
    return {5441: "node1", 5442: "node2", 5443: "node3"}.get(port or 0)


def streaming(name: str, **over: Any) -> NodeStatus:
    return status(name, upstream_host="127.0.0.1", upstream_port=5441, **over)


# Slots are classified in model/slots.py (tests/unit/test_promote_follow_checks.py has more).


def test_inactive_slot_holding_wal() -> None:
    primary = status("node1", Role.PRIMARY, slots=(slot("node3", active=False, retained_mb=20),))
    finding = only(slots.findings([primary], node_at))
    assert (finding.severity, finding.node, finding.check) == (
        Severity.WARNING,
        "node1",
        "orphan-slot",
    )
    assert "'node3' belongs to no node in the config" in finding.message
    assert finding.message.endswith("holds 20.0 MB of WAL")
    assert "pg_drop_replication_slot('node3')" in finding.fix


@pytest.mark.parametrize(
    ("active", "retained_mb"),
    [(False, 15.9), (True, 500), (False, 0)],
)
def test_slots_that_are_fine(active: bool, retained_mb: float) -> None:
    primary = status("node1", Role.PRIMARY, slots=(slot("node3", active, retained_mb),))
    statuses = [primary, streaming("node2"), streaming("node3")]
    assert check_cluster(statuses) == []
    assert slots.findings(statuses, node_at) == []


def test_inactive_slot_at_exactly_one_segment_is_reported() -> None:
    primary = status("node1", Role.PRIMARY, slots=(slot("node3", active=False, retained_mb=16),))
    gone = streaming("node3", state=PgState.STOPPED, wal_receiver=None)
    finding = only(slots.findings([primary, streaming("node2"), gone], node_at))
    assert finding.check == "inactive-slot"
    assert finding.message.endswith("holds 16.0 MB of WAL")


def test_split_brain() -> None:
    statuses = [status("node1", Role.PRIMARY), status("node2", Role.PRIMARY), status("node3")]
    finding = only(check_cluster(statuses))
    assert (finding.severity, finding.node, finding.check) == (Severity.ERROR, None, "split-brain")
    assert finding.message == "more than one running primary: node1, node2"


def test_without_a_single_primary_the_re_clone_fix_has_a_placeholder() -> None:
    statuses = [
        status("node1", Role.PRIMARY),
        status("node2", Role.PRIMARY),
        status("node3", system_identifier="7000000000000000001"),
    ]
    fixes = [f.fix for f in check_cluster(statuses) if f.check == "system-identifier"]
    assert fixes == [
        "re-clone it from the primary: pgherd standby clone --upstream PRIMARY --node node3 --force"
    ]


def test_a_removed_permanent_slot_that_a_consumer_still_reads() -> None:
    statuses = [
        status("node1", Role.PRIMARY, slots=(slot("cdc", True, 1), slot("by_hand", True, 1))),
        status("node2", slots=(slot("cdc", False, 1),)),
    ]
    owned = {"node1": {"cdc"}, "node2": {"cdc"}}
    finding = only(slots.removed_in_use(statuses, owned, declared=()))
    assert (finding.severity, finding.node, finding.check) == (
        Severity.WARNING,
        "node1",
        "removed-slot-in-use",
    )
    assert finding.message == (
        "permanent slot 'cdc' was removed from slots: and is dropped once its consumer disconnects"
    )
    assert slots.removed_in_use(statuses, owned, declared=("cdc",)) == []
    assert slots.removed_in_use(statuses, {}, declared=()) == []
