"""pgherd cluster show|events, pgherd connstr."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pgherd import config as config_mod
from pgherd.cli import operations
from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json
from pgherd.clients.agent import statuses
from pgherd.model import cluster as cluster_model
from pgherd.model.cluster import ClusterView
from pgherd.model.doctor import TLS_OFF
from pgherd.model.duration import human_duration, parse_duration
from pgherd.model.mesh import MeshWorkerRow
from pgherd.model.readable import human_bytes, human_seconds
from pgherd.pg import conninfo

if TYPE_CHECKING:
    from pgherd.config import ClusterConfig
    from pgherd.ops.ha_view import HaView

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="The cluster as a whole.")
app.command()(operations.events)


@app.command()
def show(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every node: role, state, upstream, timeline, LSN and lag. Exits 3 when degraded."""
    config = load_config(config_file)

    def node_at(host: str | None, port: int | None) -> str | None:
        node = config.node_at(host, port)
        return node.name if node else (f"{host}:{port}" if host else None)

    found = statuses(config.nodes)
    view = cluster_model.view(found, node_at, config.independent)
    workers = [w for status in found for w in status.mesh_workers]
    ha = None
    if config.ha is not None:
        from pgherd.ops import ha_view

        ha = ha_view.read(config)
    problems = list(view.problems) + (ha.problems() if ha else [])
    notes = cluster_model.pending_restart_notes(view.rows)
    warnings = _config_warnings(config, view, ha)
    if as_json:
        data = cluster_model.view_json(config.cluster, view) | {"topology": config.topology}
        if workers:
            data["mesh_workers"] = [w.model_dump(mode="json") for w in workers]
        if ha is not None:
            data["ha"] = ha.as_json()
            data["problems"] = problems
            data["health"] = "degraded" if problems else "healthy"
        data["tls"] = config.tls_on
        data["config_fingerprint"] = config_mod.fingerprint(config)
        data["warnings"] = warnings
        print_json(data)
    else:
        console.print(view_table(config.cluster, view, ha))
        if ha is not None:
            for line in ha_lines(ha):
                console.print(line, soft_wrap=True)
        if workers:
            console.print(mesh_table(workers))
        for note in notes:
            console.print(f"[cyan]~[/] {escape(note)}", soft_wrap=True)
        for warning in warnings:
            console.print(f"[yellow]![/] {escape(warning)}", soft_wrap=True)
        for problem in problems:
            console.print(f"[yellow]![/] {problem}", soft_wrap=True)
        if not config.tls_on:  # allowed, on purpose, and said every time
            console.print(f"[red]![/] {TLS_OFF}", soft_wrap=True)
    if problems:
        raise typer.Exit(EXIT_DEGRADED)


def _config_warnings(config: ClusterConfig, view: ClusterView, ha: HaView | None) -> list[str]:
    """Agents that run another pgherd.yaml than the rest, or than this host's file: the
    nodes' own reports, and the witnesses' check-ins."""
    found: dict[str, str | None] = {row.name: row.config_fingerprint for row in view.rows}
    hosts = {n.name: n.host for n in config.nodes} | {w.name: w.api_host for w in config.witnesses}
    if ha is not None:
        for member in ha.members:
            if not found.get(member.name):
                found[member.name] = member.config_fingerprint or None
    return cluster_model.config_warnings(found, hosts, config_mod.fingerprint(config))


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
    table = Table(title=f"cluster {name} ({health})", title_justify="left")
    columns = ["Node", "Role", "State", "Upstream", "TL", "LSN", "Lag", "Lag time"]
    if ha is not None:
        columns.append("Check-in age")
    for column in columns:
        right = column.startswith("Lag") or column.startswith("Check-in")
        table.add_column(column, justify="right" if right else "left")
    checkins = {m.name: m.checked_in_ago for m in ha.members} if ha is not None else {}
    for row in view.rows:
        style = STATE_STYLE.get(row.state, "")
        mark = "*" if row.is_primary else " "
        if ha is not None and ha.leader == row.name:
            mark = "*" if row.is_primary else "L"
        cells = [
            f"{mark} {row.name}",
            str(row.role),
            f"[{style}]{row.state}[/]" if style else row.state,
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


def mesh_table(workers: list[MeshWorkerRow]) -> Table:
    """The mesh apply workers (pgherd mesh status has the details)."""
    table = Table(title="mesh apply workers", title_justify="left")
    for column in ("Mesh", "Pair", "State", "Lag", "Lag time", "Conflicts"):
        table.add_column(column, justify="right" if column.startswith("Lag") else "left")
    for w in workers:
        style = STATE_STYLE.get(w.state, "red")
        table.add_row(
            w.mesh,
            f"{w.source} → {w.target}",
            f"[{style}]{w.state}[/]",
            human_bytes(w.lag_bytes),
            human_seconds(w.lag_seconds),
            str(w.conflicts),
        )
    return table


@app.command()
def pause(
    duration: Annotated[
        str | None,
        typer.Option("--for", help="end it by itself after this long (30m, 2h, 1h30m)"),
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Maintenance mode: the agents keep PostgreSQL running and report, but take no
    automatic action (no failover, no restart in place, no rejoin) until resumed."""
    from pgherd.ops import maintenance
    from pgherd.ops.context import requested_by
    from pgherd.ops.events import event_log

    seconds = parse_duration(duration) if duration is not None else None
    config = load_config(config_file)
    maintenance.require_automatic(config)
    events = event_log(config, config_mod.read_token(config))
    result = maintenance.pause(config, seconds, requested_by(), events)
    if as_json:
        print_json(result)
        return
    end = "until pgherd cluster resume" if seconds is None else f"for {human_duration(seconds)}"
    console.print(
        f"cluster {config.cluster} in maintenance mode {end}: the agents keep PostgreSQL "
        "running and take no automatic action",
        soft_wrap=True,
    )


@app.command()
def resume(config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Leave maintenance mode: automatic failover is back on."""
    from pgherd.ops import maintenance
    from pgherd.ops.context import requested_by
    from pgherd.ops.events import event_log

    config = load_config(config_file)
    maintenance.require_automatic(config)
    events = event_log(config, config_mod.read_token(config))
    result = maintenance.resume(config, requested_by(), events)
    if as_json:
        print_json(result)
    elif result.before is None:
        console.print(f"cluster {config.cluster} was not in maintenance mode; nothing changed")
    else:
        console.print(f"cluster {config.cluster}: automatic failover is back on")


def connstr(
    node: NodeArg,
    replication: Annotated[
        bool, typer.Option("--replication", help="as the replication role (for pg_basebackup)")
    ] = False,
    config_file: ConfigOpt = None,
) -> None:
    """A libpq URI for NODE, for psql and scripts (the password comes from the passfile)."""
    config = load_config(config_file)
    target = config.node(node)
    user = config.replication_user if replication else config.superuser
    print(conninfo.uri(target.host, target.port, user, config.passfile, sslrootcert=config.ca_file))


@app.command()
def cleanup(
    keep_days: Annotated[
        float, typer.Option("--keep-days", min=0, help="keep this many days of history")
    ],
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trim every agent's monitoring history (lag samples) to the last N days.
    Exits 3 when an agent could not be reached (the others are trimmed)."""
    from pgherd.clients.agent import fan_out
    from pgherd.clients.history import HistoryClient
    from pgherd.config import NodeConfig
    from pgherd.errors import AgentError, AgentUnreachable
    from pgherd.model import history

    config = load_config(config_file)
    token = config_mod.read_token(config)

    def trim(node: NodeConfig) -> history.CleanupResult:
        try:
            return HistoryClient(node, token).cleanup(keep_days)
        except (AgentUnreachable, AgentError) as exc:
            cutoff = history.cutoff(history.now(), keep_days)
            return history.CleanupResult(
                node=node.name, removed=0, kept=0, cutoff=cutoff, error=exc.message
            )

    results = fan_out(config.nodes, trim)
    if as_json:
        print_json(results)
    else:
        for r in results:
            if r.error:
                console.print(f"[red]✗[/] {r.node}: {r.error}", soft_wrap=True)
            else:
                console.print(
                    f"[green]✓[/] {r.node}: removed {r.removed} samples older than "
                    f"{r.cutoff.astimezone():%Y-%m-%d %H:%M:%S}, {r.kept} kept"
                )
    if any(r.error for r in results):
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def restart(
    every_node: Annotated[
        bool, typer.Option("--all", help="restart every node, not only those with pending settings")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the plan; change nothing")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds each node may take to stream again")
    ] = 120.0,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rolling restart for settings pending a restart: standbys one at a time, then a
    switchover, then the old primary. Refused (nothing done) when it cannot be done
    safely: a node down, a standby not streaming, no standby to take the primary's role."""
    from pgherd.cli.operations import _operation
    from pgherd.errors import InvalidInput
    from pgherd.ops import restart as ops

    op = _operation(config_file, as_json)
    result = ops.rolling(op, every_node=every_node, dry_run=dry_run, timeout=timeout)
    if as_json:
        print_json(result)
    elif dry_run or not result.plan:
        if result.plan:
            console.print("dry run: the rolling restart would")
            for number, line in enumerate(result.plan, 1):
                console.print(f"  {number}. {escape(line)}", soft_wrap=True)
        console.print(escape(result.reason), soft_wrap=True)
    else:
        console.print(
            f"rolling restart done in {human_seconds(result.seconds)}: {escape(result.reason)}",
            soft_wrap=True,
        )
    if dry_run and result.outcome == "refused":
        raise InvalidInput(f"rolling restart refused: {result.reason}", result.hint)
