"""The /metrics page, the alert rules and the dashboard: checked with Prometheus's own
``promtool`` (Debian's ``prometheus`` package), and every name against docs/metrics.md."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from pgherd import metrics
from pgherd.api import routes_metrics
from pgherd.model import metrics as model
from pgherd.model.archive_api import PusherState
from pgherd.model.history import ArchiverRow, SenderRow, SenderState
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import ConflictCount, MeshWorkerRow
from pgherd.model.status import PgState, Role, Slot

with warnings.catch_warnings():
    # as in test_api.py: Starlette warns that it would rather have httpx2
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "metrics.md"
RULES = ROOT / "docs" / "monitoring" / "pgherd-alerts.yml"
RULES_TEST = Path(__file__).parent / "data" / "pgherd-alerts-test.yml"
DASHBOARD = ROOT / "docs" / "monitoring" / "grafana-pgherd.json"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: scripts/bootstrap.sh installs Debian's prometheus"
    return found


def documented() -> set[str]:
    """The names in the table of docs/metrics.md."""
    return set(re.findall(r"^\| `(pgherd_[a-z_]+)` \|", DOC.read_text(), re.MULTILINE))


def primary(**changes: object) -> model.NodeMetrics:
    sending = SenderState(
        in_recovery=False,
        position=Lsn.parse("0/5000000"),
        senders=(
            SenderRow("node2", False, "streaming", *(Lsn.parse("0/4FFF000"),) * 3, 0.1, 0.2, 0.3),
            SenderRow("node3", False, "catchup", *(Lsn.parse("0/4000000"),) * 3, None, None, None),
            SenderRow(
                "orders_sub", True, "streaming", None, None, Lsn.parse("0/4F00000"), *[None] * 3
            ),
        ),
        archiver=ArchiverRow("on", "000000010000000000000004.ready", 1),
    )
    values: dict[str, object] = {
        "pg": PgState.RUNNING,
        "role": Role.PRIMARY,
        "answers": True,
        "automatic": True,
        "is_leader": True,
        "lease_left": 2.5,
        "timeline": 3,
        "position": Lsn.parse("0/5000000"),
        "sending": sending,
        "slots": (
            Slot(
                name="node2",
                slot_type="physical",
                active=True,
                restart_lsn=None,
                wal_status="reserved",
                retained_bytes=4096,
            ),
            Slot(
                name="orders_sub",
                slot_type="logical",
                active=False,
                restart_lsn=None,
                wal_status="extended",
                retained_bytes=1 << 20,
            ),
        ),
        "archive_failed": 2,
        "archive_pending": 1,
        "restarts": 1,
        "mesh_workers": (
            MeshWorkerRow(
                mesh="m",
                source="node2",
                target="node1",
                state="running",
                conflicts=4,
                conflict_counts=(
                    ConflictCount(kind="update_differs", resolution="apply-remote", count=3),
                    ConflictCount(kind="insert_exists", resolution="keep-local", count=1),
                ),
            ),
            MeshWorkerRow(mesh="m", source="node3", target="node1", state="running", conflicts=2),
        ),
        "members": (model.MemberSeen("node1", 0.2), model.MemberSeen("node2", 17.0)),
        "pusher": PusherState(
            running=True,
            workers=4,
            waiting=3,
            waiting_bytes=3 << 24,
            queue_max_bytes=1 << 30,
            in_flight=2,
            pushed=40,
            pushed_bytes=40 << 24,
            failures=1,
            seconds_per_segment=0.12,
        ),
    }
    values.update(changes)
    return model.NodeMetrics(**values)  # type: ignore[arg-type]


class Fixed:
    def __init__(self, found: model.NodeMetrics) -> None:
        self.found = found

    def collect(self):  # type: ignore[no-untyped-def]
        return model.families(self.found)


def page(found: model.NodeMetrics) -> str:
    app = FastAPI()
    app.include_router(routes_metrics.router([Fixed(found)], "lab", "node1"))
    answer = TestClient(app).get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text: str = answer.text
    return text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found[(name, frozenset({"cluster": "lab", "node": "node1", **labels}.items()))]


def test_a_primary_page_passes_promtool_and_says_what_the_node_is() -> None:
    text = page(primary())
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    found = samples(text)
    assert value(found, "pgherd_up") == 1
    assert value(found, "pgherd_node_role", role="primary") == 1
    assert value(found, "pgherd_node_role", role="standby") == 0
    assert value(found, "pgherd_is_leader") == 1
    assert value(found, "pgherd_timeline") == 3
    assert value(found, "pgherd_wal_lsn_bytes") == 0x5000000
    assert value(found, "pgherd_replication_lag_bytes", standby="node2") == 0x1000
    assert value(found, "pgherd_replication_lag_bytes", standby="node3") == 0x1000000
    assert value(found, "pgherd_replication_lag_seconds", standby="node2") == 0.3
    assert value(found, "pgherd_subscription_lag_bytes", subscription="orders_sub") == 0x100000
    assert (
        value(found, "pgherd_slot_retained_bytes", slot="orders_sub", slot_type="logical")
        == 1 << 20
    )
    assert value(found, "pgherd_slot_active", slot="orders_sub", slot_type="logical") == 0
    assert value(found, "pgherd_archive_failed_total") == 2
    assert value(found, "pgherd_archive_pending_segments") == 1
    assert value(found, "pgherd_archive_trailing_bytes") == 0x1000000
    assert value(found, "pgherd_postgres_restarts_total") == 1
    conflicts = {"mesh": "m", "source": "node2"}
    assert (
        value(
            found,
            "pgherd_mesh_conflicts_total",
            **conflicts,
            kind="update_differs",
            resolution="apply-remote",
        )
        == 3
    )
    assert (
        value(
            found,
            "pgherd_mesh_conflicts_total",
            **conflicts,
            kind="insert_exists",
            resolution="keep-local",
        )
        == 1
    )
    running = {"mesh": "m", "source": "node2", "state": "running"}
    assert value(found, "pgherd_mesh_worker_running", **running) == 1
    # a worker that does not count by kind still shows its total
    assert (
        value(
            found,
            "pgherd_mesh_conflicts_total",
            mesh="m",
            source="node3",
            kind="any",
            resolution="any",
        )
        == 2
    )
    assert value(found, "pgherd_lease_remaining_seconds") == 2.5
    assert value(found, "pgherd_member_checkin_age_seconds", member="node2") == 17
    assert value(found, "pgherd_paused") == 0
    # the process-wide metrics are on the same page, labelled the same way
    assert value(found, "pgherd_failovers_total") >= 0
    assert value(found, "pgherd_ha_cycle_seconds_count") >= 0


def test_a_stopped_node_still_gives_a_valid_page() -> None:
    text = page(
        model.NodeMetrics(
            pg=PgState.STOPPED, role=Role.STANDBY, answers=False, automatic=False, is_leader=False
        )
    )
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    found = samples(text)
    assert value(found, "pgherd_up") == 0
    assert value(found, "pgherd_node_role", role="standby") == 0  # not running: no role
    assert ("pgherd_lease_remaining_seconds", frozenset()) not in found


def test_every_name_on_the_page_and_in_the_registry_is_documented() -> None:
    names = {f.name for f in text_string_to_metric_families(page(primary()))}
    names |= {m.name for m in metrics.REGISTRY.collect()}
    # families of counters are named without _total (the samples carry it)
    shown = {f"{n}_total" if f"{n}_total" in documented() else n for n in names}
    missing = shown - documented()
    assert not missing, f"add these to docs/metrics.md: {sorted(missing)}"
    for required in (
        "pgherd_up",
        "pgherd_node_role",
        "pgherd_is_leader",
        "pgherd_timeline",
        "pgherd_wal_lsn_bytes",
        "pgherd_replication_lag_bytes",
        "pgherd_replication_lag_seconds",
        "pgherd_slot_retained_bytes",
        "pgherd_lease_remaining_seconds",
        "pgherd_ha_cycle_seconds",
        "pgherd_failovers_total",
        "pgherd_archive_failed_total",
        "pgherd_archive_pending_segments",
        "pgherd_subscription_lag_bytes",
        "pgherd_mesh_conflicts_total",
        "pgherd_postgres_restarts_total",
    ):
        assert required in documented()


def used_names(text: str) -> set[str]:
    found = set(re.findall(r"\bpgherd_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in found}


def test_alert_rules_pass_promtool_and_fire_on_what_they_should() -> None:
    check = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "9 rules found" in check.stdout
    run = subprocess.run(
        [promtool(), "test", "rules", RULES_TEST.name],
        cwd=RULES_TEST.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert used_names(RULES.read_text()) <= documented()


def test_the_dashboard_uses_only_documented_names() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    assert used_names("\n".join(exprs)) <= documented()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["templating"]["list"][1]["name"] == "cluster"
    # every panel's query filters on the chosen cluster
    assert all('cluster="$cluster"' in e for e in exprs)


def test_the_page_labels_every_sample_with_cluster_and_node_unless_it_names_them() -> None:
    class Peer:
        def collect(self):  # type: ignore[no-untyped-def]
            family = GaugeMetricFamily("pgherd_x", "x", labels=["node"])
            family.add_metric(["node2"], 1.0)
            yield family

    found = samples(metrics.exposition([Peer()], "lab", "node1").decode())
    assert found[("pgherd_x", frozenset({"cluster": "lab", "node": "node2"}.items()))] == 1
    assert (
        "pgherd_failovers_total",
        frozenset({"cluster": "lab", "node": "node1"}.items()),
    ) in found


def test_the_wal_pushers_figures_are_on_the_page() -> None:
    found = samples(page(primary()))
    assert value(found, "pgherd_archive_push_waiting_bytes") == 3 << 24
    assert value(found, "pgherd_archive_push_queue_limit_bytes") == 1 << 30
    assert value(found, "pgherd_archive_pushed_segments_total") == 40
    assert value(found, "pgherd_archive_push_failures_total") == 1
    assert value(found, "pgherd_archive_push_segment_seconds") == 0.12
    idle = samples(page(primary(pusher=PusherState(running=False))))
    assert not [name for name, _labels in idle if name.startswith("pgherd_archive_push")]


def test_a_standbys_copies_of_logical_slots_say_whether_a_failover_could_use_them() -> None:
    text = page(primary(role=Role.STANDBY, slot_copies=(("orders_sub", True), ("cdc", False))))
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    found = samples(text)
    assert value(found, "pgherd_slot_copy_ready", slot="orders_sub") == 1
    assert value(found, "pgherd_slot_copy_ready", slot="cdc") == 0
    assert not [n for n, _labels in samples(page(primary())) if n == "pgherd_slot_copy_ready"]


def test_a_removed_permanent_slot_waiting_for_its_consumer_shows() -> None:
    text = page(primary(slots_waiting=("cdc",)))
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert value(samples(text), "pgherd_slot_drop_waiting", slot="cdc") == 1
    assert not [n for n, _labels in samples(page(primary())) if n == "pgherd_slot_drop_waiting"]
