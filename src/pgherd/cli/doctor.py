"""pgherd doctor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pgherd.api.client import AgentClient, fan_out, statuses
from pgherd.cli.options import ConfigOpt, JsonOpt, load_config
from pgherd.cli.output import EXIT_DEGRADED, console, print_json
from pgherd.config import NodeConfig
from pgherd.errors import AgentError, AgentUnreachable

if TYPE_CHECKING:
    from pgherd.model.doctor import Finding, NodeFacts
from pgherd.model.status import Role


def doctor(
    node: Annotated[str | None, typer.Argument(help="check only this node")] = None,
    config_file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Preflight checks, each finding with a fix. Exits 3 when an error is found."""
    from pgherd.model import doctor as checks
    from pgherd.model import slots
    from pgherd.model.doctor import Severity

    config = load_config(config_file)
    nodes = [config.node(node)] if node else list(config.nodes)
    all_statuses = statuses(config.nodes)

    def facts_of(n: NodeConfig) -> NodeFacts | None:
        try:
            return AgentClient(n).facts()
        except (AgentUnreachable, AgentError):
            return None

    def node_at(host: str | None, port: int | None) -> str | None:
        found = config.node_at(host, port)
        return found.name if found else None

    findings: list[Finding] = [
        f
        for f in checks.check_cluster(all_statuses, config.independent)
        + slots.findings(all_statuses, node_at)
        if node is None or f.node in (None, node)
    ]
    by_name = {s.name: s for s in all_statuses}
    for facts in fan_out(nodes, facts_of):
        if facts is not None:
            standby = by_name[facts.name].role is Role.STANDBY
            findings.extend(checks.check_node(facts, len(config.nodes), standby))
    findings = checks.ordered(findings)
    if as_json:
        print_json([f.__dict__ for f in findings])
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
