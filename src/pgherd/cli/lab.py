"""pgherd lab up|down|tour."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pgherd.cli.output import RichReporter, console
from pgherd.lab import layout
from pgherd.model.readable import human_seconds
from pgherd.pg import conninfo

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="A whole cluster on this machine, for demos, tests and learning.")

TOUR_DIR = Path("/var/tmp/pgherd-tour")  # noqa: S108 - a lab directory the user may change

DirOpt = Annotated[
    Path, typer.Option("--dir", help="directory that holds the lab (config, data, logs)")
]


@app.command()
def up(
    directory: DirOpt,
    nodes: Annotated[int, typer.Option("--nodes", help="number of nodes")] = 3,
    port_base: Annotated[
        int,
        typer.Option(
            "--port-base",
            help=f"first PostgreSQL port; agents' API ports start {layout.API_PORT_OFFSET} above",
        ),
    ] = layout.DEFAULT_PORT_BASE,
    os_user: Annotated[
        str, typer.Option("--os-user", help="OS user that runs PostgreSQL")
    ] = "postgres",
    pg_bin: Annotated[
        Path | None, typer.Option("--pg-bin", help="directory of PostgreSQL's programs")
    ] = None,
    failover: Annotated[
        str | None,
        typer.Option(
            "--failover",
            help="automatic (the default: the agents fail over through a coordination store) "
            "or manual (only pgherd standby promote/switchover); independent labs are manual",
            show_default=False,
        ),
    ] = None,
    dcs: Annotated[
        str,
        typer.Option(
            "--dcs",
            help="coordination store for automatic failover: sqlite (a file in DIR) or etcd "
            "(a local etcd the lab starts and stops)",
        ),
    ] = "sqlite",
    sync: Annotated[
        bool,
        typer.Option(
            "--sync", help="synchronous mode: commits wait for a standby that may be promoted"
        ),
    ] = False,
    witness: Annotated[
        bool,
        typer.Option(
            "--witness",
            help="add a data-less witness member (with --dcs etcd: one etcd member per host)",
        ),
    ] = False,
    failsafe: Annotated[
        bool,
        typer.Option(
            "--failsafe",
            help="the primary stays while the store is down if every member still answers it",
        ),
    ] = False,
    independent: Annotated[
        bool,
        typer.Option(
            "--independent",
            help="N separate primaries (each its own cluster and agent), for logical replication",
        ),
    ] = False,
    archive: Annotated[
        bool,
        typer.Option(
            "--archive",
            help="archive WAL (DIR/archive); standbys restore from it when they fall behind",
        ),
    ] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls/--no-tls",
            help="TLS between every part, from a CA the lab makes (--no-tls: plain text, "
            "tls: off in the config, for comparisons; doctor flags it)",
        ),
    ] = True,
) -> None:
    """Create a cluster (one primary, the rest streaming standbys) and start it; on an
    existing lab directory, start it again without re-initialising."""
    from pgherd.lab import lifecycle
    from pgherd.lab.layout import LabShape

    shape = LabShape(
        nodes,
        port_base,
        os_user,
        pg_bin,
        independent=independent,
        failover=failover or ("manual" if independent else "automatic"),
        archive=archive,
        dcs=dcs,
        sync=sync,
        witness=witness,
        failsafe=failsafe,
        tls=tls,
    )
    result = lifecycle.up(directory, shape, RichReporter())
    config = result.config
    verb = "created" if result.created else "started"
    console.print(
        f"\nLab {verb} in {human_seconds(result.seconds)}: {len(config.nodes)} nodes, "
        f"config {result.config_path}\n"
    )
    console.print(f"  export PGHERD_CONFIG={result.config_path}")
    console.print("  pgherd cluster show")
    for node in config.nodes:
        uri = conninfo.uri(
            node.host, node.port, config.superuser, config.passfile, sslrootcert=config.ca_file
        )
        console.print(f"  psql '{uri}'   # {node.name}", soft_wrap=True)
    console.print(f"  pgherd lab down --dir {result.config_path.parent}")


@app.command()
def down(
    directory: DirOpt,
    purge: Annotated[
        bool, typer.Option("--purge", help="also delete the lab directory and its data")
    ] = False,
) -> None:
    """Stop every agent and server of the lab (fast, clean shutdown)."""
    from pgherd.lab import lifecycle

    lifecycle.down(directory, purge, RichReporter())


@app.command()
def tour(
    chapter: Annotated[
        str | None,
        typer.Argument(help="one chapter, by name or number (default: all of them)"),
    ] = None,
    directory: Annotated[Path, typer.Option("--dir", help="where the tour's labs go")] = TOUR_DIR,
    port_base: Annotated[
        int, typer.Option("--port-base", help="first of 30 ports the labs may use")
    ] = layout.DEFAULT_PORT_BASE,
    list_only: Annotated[bool, typer.Option("--list", help="list the chapters")] = False,
    no_pause: Annotated[
        bool, typer.Option("--no-pause", help="do not wait for Enter between steps")
    ] = False,
) -> None:
    """The classic replication guide, live: each chapter's commands run on a lab, with what
    they do, why, and what to look at. Pauses for Enter before each step on a terminal."""
    import sys

    from rich.markdown import Markdown

    from pgherd.lab import tour as tour_mod

    found = tour_mod.chapters()
    if list_only:
        for c in found:
            console.print(f"{c.number:2d}  {c.name:<16} {c.title}")
        return
    selected = tour_mod.pick(found, chapter)
    shell = tour_mod.Shell.for_lab(directory, port_base)
    tour_mod.fresh_labs(shell)

    def pause() -> None:
        console.input("[dim]Enter to run the next step (Ctrl-C to stop)…[/]")

    interactive = sys.stdin.isatty() and not no_pause
    tour_mod.tour(
        selected,
        shell,
        say=lambda text: console.print(Markdown(text)),
        show=lambda command: console.print(f"[bold cyan]{command}[/]", markup=True),
        pause=pause if interactive else None,
    )
    console.print(
        f"done; the labs stay in {directory}: "
        f"pgherd lab down --dir {directory}/streaming --purge (and {directory}/pair)",
        soft_wrap=True,
    )
