"""pgherd console [--listen ADDR:PORT] [--cert FILE --key FILE], pgherd console passwd."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt
from pgherd.cli.output import console
from pgherd.errors import InvalidInput

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(
    help="The web console: the cluster's picture, lag history, logical replication, actions.",
)


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    listen: Annotated[
        str, typer.Option("--listen", help="ADDR:PORT to serve on (loopback by default)")
    ] = "127.0.0.1:8080",
    cert: Annotated[
        Path | None, typer.Option("--cert", help="TLS certificate (PEM): serve HTTPS")
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="TLS private key (PEM)")] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Serve the web console (runs until interrupted). Log in as a user set with
    `pgherd console passwd`, or as `token` with the cluster's API token."""
    if ctx.invoked_subcommand is not None:
        return
    from pgherd.console import server

    server.serve(config_mod.config_path(config_file), listen, cert, key)


@app.command()
def passwd(
    user: Annotated[str, typer.Argument(help="the console user's name")],
    role: Annotated[
        str, typer.Option("--role", help="viewer (reads) or operator (reads and acts)")
    ] = "viewer",
    delete: Annotated[bool, typer.Option("--delete", help="remove the user")] = False,
    config_file: ConfigOpt = None,
) -> None:
    """Set a console user's password (asked twice, or one line on standard input) and role;
    only a scrypt hash is written to the config."""
    from pgherd.console import server

    path = config_mod.config_path(config_file)
    if delete:
        server.remove_user(path, user)
        console.print(f"[green]✓[/] removed console user {user!r} from {path}")
        return
    if role not in ("viewer", "operator"):
        raise InvalidInput(f"--role {role!r} is not a role", "use viewer or operator")
    password = _read_password(user)
    new = server.set_password(path, user, role, password)  # type: ignore[arg-type]
    verb = "added" if new else "updated"
    console.print(f"[green]✓[/] {verb} console user {user!r} ({role}) in {path}")


def _read_password(user: str) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {user}: ")
    if getpass.getpass("again: ") != first:
        raise InvalidInput("the two passwords differ", "type the same password twice")
    return first
