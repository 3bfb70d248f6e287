"""``pgherd node check NODE [--nagios]``: one node's health for monitoring systems, run
every minute or so on every node. Exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the Nagios
plugins' convention); a check that cannot run is UNKNOWN, not an error."""

from __future__ import annotations

import sys
from pathlib import Path

from pgherd.cli.output import print_json
from pgherd.cli.quick.config import load_config
from pgherd.cli.text import Printer, Span
from pgherd.errors import PgherdError
from pgherd.model import nagios as model
from pgherd.model.size import parse_size
from pgherd.ops.node_check import check_node

STATE_STYLE = {0: "green", 1: "yellow"}


def run(
    node: str,
    nagios: bool,
    warning_lag: str,
    critical_lag: str,
    warning_slot: str,
    critical_slot: str,
    config_file: Path | None,
    as_json: bool,
) -> int:
    try:
        config = load_config(config_file)
        config.node(node)
        limits = model.Thresholds(
            lag_bytes=(
                parse_size(warning_lag, "--warning-lag"),
                parse_size(critical_lag, "--critical-lag"),
            ),
            slot_bytes=(
                parse_size(warning_slot, "--warning-slot"),
                parse_size(critical_slot, "--critical-slot"),
            ),
        )
        result = check_node(config, node, limits)
    except PgherdError as exc:
        # A check that cannot run is UNKNOWN (3) to a monitoring system, not an error (1).
        if nagios:
            sys.stdout.write(f"PGHERD UNKNOWN - {exc.one_line()}\n")
        else:
            sys.stderr.write(f"error: {exc.one_line()}\n")
        return int(model.State.UNKNOWN)
    if as_json:
        print_json(result.as_json())
    elif nagios:
        sys.stdout.write(result.line() + "\n")
    else:
        out = Printer()
        style = STATE_STYLE.get(int(result.state), "red")
        out.line(Span(result.state.name, style), f" {result.summary}")
        for item in result.perf:
            out.line(f"  {item.render()}")
    return int(result.state)
