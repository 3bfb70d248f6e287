"""pgherd ddl NODE "SQL"."""

from __future__ import annotations

from typing import Annotated

import typer

from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import EXIT_ERROR, console, error, print_json

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).


def ddl(
    node: NodeArg,
    statement: Annotated[str, typer.Argument(help="the schema change (SQL)", show_default=False)],
    dbname: Annotated[str, typer.Option("--dbname", help="database on the publisher")] = "postgres",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only say what it touches, where and in which order")
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply a schema change on publisher NODE and on every subscriber of the tables it
    touches, in an order that keeps replication running; stop at the first failure."""
    from pgherd import config as config_mod
    from pgherd.logical import rollout
    from pgherd.model.ddl import StepOutcome

    config = load_config(config_file)
    token = config_mod.read_token(config)
    if dry_run:
        effect, targets, how, reason = rollout.plan(config, node, statement, dbname, token)
        if as_json:
            print_json(
                {
                    "effect": effect,
                    "order": str(how),
                    "reason": reason,
                    "subscribers": [t.model_dump(mode="json") for t in targets],
                }
            )
            return
        touched = ", ".join(f"{t.schema_name}.{t.name}" for t in effect.touched) or "no table"
        console.print(f"touches: {touched}", soft_wrap=True)
        subs = ", ".join(t.node for t in targets) or "none"
        console.print(f"nodes to change: {subs}; order: {how} ({reason})", soft_wrap=True)
        return

    def show(step: StepOutcome) -> None:
        if not as_json:
            mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
            console.print(f"{mark} {step.node} ({step.role}): {step.message}", soft_wrap=True)

    report = rollout.run(config, node, statement, dbname, token, show)
    if as_json:
        print_json(report)
    elif report.ok:
        console.print(f"done in this order: {report.order} ({report.reason})", soft_wrap=True)
    if not report.ok:
        failed = next(s for s in report.steps if not s.ok)
        applied = [s.node for s in report.steps if s.ok]
        error(
            f"ddl stopped at {failed.node}: {failed.message}; applied on: "
            f"{', '.join(applied) or 'nowhere'}; not run on: {', '.join(report.not_run) or '-'} "
            "— fix the cause there, then run the statement on the remaining nodes"
        )
        raise typer.Exit(EXIT_ERROR)
