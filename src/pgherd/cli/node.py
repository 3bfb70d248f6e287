"""pgherd node start|stop|restart|rejoin, through the agents."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pgherd import config as config_mod
from pgherd.cli import operations
from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import EXIT_ERROR, console, print_json
from pgherd.clients.agent import AgentClient
from pgherd.model.status import NodeStatus

app = typer.Typer(help="Start, stop, restart a node's PostgreSQL; rejoin it as a standby.")
app.command()(operations.rejoin)


def _client(config_file: ConfigOpt, node: str) -> AgentClient:
    config = load_config(config_file)
    return AgentClient(config.node(node), config_mod.read_token(config))


def _report(status: NodeStatus, as_json: bool) -> None:
    if as_json:
        print_json(status.model_dump(mode="json"))
    else:
        console.print(f"{status.name}: PostgreSQL {status.state} ({status.role})")


@app.command()
def start(node: NodeArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Start NODE's PostgreSQL and keep it running."""
    _report(_client(config_file, node).start_postgres(), as_json)


@app.command()
def stop(
    node: NodeArg,
    mode: Annotated[
        str, typer.Option("--mode", help="smart, fast (default) or immediate")
    ] = "fast",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop NODE's PostgreSQL; the agent keeps it stopped until told otherwise."""
    if mode not in ("smart", "fast", "immediate"):
        raise typer.BadParameter("use smart, fast or immediate", param_hint="--mode")
    _report(_client(config_file, node).stop_postgres(mode), as_json)


@app.command()
def restart(node: NodeArg, config_file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Restart NODE's PostgreSQL (fast shutdown, then start)."""
    _report(_client(config_file, node).restart_postgres(), as_json)


@app.command()
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
    from pgherd.errors import InvalidInput
    from pgherd.pg.local_node import LocalNode
    from pgherd.physical import adopt as adopt_mod

    if not dry_run:
        raise InvalidInput(
            f"{node}'s agent adopts its PostgreSQL when it starts; this command only shows "
            "what that would change",
            f"pass --dry-run, then start the agent (pgherd agent run --node {node})",
        )
    config = load_config(config_file)
    adoption = adopt_mod.inspect(LocalNode.open(config, node))
    if as_json:
        print_json(adoption.as_json())
    else:
        _print_adoption(adoption)
    if adoption.problems:
        raise typer.Exit(EXIT_ERROR)


def _print_adoption(adoption: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

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
