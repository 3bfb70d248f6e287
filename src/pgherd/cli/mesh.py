"""pgherd mesh create|add-node|status|verify|conflicts|drop: multi-master between nodes."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json
from pgherd.model.conflict import TIME_RESOLUTION_US, ConflictKind, Policy, Resolution
from pgherd.model.mesh_sequences import DEFAULT_STEP, MAX_STEP
from pgherd.model.readable import human_bytes, human_seconds

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="Multi-master: nodes that replicate tables to each other, both ways.")

NameArg = Annotated[str, typer.Argument(help="the mesh's name", show_default=False)]


def _mesh(config_file: Any) -> Any:
    from pgherd.mesh.operations import Mesh

    config = load_config(config_file)
    return Mesh(config, config_mod.read_token(config))


def _say(text: str) -> None:
    console.print(f"[green]✓[/] {text}", soft_wrap=True)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command()
def create(
    name: NameArg,
    nodes: Annotated[str, typer.Option("--nodes", help="members, highest priority first: a,b[,c]")],
    tables: Annotated[str, typer.Option("--tables", help="tables to replicate: t1,schema.t2")],
    policy: Annotated[
        str,
        typer.Option("--policy", help="conflict policy: last-update-wins, node-priority or error"),
    ] = Policy.LAST_UPDATE_WINS.value,
    dbname: Annotated[str, typer.Option("--dbname", help="the database")] = "postgres",
    time_resolution_ms: Annotated[
        int,
        typer.Option(
            "--time-resolution-ms",
            min=1,
            max=60_000,
            help="last-update-wins compares commit times in slots of this length",
        ),
    ] = TIME_RESOLUTION_US // 1000,
    sequence_step: Annotated[
        int,
        typer.Option(
            "--sequence-step",
            min=1,
            max=MAX_STEP,
            help="member k draws sequence values ≡ k (mod step): at most this many members",
        ),
    ] = DEFAULT_STEP,
    initial_copy_from: Annotated[
        str | None,
        typer.Option(
            "--initial-copy-from",
            help="replace the other nodes' rows by a copy of this node's (tables may be absent)",
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="every node keeps its rows and gets the others' (keys must differ)"
        ),
    ] = False,
    topology: Annotated[
        str,
        typer.Option(
            "--topology",
            help="full (every pair), star (the first node passes the others' changes on) or "
            "chain (each node passes on to the next)",
        ),
    ] = "full",
    config_file: ConfigOpt = None,
) -> None:
    """Replicate TABLES between NODES in both directions (every pair: a full mesh). The
    tables must hold the same rows, unless --initial-copy-from or --merge says how to make
    them so."""
    from pgherd.mesh.operations import build_spec

    spec = build_spec(
        name,
        _split(nodes),
        _split(tables),
        policy,
        dbname,
        time_resolution_ms,
        sequence_step,
        topology,
    )
    _mesh(config_file).create(spec, _say, copy_from=initial_copy_from, merge=merge)
    console.print(
        f"mesh {spec.name}: {', '.join(spec.nodes)} replicate {', '.join(spec.tables)} "
        f"({spec.policy})",
        soft_wrap=True,
    )


@app.command("add-node")
def add_node(
    name: NameArg,
    node: Annotated[str, typer.Option("--node", help="the node to add")],
    initial_copy_from: Annotated[
        str | None,
        typer.Option(
            "--initial-copy-from", help="the member to copy from (default: the first one)"
        ),
    ] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Add NODE to a mesh. Its tables, when empty or absent, get a copy of a member's rows
    (consistent with the streams: writes go on meanwhile); tables that hold other rows are
    refused unless --initial-copy-from replaces them."""
    spec = _mesh(config_file).add_node(name, node, _say, copy_from=initial_copy_from)
    console.print(f"mesh {spec.name}: {', '.join(spec.nodes)}", soft_wrap=True)


@app.command("set-policy")
def set_policy(
    name: NameArg,
    policy: Annotated[
        str, typer.Argument(help="last-update-wins, node-priority or error", show_default=False)
    ],
    config_file: ConfigOpt = None,
) -> None:
    """Change the conflict policy on every member (workers restart with it)."""
    _mesh(config_file).set_policy(name, policy, _say)


@app.command()
def status(name: NameArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every pair: worker state, lag, conflicts. Exits 3 when a pair does not run."""
    rows = _mesh(config_file).status(name)
    if as_json:
        print_json({"mesh": name, "pairs": rows})
    else:
        table = Table(title=f"mesh {name}", title_justify="left")
        for column in ("Pair", "State", "Lag", "Lag time", "Rows", "Conflicts", "Last conflict"):
            table.add_column(column, justify="right" if column.startswith("Lag") else "left")
        for row in rows:
            state = str(row.get("state"))
            style = "green" if state == "running" else "red"
            table.add_row(
                f"{row['source']} → {row['target']}",
                f"[{style}]{state}[/]",
                human_bytes(row.get("lag_bytes")),
                human_seconds(row.get("lag_seconds")),
                str(row.get("rows", "-")),
                str(row.get("conflicts", "-")),
                row.get("last_conflict") or "",
            )
        console.print(table)
        for row in rows:
            if row.get("error"):
                console.print(f"[yellow]![/] {row['source']} → {row['target']}: {row['error']}")
    if any(row.get("state") != "running" for row in rows):
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def verify(
    name: NameArg,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="rows per compared key range")
    ] = 10_000,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare the tables on every member by key ranges, and the sequences they use. Exits 3
    when rows differ or two members' sequences could hand out the same value."""
    spec, differences, collisions = _mesh(config_file).verify(name, chunk_rows)
    if as_json:
        print_json(
            {
                "mesh": name,
                "tables": list(spec.tables),
                "clean": not differences and not collisions,
                "differences": [
                    {"table": d.table, "from": d.start, "to": d.end, "rows": dict(d.rows)}
                    for d in differences
                ],
                "sequences": [
                    {"sequence": c.sequence, "nodes": list(c.nodes), "why": c.why}
                    for c in collisions
                ],
            }
        )
    elif not differences:
        console.print(f"mesh {name}: {', '.join(spec.tables)} identical on {', '.join(spec.nodes)}")
    else:
        table = Table(title=f"mesh {name}: differing key ranges", title_justify="left")
        for column in ("Table", "From key", "To key (excl.)", "Rows per node"):
            table.add_column(column)
        for d in differences:
            counts = ", ".join(f"{n} {c}" for n, c in d.rows.items())
            table.add_row(d.table, d.start or "(start)", d.end or "(end)", counts)
        console.print(table)
    if not as_json:
        for c in collisions:
            console.print(
                f"[yellow]![/] sequence {c.sequence} could hand out the same value on "
                f"{c.nodes[0]} and {c.nodes[1]}: {c.why}",
                soft_wrap=True,
            )
    if differences or collisions:
        raise typer.Exit(EXIT_DEGRADED)


@app.command()
def conflicts(
    name: NameArg,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="newest first, at most")
    ] = 50,
    on_table: Annotated[str | None, typer.Option("--table", help="only this table")] = None,
    kind: Annotated[ConflictKind | None, typer.Option("--kind", help="only this kind")] = None,
    resolution: Annotated[
        Resolution | None, typer.Option("--resolution", help="only this outcome")
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Conflicts the mesh's workers met, from pgherd.conflicts on every member."""
    from pgherd.model.mesh import ConflictFilter

    which = ConflictFilter(limit=limit, table=on_table, kind=kind, resolution=resolution)
    rows = _mesh(config_file).conflicts(name, which)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"mesh {name}: conflicts", title_justify="left")
    for column in ("At", "On", "From", "Table", "Kind", "Key", "Resolution", "Why"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.at.isoformat(sep=" ", timespec="milliseconds"),
            row.target_node,
            row.source_node,
            row.table_name,
            row.kind,
            row.key or "",
            row.resolution,
            row.reason or "",
        )
    console.print(table)


@app.command()
def drop(name: NameArg, config_file: ConfigOpt = None) -> None:
    """Stop the workers and remove the mesh's slots, origins and publications (the tables,
    their rows and pgherd.conflicts stay)."""
    _mesh(config_file).drop(name, _say)
    console.print(f"mesh {name} dropped")
