"""What a reload may take from a re-read pgherd.yaml (model/reload.py) and what a change of
``settings:`` takes to apply (model/settings.py): table tests, no servers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pgherd import config
from pgherd.errors import ConfigError
from pgherd.lab import layout
from pgherd.model import reload as reload_model
from pgherd.model import settings
from pgherd.model.settings import Effect

CONTEXTS = {
    "work_mem": "user",
    "shared_buffers": "postmaster",
    "log_connections": "superuser-backend",
    "checkpoint_timeout": "sighup",
    "statement_timeout": "user",
}


def lab(**extra: Any) -> dict[str, Any]:
    base = layout.lab_config(
        Path("/var/tmp/lab"), layout.LabShape(3, 5440, "postgres", None, failover="automatic")
    )
    return config.parse(base.model_dump(mode="json") | extra).model_dump(mode="json")


# ---- which settings need what -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "effect"),
    [
        ("work_mem", Effect.RELOAD),
        ("WORK_MEM", Effect.RELOAD),
        ("checkpoint_timeout", Effect.RELOAD),
        ("log_connections", Effect.NEW_SESSIONS),
        ("shared_buffers", Effect.RESTART),
        ("pg_stat_statements.max", Effect.EXTENSION),
        ("work_mme", Effect.UNKNOWN),
    ],
)
def test_the_effect_of_a_setting_is_its_context(name: str, effect: Effect) -> None:
    assert settings.effect(name, CONTEXTS) is effect


def test_changes_lists_added_changed_and_removed_settings_once() -> None:
    before: dict[str, settings.SettingValue] = {
        "work_mem": "4MB",
        "shared_buffers": "128MB",
        "statement_timeout": 0,
    }
    after: dict[str, settings.SettingValue] = {
        "work_mem": "8MB",
        "shared_buffers": "128MB",
        "log_connections": True,
    }
    assert settings.changes(before, after, CONTEXTS) == (
        settings.SettingChange("log_connections", None, "on", Effect.NEW_SESSIONS),
        settings.SettingChange("statement_timeout", "0", None, Effect.RELOAD),
        settings.SettingChange("work_mem", "4MB", "8MB", Effect.RELOAD),
    )
    assert settings.changes(before, before, CONTEXTS) == ()


def test_describe_config_output_gives_each_parameters_context() -> None:
    out = (
        "work_mem\tuser\tResource Usage / Memory\tINTEGER\t0\t64\t2147483647\tSets...\t\n"
        "wal_level\tpostmaster\tWrite-Ahead Log / Settings\tENUM\treplica\t\t\tSets...\t\n"
    )
    assert settings.parse_describe_config(out) == {"work_mem": "user", "wal_level": "postmaster"}


@pytest.mark.parametrize("name", ["port", "unix_socket_directories", "primary_conninfo", "PORT"])
def test_settings_may_not_set_what_pgherd_sets_per_node(name: str) -> None:
    with pytest.raises(ConfigError, match=f"settings: {name} is set by pgherd"):
        config.parse(lab(settings={name: "x"}))


# ---- what a reload may change -------------------------------------------------------------


def test_an_unchanged_file_changes_nothing() -> None:
    old = lab()
    plan = reload_model.plan(old, copy.deepcopy(old), "node1")
    assert plan.unchanged and plan.refused is None
    assert config.parse(plan.effective) == config.parse(old)


def test_settings_apply_on_reload() -> None:
    old = lab(settings={"work_mem": "4MB"})
    new = lab(settings={"work_mem": "8MB", "shared_buffers": "256MB"})
    plan = reload_model.plan(old, new, "node1")
    assert plan.settings_changed
    assert plan.needs_restart == () and plan.members == ()
    assert config.parse(plan.effective).settings == {"work_mem": "8MB", "shared_buffers": "256MB"}


def test_members_added_removed_and_changed_apply_on_reload() -> None:
    old = lab()
    new = copy.deepcopy(old)
    fourth = copy.deepcopy(new["nodes"][2]) | {
        "name": "node4",
        "port": 5443,
        "api_port": 6443,
        "data_dir": "/var/tmp/lab/node4/data",
    }
    new["nodes"] = [new["nodes"][0], new["nodes"][2] | {"host": "127.0.0.9"}, fourth]
    plan = reload_model.plan(old, new, "node1")
    assert plan.members == (
        "node2 removed",
        "node3: host 127.0.0.1 → 127.0.0.9",
        "node4 added",
    )
    assert plan.needs_restart == ()
    assert config.parse(plan.effective).node_names == ["node1", "node3", "node4"]


def test_this_nodes_failover_tags_apply_but_its_addresses_need_a_restart() -> None:
    old = lab()
    new = copy.deepcopy(old)
    new["nodes"][0] |= {"nofailover": True, "port": 5450, "replicate_from": "node2"}
    plan = reload_model.plan(old, new, "node1")
    assert plan.this_node == ("nofailover false → true", "replicate_from unset → node2")
    assert plan.needs_restart == ("nodes.node1.port 5440 → 5450",)
    effective = config.parse(plan.effective).node("node1")
    assert effective.nofailover and effective.replicate_from == "node2"
    assert effective.port == 5440  # the agent keeps what it started with


def test_the_agent_restart_grace_applies_at_once_but_the_rest_of_ha_does_not() -> None:
    old = lab()
    new = copy.deepcopy(old)
    new["ha"] |= {"agent_restart_grace": 30.0, "ttl": 6.0}
    plan = reload_model.plan(old, new, "node1")
    assert plan.this_node == ("ha.agent_restart_grace 10.0 → 30.0",)
    assert plan.needs_restart == ("ha.ttl 3.0 → 6.0",)
    ha = config.parse(plan.effective).ha
    assert ha is not None and ha.agent_restart_grace == 30.0 and ha.ttl == 3.0


def test_permanent_slots_apply_at_once() -> None:
    old = lab()
    new = copy.deepcopy(old)
    new["slots"] = {"cdc": {"type": "logical", "database": "shop", "plugin": "pgoutput"}}
    plan = reload_model.plan(old, new, "node1")
    assert plan.needs_restart == ()
    assert plan.this_node[0].startswith("slots.cdc unset → ")
    assert set(config.parse(plan.effective).slots) == {"cdc"}
    removed = reload_model.plan(new, old, "node1")
    assert removed.needs_restart == () and removed.this_node
    assert config.parse(removed.effective).slots == {}


@pytest.mark.parametrize(
    ("change", "needs"),
    [
        ({"ha": {"ttl": 6.0}}, ["ha.ttl 3.0 → 6.0"]),
        ({"ha": {"dcs": {"sqlite": "/var/tmp/other.sqlite"}}}, ["ha.dcs.sqlite"]),
        ({"archive": {"path": "/var/tmp/archive"}}, ["archive unset → "]),
        ({"replication_user": "streamer"}, ["replication_user replicator → streamer"]),
        ({"passfile": "/etc/pgherd/passfile"}, ["passfile "]),
        ({"failover": "manual"}, ["failover automatic → manual"]),
    ],
)
def test_what_makes_the_agent_needs_an_agent_restart(
    change: dict[str, Any], needs: list[str]
) -> None:
    old = lab()
    new = copy.deepcopy(old)
    for key, value in change.items():
        new[key] = new[key] | value if isinstance(value, dict) and new.get(key) else value
    plan = reload_model.plan(old, new, "node1")
    assert len(plan.needs_restart) == len(needs)
    for said, start in zip(plan.needs_restart, needs, strict=True):
        assert said.startswith(start)
    assert config.parse(plan.effective) == config.parse(old)  # kept as it was


def test_console_logins_are_not_the_agents() -> None:
    old = lab()
    new = lab(console={"users": [{"name": "ann", "password_hash": "x"}]})
    plan = reload_model.plan(old, new, "node1")
    assert plan.ignored == ("console: read by pgherd console, not by the agents",)
    assert plan.needs_restart == ()


def test_mesh_peers_are_taken_at_once() -> None:
    """Other clusters a mesh names: their hosts go into pg_hba.conf at the reload (the
    mesh commands and each apply worker read the files anew)."""
    peers = ["/etc/pgherd/peers/east.yaml"]
    plan = reload_model.plan(lab(), lab(peers=peers), "node1")
    assert plan.needs_restart == ()
    assert plan.ignored == ()
    assert plan.effective["peers"] == peers


def test_a_file_without_this_node_is_refused() -> None:
    old = lab()
    new = copy.deepcopy(old)
    new["nodes"] = new["nodes"][1:]
    plan = reload_model.plan(old, new, "node1")
    assert plan.refused is not None
    assert plan.refused.startswith("the new pgherd.yaml has no node node1")


def test_the_report_reads_as_sentences() -> None:
    report = reload_model.ReloadReport(
        node="node1",
        unchanged=False,
        fingerprint_before="aaa",
        fingerprint="bbb",
        file_fingerprint="ccc",
        settings=(
            reload_model.ReloadedSetting(
                name="shared_buffers", before=None, after="256MB", effect="restart"
            ),
        ),
        postgres="reloaded",
        pending_restart=("shared_buffers",),
        overridden={"work_mem": "/d/postgresql.auto.conf"},
        needs_agent_restart=("ha.ttl 3.0 → 6.0",),
    )
    assert report.lines() == [
        "node1: fingerprint aaa → bbb",
        "node1: setting shared_buffers unset → 256MB (restart)",
        "node1: PostgreSQL reloaded",
        "node1: pending restart: shared_buffers (pgherd node restart node1, or pgherd "
        "cluster restart)",
        "node1: work_mem is set in /d/postgresql.auto.conf, which overrides pgherd.yaml "
        "(ALTER SYSTEM RESET work_mem to let pgherd.yaml's value apply)",
        "node1: needs an agent restart (PostgreSQL keeps running): ha.ttl 3.0 → 6.0",
    ]
