"""Which command lines the quick path takes, and their options, parsed as Click would.

Each :class:`Command` lists the words that name it and its options exactly as its Typer
command declares them (tests/unit/test_quick_args.py compares the two, so they cannot
drift). :func:`parse` accepts only what it fully understands — every option known, every
value of the right type and range, every required one present — and returns None for
anything else: ``--help``, a typo, a missing value. The full CLI then parses the same line
and answers as it always did (its help, its usage errors, its exit code 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["flag", "text", "path", "int", "float"]
Value = bool | str | int | float | Path | None


@dataclass(frozen=True)
class Option:
    """One option of a quick command, as its Typer command declares it."""

    names: tuple[str, ...]  # as typed: ("-c", "--config")
    dest: str  # the run() parameter it fills
    kind: Kind
    default: Value = None
    required: bool = False
    minimum: float | None = None  # Click's IntRange/FloatRange(min=…, max=…)
    maximum: float | None = None


@dataclass(frozen=True)
class Command:
    """A quick command: the words that name it, the module that runs it, its arguments."""

    words: tuple[str, ...]  # ("cluster", "show")
    module: str  # the module whose run(**values) does the work
    arguments: tuple[str, ...] = ()  # positional, all required, in order
    options: tuple[Option, ...] = ()
    # A look that writes nothing (but the config cache, closed before it returns) and
    # exits at once: pgherd.cli.entry.program runs it without the cyclic collector and
    # the interpreter's teardown.
    read_only: bool = False


CONFIG = Option(("-c", "--config"), "config_file", "path")
JSON = Option(("--json",), "as_json", "flag", default=False)
REPO = Option(("--repo",), "repo", "text")

COMMANDS: tuple[Command, ...] = (
    Command(("cluster", "show"), "pgherd.cli.quick.show", options=(CONFIG, JSON), read_only=True),
    Command(
        ("cluster", "events"),
        "pgherd.cli.quick.events",
        read_only=True,
        options=(
            Option(("--limit",), "limit", "int", default=50, minimum=1, maximum=10_000),
            Option(("--audit",), "audit", "flag", default=False),
            CONFIG,
            JSON,
        ),
    ),
    Command(
        ("standby", "clone"),
        "pgherd.cli.quick.clone",
        options=(
            Option(("--upstream",), "upstream", "text", required=True),
            Option(("--node",), "node", "text", required=True),
            Option(("--data-dir",), "data_dir", "path"),
            Option(("--force",), "force", "flag", default=False),
            Option(("--port",), "port", "int"),
            Option(("--api-port",), "api_port", "int"),
            Option(("--host",), "host", "text", default="127.0.0.1"),
            CONFIG,
            JSON,
        ),
    ),
    Command(
        ("node", "check"),
        "pgherd.cli.quick.check",
        read_only=True,
        arguments=("node",),
        options=(
            Option(("--nagios",), "nagios", "flag", default=False),
            Option(("--warning-lag",), "warning_lag", "text", default="16MB"),
            Option(("--critical-lag",), "critical_lag", "text", default="256MB"),
            Option(("--warning-slot",), "warning_slot", "text", default="1GB"),
            Option(("--critical-slot",), "critical_slot", "text", default="8GB"),
            CONFIG,
            JSON,
        ),
    ),
    Command(
        ("backup", "create"),
        "pgherd.cli.quick.backup_create",
        options=(
            Option(("--node",), "node", "text"),
            Option(("--type",), "kind", "text", default="full"),
            Option(("--from-standby",), "from_standby", "flag", default=False),
            Option(("--format",), "fmt", "text", default="bundles"),
            REPO,
            Option(("--checksum",), "checksum", "flag", default=False),
            CONFIG,
            JSON,
        ),
    ),
    Command(
        ("backup", "info"),
        "pgherd.cli.quick.backup_info",
        options=(CONFIG, JSON),
    ),
    Command(
        ("archive", "check"),
        "pgherd.cli.quick.archive_check",
        options=(Option(("--timeout",), "timeout", "float", default=60), CONFIG, JSON),
    ),
    Command(
        ("restore",),
        "pgherd.cli.quick.restore",
        options=(
            Option(("--into",), "into", "path", required=True),
            Option(("--port",), "port", "int", required=True),
            Option(("--target-time",), "target_time", "text"),
            Option(("--target-name",), "target_name", "text"),
            Option(("--target-lsn",), "target_lsn", "text"),
            Option(("--target-xid",), "target_xid", "int"),
            Option(("--latest",), "latest", "flag", default=False),
            Option(("--target-action",), "target_action", "text"),
            Option(("--timeline",), "timeline", "int"),
            Option(("--timeout",), "timeout", "float", default=1800),
            Option(("--delta",), "delta", "flag", default=False),
            REPO,
            Option(("--checksum",), "checksum", "flag", default=False),
            CONFIG,
            JSON,
        ),
    ),
    Command(
        ("connstr",),
        "pgherd.cli.quick.connstr",
        read_only=True,
        arguments=("node",),
        options=(Option(("--replication",), "replication", "flag", default=False), CONFIG),
    ),
)


@dataclass(frozen=True)
class Parsed:
    """A command line the quick path takes: its command and the values for ``run()``."""

    command: Command
    values: dict[str, Value]


def parse(argv: Sequence[str]) -> Parsed | None:
    """The quick command ``argv`` names, with its values; None to leave it to Typer."""
    for command in COMMANDS:
        n = len(command.words)
        if tuple(argv[:n]) == command.words:
            values = parse_options(command, argv[n:])
            return None if values is None else Parsed(command, values)
    return None


def parse_options(command: Command, argv: Sequence[str]) -> dict[str, Value] | None:
    by_name = {name: option for option in command.options for name in option.names}
    values: dict[str, Value] = {o.dest: o.default for o in command.options}
    given: set[str] = set()
    positional: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positional += rest
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, attached = _split(arg, by_name)
        option = by_name.get(name)
        if option is None:
            return None  # --help, a typo, an option of the full CLI only
        if option.kind == "flag":
            if attached is not None:
                return None
            values[option.dest] = True
        else:
            if attached is None:
                if not rest:
                    return None
                attached = rest.pop(0)
            converted = _convert(option, attached)
            if converted is None:
                return None
            values[option.dest] = converted
        given.add(option.dest)
    if len(positional) != len(command.arguments):
        return None
    if any(o.required and o.dest not in given for o in command.options):
        return None
    values.update(zip(command.arguments, positional, strict=True))
    return values


def _split(arg: str, known: dict[str, Option]) -> tuple[str, str | None]:
    """``--name=value`` and ``-cvalue`` as Click reads them."""
    if arg.startswith("--"):
        name, sep, value = arg.partition("=")
        return name, value if sep else None
    if len(arg) > 2 and arg[:2] in known:
        return arg[:2], arg[2:]
    return arg, None


def _convert(option: Option, text: str) -> Value:
    try:
        if option.kind == "text":
            return text
        if option.kind == "path":
            return Path(text) if text else None
        number: int | float = int(text) if option.kind == "int" else float(text)
    except ValueError:
        return None
    if math.isnan(number) or (option.minimum is not None and number < option.minimum):
        return None
    if option.maximum is not None and number > option.maximum:
        return None
    return number
