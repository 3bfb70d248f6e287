"""The ``pgherd`` command."""

from __future__ import annotations

import sys

import typer

from pgherd.cli import agent, cluster, doctor, lab, mesh, node, standby
from pgherd.cli.output import EXIT_ERROR, error
from pgherd.errors import PgherdError

app = typer.Typer(
    help="pgherd: set up, operate and watch PostgreSQL replication.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(lab.app, name="lab")
app.add_typer(cluster.app, name="cluster")
app.add_typer(node.app, name="node")
app.add_typer(standby.app, name="standby")
app.add_typer(agent.app, name="agent")
app.add_typer(mesh.app, name="mesh")
app.command()(cluster.connstr)
app.command(name="doctor")(doctor.doctor)


def main() -> None:
    try:
        app()
    except PgherdError as exc:
        error(exc.one_line())
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)
