"""The ``pgherd`` command.

Subcommands are imported when they are called, not all at start-up: a command such as
``pgherd cluster show`` then loads only what it needs (``--help`` still lists them all).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    # Typer ships its own copy of click; these are the types its groups use.
    from typer._click.core import Command, Context

from pgherd.cli.output import EXIT_ERROR, error
from pgherd.errors import PgherdError

# name -> (module, attribute): a Typer app (a group of commands) or a command function.
COMMANDS: dict[str, tuple[str, str]] = {
    "lab": ("pgherd.cli.lab", "app"),
    "cluster": ("pgherd.cli.cluster", "app"),
    "connstr": ("pgherd.cli.cluster", "connstr"),
    "node": ("pgherd.cli.node", "app"),
    "standby": ("pgherd.cli.standby", "app"),
    "agent": ("pgherd.cli.agent", "app"),
    "doctor": ("pgherd.cli.doctor", "doctor"),
    "publication": ("pgherd.cli.publication", "app"),
    "subscription": ("pgherd.cli.subscription", "app"),
    "ddl": ("pgherd.cli.ddl", "ddl"),
    "upgrade": ("pgherd.cli.upgrade", "app"),
    "console": ("pgherd.cli.console", "app"),
    "mesh": ("pgherd.cli.mesh", "app"),
    "wal": ("pgherd.cli.wal", "app"),
    "archive": ("pgherd.cli.archive", "app"),
    "backup": ("pgherd.cli.backup", "app"),
    "restore-point": ("pgherd.cli.restore", "restore_point_app"),
    "replay": ("pgherd.cli.restore", "replay_app"),
    "restore": ("pgherd.cli.restore", "restore"),
    "secrets": ("pgherd.cli.secrets", "app"),
    "config": ("pgherd.cli.config", "app"),
}


def load_command(name: str) -> Command | None:
    if name not in COMMANDS:
        return None
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer()
    single.command(name=name)(target)
    command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        return load_command(cmd_name)


app = typer.Typer(
    cls=LazyGroup,
    help="pgherd: set up, operate and watch PostgreSQL replication.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        from pgherd import __version__

        typer.echo(f"pgherd {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="print pgherd's version and exit",
        ),
    ] = False,
) -> None:
    """pgherd: set up, operate and watch PostgreSQL replication."""


def main() -> None:
    try:
        app()
    except PgherdError as exc:
        error(exc.one_line())
        sys.exit(EXIT_ERROR)
    except OSError as exc:  # a file or directory the command could not use, said in one line
        where = f": {exc.filename}" if exc.filename else ""
        error(f"{exc.strerror or type(exc).__name__}{where}")
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)
