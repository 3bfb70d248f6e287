"""What an agent may take from a re-read pgherd.yaml while it runs, and what needs it
restarted (SIGHUP, ``systemctl reload``, ``pgherd agent reload``).

A reload must never take a primary down, so it takes only what can change under a running
agent and a running PostgreSQL:

- ``settings:`` — pgherd.conf is rewritten and PostgreSQL reloaded; a setting whose
  parameter needs a restart shows as pending until ``pgherd node restart`` or
  ``pgherd cluster restart`` (model/settings.py says which);
- the other members (``nodes:`` and ``witnesses:`` entries other than this node's):
  added, removed or changed — pg_hba.conf's pgherd block is rewritten for their hosts and
  the HA loop, the node's operations and its peers' list use the new list;
- this node's ``nofailover`` and ``replicate_from``;
- ``ha.agent_restart_grace`` (read only when the agent stops);
- ``tls`` (on, off, its ``dir``): PostgreSQL's ``ssl`` and certificate settings, the
  ``hostssl``/``host`` rules of pg_hba.conf's pgherd block and a standby's
  ``primary_conninfo`` (``sslmode=verify-full``) follow at once (model/server_tls.py), and
  so do this agent's calls to the others (``https://``); its own API keeps serving as it
  started (uvicorn's listening socket cannot change its TLS), which is reported as
  needing an agent restart.
- ``slots:``, the permanent slots (ha/slots.py reads them at each look).

Everything else changes what the agent *is* — its store, its timing, its own addresses
and directories, its roles and secrets, the archive it writes to — and is reported as
needing an agent restart (which does not restart PostgreSQL: ha/handover.py); the agent
keeps running with the values it started with. ``console:`` is read by ``pgherd
console``, not by the agents. A file that no longer names this node is refused whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from pgherd.model.status import Frozen

LIVE_NODE_FIELDS = ("nofailover", "replicate_from")
LIVE_HA_FIELDS = ("agent_restart_grace",)
API_TLS = "the agent's API serves as it started (HTTPS or plain HTTP) until the agent restarts"
# Cluster-wide keys the agent takes as they are: slots (the slot keeper), peers (their
# hosts in pg_hba.conf's pgherd block; mesh commands and workers read the files anew).
LIVE_KEYS = ("slots", "peers")
IGNORED = {"console": "console: read by pgherd console, not by the agents"}


@dataclass(frozen=True)
class ReloadPlan:
    node: str
    refused: str | None = None
    settings_before: dict[str, Any] = field(default_factory=dict)
    settings_after: dict[str, Any] = field(default_factory=dict)
    members: tuple[str, ...] = ()  # "node4 added", "node2: host 10.0.0.2 → 10.0.0.9"
    this_node: tuple[str, ...] = ()  # "nofailover false → true", "ha.agent_restart_grace …"
    tls: tuple[str, ...] = ()  # "tls false → {…}": PostgreSQL's TLS follows now
    needs_restart: tuple[str, ...] = ()  # "ha.ttl 3.0 → 5.0"
    ignored: tuple[str, ...] = ()
    effective: dict[str, Any] = field(default_factory=dict)  # the config to run with

    @property
    def settings_changed(self) -> bool:
        return self.settings_before != self.settings_after

    @property
    def unchanged(self) -> bool:
        return not (
            self.settings_changed
            or self.members
            or self.this_node
            or self.tls
            or self.needs_restart
            or self.ignored
        )


def plan(old: Mapping[str, Any], new: Mapping[str, Any], node: str) -> ReloadPlan:
    """Compare the running config with the re-read one (both as ``model_dump(mode="json")``)
    for the agent of ``node``."""
    new_nodes = {n["name"]: n for n in new.get("nodes", ())}
    old_nodes = {n["name"]: n for n in old.get("nodes", ())}
    if node not in new_nodes:
        return ReloadPlan(
            node,
            refused=(
                f"the new pgherd.yaml has no node {node}: this agent keeps the configuration "
                "it runs with"
            ),
        )
    needs_restart: list[str] = []
    ignored: list[str] = []
    taken: list[str] = []  # what the agent takes live besides this node's fields
    tls: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key in ("settings", "nodes", "witnesses") or old.get(key) == new.get(key):
            continue
        if key in IGNORED:
            ignored.append(IGNORED[key])
        elif key == "tls":
            tls.extend(_differences(key, old.get(key), new.get(key)))
            needs_restart.append(API_TLS)
        elif key in LIVE_KEYS:
            taken.extend(_differences(key, old.get(key), new.get(key)))
        elif key == "ha" and old.get(key) and new.get(key):
            for said in _differences(key, old[key], new[key]):
                live = said.split(" ", 1)[0].removeprefix("ha.") in LIVE_HA_FIELDS
                (taken if live else needs_restart).append(said)
        else:
            needs_restart.extend(_differences(key, old.get(key), new.get(key)))
    mine_old, mine_new = old_nodes[node], new_nodes[node]
    this_node = []
    for name in sorted(set(mine_old) | set(mine_new)):
        before, after = mine_old.get(name), mine_new.get(name)
        if before == after:
            continue
        change = f"{name} {_show(before)} → {_show(after)}"
        if name in LIVE_NODE_FIELDS:
            this_node.append(change)
        else:
            needs_restart.append(f"nodes.{node}.{change}")
    members = _member_changes(old_nodes, new_nodes, skip=node)
    members += _member_changes(
        {w["name"]: w for w in old.get("witnesses", ())},
        {w["name"]: w for w in new.get("witnesses", ())},
        skip=node,
        kind="witness ",
    )
    mine = dict(mine_old) | {f: mine_new.get(f) for f in LIVE_NODE_FIELDS if f in mine_new}
    effective = dict(old) | {
        "settings": dict(new.get("settings", {})),
        "nodes": [mine if n["name"] == node else n for n in new.get("nodes", ())],
        "witnesses": list(new.get("witnesses", ())),
    }
    if tls:
        effective["tls"] = new.get("tls")
    for key in LIVE_KEYS:
        if key in new:
            effective[key] = new[key]
        else:
            effective.pop(key, None)
    if old.get("ha") and new.get("ha") and taken:
        effective["ha"] = dict(old["ha"]) | {
            f: new["ha"][f] for f in LIVE_HA_FIELDS if f in new["ha"]
        }
    return ReloadPlan(
        node=node,
        settings_before=dict(old.get("settings", {})),
        settings_after=dict(new.get("settings", {})),
        members=tuple(members),
        this_node=tuple(this_node + taken),
        tls=tuple(tls),
        needs_restart=tuple(needs_restart),
        ignored=tuple(ignored),
        effective=effective,
    )


def _member_changes(
    old: Mapping[str, Mapping[str, Any]],
    new: Mapping[str, Mapping[str, Any]],
    skip: str,
    kind: str = "",
) -> list[str]:
    found = []
    for name in sorted(set(old) | set(new)):
        if name == skip:
            continue
        if name not in old:
            found.append(f"{kind}{name} added")
        elif name not in new:
            found.append(f"{kind}{name} removed")
        elif old[name] != new[name]:
            fields = sorted(
                k for k in set(old[name]) | set(new[name]) if old[name].get(k) != new[name].get(k)
            )
            detail = ", ".join(
                f"{k} {_show(old[name].get(k))} → {_show(new[name].get(k))}" for k in fields
            )
            found.append(f"{kind}{name}: {detail}")
    return found


def _differences(path: str, old: Any, new: Any) -> list[str]:
    """``path.leaf old → new`` for each leaf that differs (dicts are walked, the rest
    compared whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                found.extend(_differences(f"{path}.{key}", old.get(key), new.get(key)))
        return found
    return [f"{path} {_show(old)} → {_show(new)}"]


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


class ReloadedSetting(Frozen):
    name: str
    before: str | None
    after: str | None
    effect: str  # model.settings.Effect


class ReloadReport(Frozen):
    """What a reload did on one node (``POST /agent/reload``, ``pgherd agent reload``)."""

    node: str
    unchanged: bool
    fingerprint_before: str
    fingerprint: str  # of the config the agent runs with now
    file_fingerprint: str  # of the file as read (differs when some change needs a restart)
    settings: tuple[ReloadedSetting, ...] = ()
    postgres: str = ""  # "reloaded", "not running: applies at its next start", ...
    pending_restart: tuple[str, ...] = ()  # PostgreSQL's pending_restart after the reload
    # setting -> the file whose value wins over pgherd.conf's (ALTER SYSTEM)
    overridden: dict[str, str] = Field(default_factory=dict)
    access_rules: bool = False  # pg_hba.conf's pgherd block was rewritten
    tls: tuple[str, ...] = ()  # the tls section's changes, applied to PostgreSQL
    tls_reload: tuple[str, ...] = ()  # why PostgreSQL reloaded for TLS (model/server_tls.py)
    members: tuple[str, ...] = ()
    this_node: tuple[str, ...] = ()
    needs_agent_restart: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The report as sentences, for the log and the CLI."""
        if self.unchanged:
            return [f"{self.node}: pgherd.yaml unchanged (fingerprint {self.fingerprint})"]
        out = [f"{self.node}: fingerprint {self.fingerprint_before} → {self.fingerprint}"]
        out.extend(
            f"{self.node}: setting {s.name} {s.before or 'unset'} → {s.after or 'unset'} "
            f"({s.effect})"
            for s in self.settings
        )
        if self.postgres:
            out.append(f"{self.node}: PostgreSQL {self.postgres}")
        if self.pending_restart:
            out.append(
                f"{self.node}: pending restart: {', '.join(self.pending_restart)} "
                f"(pgherd node restart {self.node}, or pgherd cluster restart)"
            )
        out.extend(
            f"{self.node}: {name} is set in {where}, which overrides pgherd.yaml "
            f"(ALTER SYSTEM RESET {name} to let pgherd.yaml's value apply)"
            for name, where in sorted(self.overridden.items())
        )
        out.extend(f"{self.node}: {t} (PostgreSQL follows now)" for t in self.tls)
        out.extend(f"{self.node}: TLS: {r}" for r in self.tls_reload)
        if self.access_rules:
            out.append(f"{self.node}: pg_hba.conf's pgherd block rewritten")
        out.extend(f"{self.node}: member {m}" for m in self.members)
        out.extend(f"{self.node}: this node's {c}" for c in self.this_node)
        if self.needs_agent_restart:
            out.append(
                f"{self.node}: needs an agent restart (PostgreSQL keeps running): "
                + "; ".join(self.needs_agent_restart)
            )
        out.extend(f"{self.node}: ignored: {i}" for i in self.ignored)
        return out
