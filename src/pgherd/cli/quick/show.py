"""``pgherd cluster show``: every node's role, state, upstream, timeline, LSN and lag, the
failover state from the store, the mesh workers; exit 3 when degraded. A cluster that
runs in plain text (``tls: off``) is flagged every time."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from pgherd.cli.output import EXIT_DEGRADED, print_json
from pgherd.cli.quick.config import load_config
from pgherd.cli.text import Column, Printer, Span, Table
from pgherd.clients.agent import asked_lite_statuses
from pgherd.config_lite import LiteConfig
from pgherd.model import cluster as cluster_model
from pgherd.model.cluster import TLS_OFF, ClusterView
from pgherd.model.duration import human_duration
from pgherd.model.readable import human_bytes, human_seconds
from pgherd.model.status_lite import LiteMeshWorker

if TYPE_CHECKING:
    from pgherd.ops.ha_view import HaView


def run(config_file: Path | None, as_json: bool) -> int:
    config = load_config(config_file)

    def node_at(host: str | None, port: int | None) -> str | None:
        node = config.node_at(host, port)
        return node.name if node else (f"{host}:{port}" if host else None)

    # The agents and the store are asked at once: the command waits for the slower. The
    # agents' threads start first, then this thread reads the store: had the store's
    # reader (which first imports its client, ~5 ms of work that holds the GIL) a thread
    # of its own started before them, each of their starts could wait for it for up to
    # Python's switch interval (5 ms).
    answers = asked_lite_statuses(config.nodes)
    try:
        ha = read_ha(config)
    except BaseException:
        answers()  # an error of the agents' side first, and the threads ended
        raise
    found = answers()
    view = cluster_model.view(found, node_at, config.independent)
    workers = [w for status in found for w in status.mesh_workers]
    problems = list(view.problems) + (ha.problems() if ha else [])
    notes = cluster_model.pending_restart_notes(view.rows)
    warnings = config_warnings(config, view, ha)
    if as_json:
        data = cluster_model.view_json(config.cluster, view) | {"topology": config.topology}
        if workers:
            data["mesh_workers"] = [asdict(w) for w in workers]
        if ha is not None:
            data["ha"] = ha.as_json()
            data["problems"] = problems
            data["health"] = "degraded" if problems else "healthy"
        data["tls"] = config.tls_on
        data["config_fingerprint"] = config.fingerprint
        data["warnings"] = warnings
        print_json(data)
    else:
        out = Printer()
        out.table(view_table(config.cluster, view, ha))
        if ha is not None:
            for line in ha_lines(ha):
                out.line(line)
        if workers:
            out.table(mesh_table(workers))
        for note in notes:
            out.line(Span("~", "cyan"), f" {note}")
        for warning in warnings:
            out.line(Span("!", "yellow"), f" {warning}")
        for problem in problems:
            out.line(Span("!", "yellow"), f" {problem}")
        if not config.tls_on:  # allowed, on purpose, and said every time
            out.line(Span("!", "red"), f" {TLS_OFF}")
    return EXIT_DEGRADED if problems else 0


def read_ha(config: LiteConfig) -> HaView | None:
    """The store's view of failover, or None for a cluster without a store."""
    if config.ha is None:
        return None
    from pgherd.ops import ha_view  # and the store's client: only for a cluster with one

    return ha_view.read(config)


def config_warnings(config: LiteConfig, view: ClusterView, ha: HaView | None) -> list[str]:
    """Agents that run another pgherd.yaml than the rest, or than this host's file: the
    nodes' own reports, and the witnesses' check-ins."""
    found: dict[str, str | None] = {row.name: row.config_fingerprint for row in view.rows}
    hosts = {n.name: n.host for n in config.nodes} | {w.name: w.api_host for w in config.witnesses}
    if ha is not None:
        for member in ha.members:
            if not found.get(member.name):
                found[member.name] = member.config_fingerprint or None
    return cluster_model.config_warnings(found, hosts, config.fingerprint)


def ha_lines(ha: HaView) -> list[str]:
    """The leader, its lease and the store, under the table."""
    lines = []
    if ha.store_ok and ha.leader:
        lease = ""
        if ha.lease_age is not None and ha.lease_left is not None:
            lease = (
                f": lease renewed {human_seconds(ha.lease_age)} ago, "
                f"{human_seconds(ha.lease_left)} left of {human_seconds(ha.lease_ttl)}"
            )
        lines.append(f"leader {ha.leader}{lease}")
    if ha.synchronous is not None:
        lines.append("synchronous standbys: " + (", ".join(ha.synchronous) or "none"))
    for member in ha.members:
        if member.kind == "witness":
            seen = (
                f"checked in {human_seconds(member.checked_in_ago)} ago"
                if member.checked_in_ago is not None
                else "never checked in"
            )
            lines.append(f"witness {member.name}: {seen}")
    if ha.paused:
        what = "maintenance mode" if ha.maintenance else "automatic failover paused"
        if ha.pause_until is None:
            end = "until pgherd cluster resume"
        else:
            left = max(0.0, ha.pause_until - time.time())
            end = (
                f"until {time.strftime('%H:%M:%S', time.localtime(ha.pause_until))} "
                f"({human_duration(left)} left)"
            )
        lines.append(f"{what}: {ha.paused}, {end}; the agents take no automatic action")
    lines.append(f"failover {ha.mode}, store {ha.store}")
    return lines


STATE_STYLE = {
    "running": "green",
    "streaming": "green",
    "catchup": "yellow",
    "not streaming": "red",
    "starting": "yellow",
    "stopping": "yellow",
    "stopped": "red",
    "crashed": "red",
    "unreachable": "red",
}


def view_table(name: str, view: ClusterView, ha: HaView | None = None) -> Table:
    health = "degraded" if ha is not None and ha.problems() else str(view.health)
    headers = ["Node", "Role", "State", "Upstream", "TL", "LSN", "Lag", "Lag time"]
    if ha is not None:
        headers.append("Check-in age")
    columns = [Column(h, right=h.startswith(("Lag", "Check-in"))) for h in headers]
    table = Table(f"cluster {name} ({health})", columns)
    checkins = {m.name: m.checked_in_ago for m in ha.members} if ha is not None else {}
    for row in view.rows:
        mark = "*" if row.is_primary else " "
        if ha is not None and ha.leader == row.name:
            mark = "*" if row.is_primary else "L"
        cells: list[str | Span] = [
            f"{mark} {row.name}",
            str(row.role),
            Span(row.state, STATE_STYLE.get(row.state, "")),
            row.upstream or "",
            str(row.timeline) if row.timeline is not None else "-",
            str(row.lsn) if row.lsn else "-",
            human_bytes(row.lag_bytes),
            human_seconds(row.lag_seconds),
        ]
        if ha is not None:
            ago = checkins.get(row.name)
            cells.append(human_seconds(ago) if ago is not None else "never")
        table.add_row(*cells)
    return table


def mesh_table(workers: list[LiteMeshWorker]) -> Table:
    """The mesh apply workers (pgherd mesh status has the details)."""
    headers = ("Mesh", "Pair", "State", "Lag", "Lag time", "Conflicts")
    table = Table("mesh apply workers", [Column(h, right=h.startswith("Lag")) for h in headers])
    for w in workers:
        table.add_row(
            w.mesh,
            f"{w.source} → {w.target}",
            Span(w.state, STATE_STYLE.get(w.state, "red")),
            human_bytes(w.lag_bytes),
            human_seconds(w.lag_seconds),
            str(w.conflicts),
        )
    return table
