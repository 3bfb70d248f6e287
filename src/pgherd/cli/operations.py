"""pgherd standby switchover|promote|follow, pgherd node rejoin, pgherd cluster events.

Thin: parse options, run the orchestration in ``pgherd.ops`` (shared with the console),
print its steps as they finish and its result, as a table or as JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pgherd import config as config_mod
from pgherd.cli.options import ConfigOpt, JsonOpt, NodeArg, load_config
from pgherd.cli.output import console, print_json
from pgherd.errors import InvalidInput
from pgherd.model.readable import human_seconds
from pgherd.model.size import parse_size
from pgherd.model.switchover import DEFAULT_TIMEOUT

if TYPE_CHECKING:  # the orchestration is imported when a command runs, not at start-up
    from pgherd.ops.context import Operation, Step

# What a command runs is imported inside it, when it runs: start-up speed (cli/main.py).


class PrintedSteps:
    """Each step as a line when it finishes: mark, what, detail, time."""

    def step_done(self, step: Step) -> None:
        mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
        detail = f" — {step.detail}" if step.detail else ""
        console.print(
            f"{mark} {step.name}{detail} [dim]({human_seconds(step.seconds)})[/]", soft_wrap=True
        )


def _operation(config_file: ConfigOpt, as_json: bool) -> Operation:
    from pgherd.ops.context import Operation, QuietSteps
    from pgherd.ops.events import event_log

    config = load_config(config_file)
    token = config_mod.read_token(config)
    return Operation(
        config=config,
        token=token,
        events=event_log(config, token),
        reporter=QuietSteps() if as_json else PrintedSteps(),
    )


TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="seconds the target may take to replay the old primary's last WAL",
        min=0.1,
    ),
]


def switchover(
    to: Annotated[str, typer.Option("--to", help="the standby that becomes the primary")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the checks and the plan; change nothing")
    ] = False,
    siblings_follow: Annotated[
        bool,
        typer.Option(
            "--siblings-follow", help="point the old primary's other standbys at the new one"
        ),
    ] = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    max_lag: Annotated[
        str,
        typer.Option("--max-lag", help="refuse when the target's replay is further behind"),
    ] = "16MB",
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand the primary role to a standby without losing a transaction (clean shutdown,
    wait for the standby to replay it, promote, old primary follows)."""
    from pgherd.ops import switchover as ops

    limit = parse_size(max_lag, "--max-lag")
    op = _operation(config_file, as_json)
    op.config.node(to)
    if dry_run and not as_json:
        console.print(f"dry run: switchover to {to}")
    try:
        result = ops.switchover(
            op,
            to,
            dry_run=dry_run,
            siblings_follow=siblings_follow,
            timeout=timeout,
            max_lag=limit,
        )
    except (ops.SwitchoverAborted, ops.SwitchoverFailed) as exc:
        if as_json:
            print_json(exc.result)
        raise
    if as_json:
        print_json(result)
    elif dry_run:
        _print_dry_run(result)
    else:
        console.print(
            f"switched over in {human_seconds(result.seconds)}: {result.reason}", soft_wrap=True
        )
    if dry_run and result.outcome != "succeeded":
        raise InvalidInput(result.reason, next((c.hint for c in result.checks if c.blocks), ""))


def _print_dry_run(result: object) -> None:
    from pgherd.ops.switchover import SwitchoverResult

    assert isinstance(result, SwitchoverResult)
    console.print("checks:")
    for check in result.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"  {mark} {check.name}: {check.reason}", soft_wrap=True)
    console.print("plan:")
    for number, text in enumerate(result.plan, start=1):
        console.print(f"  {number}. {text}", soft_wrap=True)
    if result.outcome == "succeeded":
        console.print("every check passed; nothing was changed (dry run)")


def promote(
    node: NodeArg,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="you state that the old primary is gone (its agent does not answer) or "
            "accept losing WAL only another standby has",
        ),
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote NODE to primary; refused while a primary runs and answers."""
    from pgherd.ops import promote as ops

    op = _operation(config_file, as_json)
    op.config.node(node)
    outcome = ops.promote(op, node, force=force)
    if as_json:
        print_json(outcome)
        return
    console.print(
        f"{node} is the primary now, on timeline {outcome.timeline_after} "
        f"(was {outcome.timeline_before}); other nodes can follow it: "
        f"pgherd standby follow NODE, pgherd node rejoin OLD_PRIMARY",
        soft_wrap=True,
    )


def follow(
    node: NodeArg,
    upstream: Annotated[
        str | None,
        typer.Option("--upstream", help="stream from this node (default: the primary)"),
    ] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point standby NODE at the primary, or at another standby (cascading)."""
    from pgherd.ops import follow as ops

    op = _operation(config_file, as_json)
    op.config.node(node)
    if upstream is not None:
        op.config.node(upstream)
    outcome = ops.follow(op, node, upstream)
    if as_json:
        print_json(outcome)
    else:
        console.print(outcome.reason, soft_wrap=True)


def rejoin(
    node: NodeArg,
    force_clone: Annotated[
        bool,
        typer.Option("--force-clone", help="copy the node anew instead of rewinding it"),
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring NODE (an old primary, a failed or diverged node) back as a standby of the
    primary: pg_rewind when it diverged, a new clone only when rewind cannot help."""
    from pgherd.ops import rejoin as ops

    op = _operation(config_file, as_json)
    op.config.node(node)
    outcome = ops.rejoin(op, node, force_clone=force_clone)
    if as_json:
        print_json(outcome)
        return
    if outcome.fallback:
        console.print(f"[yellow]![/] {outcome.fallback}", soft_wrap=True)
    console.print(outcome.reason, soft_wrap=True)


def events(
    limit: Annotated[
        int, typer.Option("--limit", help="how many (the latest)", min=1, max=10_000)
    ] = 50,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit",
            help="the audit trail instead: every acting API call and console login, who "
            "made it, from where, how it ended",
        ),
    ] = False,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What pgherd did to the cluster: operation, node, who asked, when, outcome, why."""
    # The work is the quick command's (it runs without Typer when called directly).
    from pgherd.cli.quick import events as quick_events

    code = quick_events.run(limit, audit, config_file, as_json)
    if code:
        raise typer.Exit(code)
