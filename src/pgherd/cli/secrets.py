"""pgherd secrets init: the cluster's secret files, created once."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import console, print_json

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).

app = typer.Typer(help="The cluster's secret files: passfile, API token.")


@app.command()
def init(
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="replace files that exist (new passwords: the roles' must then change too)",
        ),
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the files pgherd.yaml names for secrets — the passfile (generated passwords
    for the superuser and the replication role) and the agents' API token — mode 0600,
    owned by the PostgreSQL OS user. A file that exists is kept (--force replaces it).
    Copy them to every other host (docs/deploy.md)."""
    from pgherd import credentials
    from pgherd.credentials.files import Action
    from pgherd.pg import osuser

    config = load_config(config_file)
    user = osuser.resolve(config.os_user)
    written = credentials.files.init(config, user, credentials.KINDS, force=force)
    if as_json:
        print_json(
            {
                "owner": user.name,
                "files": [
                    {"kind": w.kind, "path": str(w.path), "action": str(w.action)} for w in written
                ],
            }
        )
        return
    for w in written:
        if w.action is Action.KEPT:
            line = (
                f"[yellow]=[/] {w.kind} {escape(str(w.path))}: exists, kept (--force replaces it)"
            )
        else:
            line = (
                f"[green]✓[/] {w.kind} {escape(str(w.path))}: {w.action} (0600, owner {user.name})"
            )
        console.print(line, soft_wrap=True)
    if any(w.action is Action.REPLACED and w.kind == "passfile" for w in written):
        console.print(
            "[yellow]![/] new passwords: a running cluster's roles still have the old ones "
            "(ALTER ROLE … PASSWORD on the primary), and every host needs the new passfile",
            soft_wrap=True,
        )
    paths = " ".join(escape(str(w.path)) for w in written)
    console.print(
        f"copy to every other host, 0600 owned by {user.name}: {paths} (docs/deploy.md)",
        soft_wrap=True,
    )
