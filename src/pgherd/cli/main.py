"""The ``pgherd`` command."""

from __future__ import annotations

import sys

import typer

from pgherd.cli import (
    agent,
    archive,
    backup,
    cluster,
    ddl,
    doctor,
    lab,
    node,
    publication,
    restore,
    standby,
    subscription,
    wal,
)
from pgherd.cli import console as console_cli
from pgherd.cli import upgrade as upgrade_cli
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
app.add_typer(publication.app, name="publication")
app.add_typer(subscription.app, name="subscription")
app.add_typer(upgrade_cli.app, name="upgrade")
app.add_typer(console_cli.app, name="console")
app.add_typer(wal.app, name="wal")
app.add_typer(archive.app, name="archive")
app.add_typer(backup.app, name="backup")
app.add_typer(restore.restore_point_app, name="restore-point")
app.add_typer(restore.replay_app, name="replay")
app.command(name="restore")(restore.restore)
app.command()(cluster.connstr)
app.command(name="ddl")(ddl.ddl)
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
