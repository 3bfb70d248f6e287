"""The quick path's option parsing: the same options as the Typer commands, parsed as
Click parses them, and anything doubtful left to the full CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgherd.cli.main import load_command
from pgherd.cli.quick import args
from pgherd.cli.quick.args import COMMANDS, Command, Option

KINDS: dict[type, str] = {bool: "flag", str: "text", Path: "path", int: "int", float: "float"}


def typer_params(words: tuple[str, ...]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The Typer command's arguments (in order) and options, as the quick specs state them."""
    command: Any = load_command(words[0])
    for word in words[1:]:
        command = command.commands[word]
    arguments, options = [], {}
    for param in command.params:
        if not param.expose_value:  # --install-completion and the like: Typer's own
            continue
        if type(param).__name__ == "TyperArgument":
            arguments.append(param.name)
            continue
        options[param.name] = {
            "names": tuple(param.opts),
            "kind": KINDS[param.type_descriptor.annotation],
            "default": param.default,
            "required": param.required,
            "minimum": param.min,
            "maximum": param.max,
            "no secondary names": not param.secondary_opts,
            "single": not param.multiple and param.nargs == 1 and param.envvar is None,
        }
    return arguments, options


def spec(option: Option) -> dict[str, Any]:
    return {
        "names": option.names,
        "kind": option.kind,
        "default": option.default,
        "required": option.required,
        "minimum": option.minimum,
        "maximum": option.maximum,
        "no secondary names": True,
        "single": True,
    }


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.words))
def test_quick_commands_take_exactly_the_typer_commands_options(command: Command) -> None:
    arguments, options = typer_params(command.words)
    assert list(command.arguments) == arguments
    assert {o.dest: spec(o) for o in command.options} == options


SHOW = ("cluster", "show")


@pytest.mark.parametrize(
    ("argv", "values"),
    [
        (["cluster", "show"], {"config_file": None, "as_json": False}),
        (["cluster", "show", "--json"], {"config_file": None, "as_json": True}),
        (["cluster", "show", "-c", "a.yaml"], {"config_file": Path("a.yaml"), "as_json": False}),
        (["cluster", "show", "-ca.yaml"], {"config_file": Path("a.yaml"), "as_json": False}),
        (["cluster", "show", "--config=a.yaml"], {"config_file": Path("a.yaml"), "as_json": False}),
        (  # the last one given counts, as in Click
            ["cluster", "show", "-c", "a.yaml", "--json", "--config", "b.yaml"],
            {"config_file": Path("b.yaml"), "as_json": True},
        ),
        (["connstr", "node1"], {"node": "node1", "replication": False, "config_file": None}),
        (  # options before the argument, and a value that looks like an option
            ["connstr", "--replication", "-c", "-x.yaml", "node2"],
            {"node": "node2", "replication": True, "config_file": Path("-x.yaml")},
        ),
        (["connstr", "--", "-odd"], {"node": "-odd", "replication": False, "config_file": None}),
        (
            ["backup", "create", "--type", "incremental", "--checksum", "--json"],
            {"kind": "incremental", "checksum": True, "as_json": True, "fmt": "bundles"},
        ),
        (  # --type is checked by the command, as the Typer one does (one line, exit 1)
            ["backup", "create", "--type=weekly", "--node", "node2", "--from-standby"],
            {"kind": "weekly", "node": "node2", "from_standby": True, "repo": None},
        ),
        (
            ["restore", "--into", "/x", "--port", "5999", "--latest", "--delta", "--json"],
            {"into": Path("/x"), "port": 5999, "latest": True, "delta": True, "timeout": 1800},
        ),
        (
            ["restore", "--port=6000", "--into=/x", "--target-xid", "12", "--timeout", "2.5"],
            {"port": 6000, "target_xid": 12, "timeout": 2.5, "latest": False, "checksum": False},
        ),
        (
            [
                "restore",
                "--into",
                "/x",
                "--port",
                "1",
                "--target-lsn",
                "0/5000060",
                "--target-action",
                "promote",
                "--timeline",
                "2",
                "--repo",
                "far",
                "-c",
                "p.yaml",
            ],
            {
                "target_lsn": "0/5000060",
                "target_action": "promote",
                "timeline": 2,
                "repo": "far",
                "config_file": Path("p.yaml"),
                "target_time": None,
            },
        ),
        (["backup", "info", "--json"], {"config_file": None, "as_json": True}),
        (["archive", "check", "--timeout=5"], {"timeout": 5.0, "as_json": False}),
    ],
)
def test_what_the_quick_path_takes(argv: list[str], values: dict[str, Any]) -> None:
    parsed = args.parse(argv)
    assert parsed is not None
    assert {k: v for k, v in parsed.values.items() if k in values} == values
    # Click reads the same line the same way.
    words = len(parsed.command.words)
    command: Any = load_command(argv[0])
    for word in argv[1:words]:
        command = command.commands[word]
    context = command.make_context(" ".join(argv[:words]), list(argv[words:]))
    assert {k: v for k, v in context.params.items() if k in values} == values


@pytest.mark.parametrize(
    "argv",
    [
        ["cluster", "show", "--help"],
        ["cluster", "show", "-h"],
        ["cluster", "show", "--jsn"],  # a typo: Click says so
        ["cluster", "show", "--json=yes"],  # a flag takes no value
        ["cluster", "show", "-c"],  # a value is missing
        ["cluster", "show", "-c", ""],  # Click decides what an empty path means
        ["cluster", "show", "extra"],
        ["cluster"],
        ["cluster", "events", "--limit", "0"],  # Click says what the minimum is
        ["connstr"],  # the node is missing
        ["connstr", "a", "b"],
        ["connstr", "node1", "--install-completion"],
        ["backup", "create", "--help"],
        ["backup", "create", "--typ", "full"],  # a typo
        ["backup", "create", "--type"],  # a value is missing
        ["backup", "list"],  # not a quick command
        ["restore", "--into", "/x"],  # --port is required
        ["restore", "--port", "5999"],  # --into is required
        ["restore", "--into", "", "--port", "5999"],
        ["restore", "--into", "/x", "--port", "59x9", "--latest"],
        ["restore", "--into", "/x", "--port", "5999", "--target-xid", "1.5"],
        ["restore", "--into", "/x", "--port", "5999", "--timeout", "nan"],
        ["restore", "--into", "/x", "--port", "5999", "--latest=yes"],
        ["restore", "/x", "--port", "5999"],  # no positional argument
        ["restore-point", "create", "p1"],
        ["backup", "info", "--help"],
        ["archive", "check", "--timeout", "x"],
        ["lab", "up", "--dir", "x"],
        [],
        ["--help"],
    ],
)
def test_what_the_quick_path_leaves_to_the_full_cli(argv: list[str]) -> None:
    assert args.parse(argv) is None


def test_numbers_out_of_range_or_malformed_are_left_to_click() -> None:
    command = Command(
        ("x",),
        "m",
        options=(
            Option(("--limit",), "limit", "int", default=50, minimum=1),
            Option(("--wait",), "wait", "float", default=1.0),
        ),
    )
    assert args.parse_options(command, ["--limit", "3", "--wait", "0.5"]) == {
        "limit": 3,
        "wait": 0.5,
    }
    for bad in (["--limit", "0"], ["--limit", "x"], ["--limit", "1.5"], ["--wait", "nan"]):
        assert args.parse_options(command, bad) is None, bad
