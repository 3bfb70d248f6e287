"""pgherd doctor."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).


def doctor(
    node: Annotated[str | None, typer.Argument(help="check only this node")] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Preflight checks, each finding with a fix. Exits 3 when an error is found."""
    from pgherd.model.doctor import Severity
    from pgherd.ops.doctor import findings as run_checks

    config = load_config(config_file)
    nodes = [config.node(node)] if node is not None else list(config.nodes)
    findings = run_checks(config, node)
    if as_json:
        print_json(findings)
    elif not findings:
        console.print(f"[green]✓[/] no problems found on {', '.join(n.name for n in nodes)}")
    else:
        table = Table("Severity", "Node", "Check", "Finding", "Fix")
        for f in findings:
            colour = "red" if f.severity is Severity.ERROR else "yellow"
            table.add_row(f"[{colour}]{f.severity}[/]", f.node or "-", f.check, f.message, f.fix)
        console.print(table)
    if any(f.severity is Severity.ERROR for f in findings):
        raise typer.Exit(EXIT_DEGRADED)
