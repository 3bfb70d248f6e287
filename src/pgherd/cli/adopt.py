"""pgherd node adopt NODE --dry-run: what adopting an existing PostgreSQL would change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import EXIT_ERROR, console, print_json
from pgherd.errors import InvalidInput

if TYPE_CHECKING:
    from pgherd.physical.adopt import Adoption


def adopt(
    node: NodeArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what adopting would change; change nothing")
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What adopting NODE's existing PostgreSQL would change (run on NODE's host).

    The agent adopts it when it starts and the store holds no cluster yet
    (docs/deploy.md): settings replication needs, pgherd's pg_hba block above the
    operator's rules, the replication role; a restart only if a changed setting needs one.
    """
    # Lazy: `pgherd node start` and its siblings need none of this (psycopg, pg_controldata).
    from pgherd.pg.local_node import LocalNode
    from pgherd.physical import adopt as adopt_mod

    config = load_config(config_file)
    config.node(node)  # an unknown name is refused before it is repeated in a hint
    if not dry_run:
        raise InvalidInput(
            f"{node}'s agent adopts its PostgreSQL when it starts; this command only shows "
            "what that would change",
            f"pass --dry-run, then start the agent (pgherd agent run --node {node})",
        )
    adoption = adopt_mod.inspect(LocalNode.open(config, node))
    if as_json:
        print_json(adoption.as_json())
    else:
        _print_adoption(adoption)
    if adoption.problems:
        raise typer.Exit(EXIT_ERROR)


def _print_adoption(adoption: Adoption) -> None:
    state = f"running (pid {adoption.running_pid})" if adoption.running_pid else "stopped"
    console.print(
        f"{adoption.node}: PostgreSQL {adoption.major} in {escape(str(adoption.data_dir))}, "
        f"system identifier {adoption.system_identifier}, {state}"
    )
    if adoption.problems:
        for problem in adoption.problems:
            console.print(f"[red]cannot adopt:[/] {escape(problem)}")
        return
    if adoption.pgherd_made:
        console.print(
            "pgherd's settings are already included: its agent registers the data as they are"
        )
    if adoption.changes:
        table = Table("setting", "now", "adopted", "through", "restart")
        for c in adoption.changes:
            table.add_row(c.name, c.old or "(unset)", c.new, str(c.via), "yes" if c.restart else "")
        console.print(table)
    else:
        console.print("settings: nothing to change")
    console.print(
        f"pg_hba.conf: pgherd's block of {len(adoption.hba_block)} rules first, "
        f"the {adoption.hba_kept} rules there now kept below it:"
    )
    for line in adoption.hba_block:
        console.print(f"  {escape(line)}", soft_wrap=True)
    console.print(f"pg_ident.conf: {len(adoption.ident_block)} lines of the map 'pgherd'")
    console.print(
        f"roles: {adoption.replication_user} with REPLICATION LOGIN (created or updated); "
        f"{adoption.superuser} gets the passfile's password only if it has none"
    )
    if adoption.running_pid is None:
        console.print("restart: no (it is stopped; the agent starts it with these settings)")
    elif adoption.restart:
        console.print(f"restart: yes, for {', '.join(adoption.restart)}")
    else:
        console.print("restart: no (the changes take effect on reload)")
