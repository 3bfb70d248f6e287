"""Every CLI command run with hostile names: no traceback, a one-line error, nothing changed.

The commands are found from the CLI itself (every leaf of every group), so a new command
is covered the day it is added. Each text argument or option (a node, a mesh, a label,
a database…) gets the hostile value, numbers a plausible one. No agent answers (the
config's ports are closed), which is where a command that validated nothing would go on
and fail late, or in a traceback.

The quick commands (pgherd.cli.quick) run twice: through the Typer CLI and through the
program's dispatcher, which takes their quick path whenever the line parses.
"""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from pgherd import config as config_mod
from pgherd.cli import entry
from pgherd.cli.main import COMMANDS, load_command, main
from pgherd.cli.quick import args as quick_args
from pgherd.lab import layout

HOSTILE = [
    pytest.param("../x", id="dotdot"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("a/b?c=d#e", id="url-parts"),
    pytest.param("", id="empty"),
    pytest.param(" ", id="blank"),
    pytest.param("x" * 300, id="long"),
    pytest.param("nöde", id="non-ascii"),
    pytest.param("a\nb", id="newline"),
    pytest.param("'; drop table t; --", id="sql"),
    pytest.param("$(id)`id`", id="shell"),
    pytest.param("%s%n{0}", id="format"),
    pytest.param("[bold]x[/]", id="rich-markup"),
]

# Commands that start long-lived servers or build clusters: their name arguments are
# checked through the same functions, tested below on their own.
SKIPPED = {
    ("lab", "up"),  # --dir is a path it creates; covered by tests/unit/test_lab_layout.py
    ("console",),  # serves until stopped
}


def leaves() -> Iterator[tuple[tuple[str, ...], Any]]:
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, (*path, name))
        else:
            yield path, command

    for name in COMMANDS:
        yield from walk(load_command(name), (name,))


def _is(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return isinstance(annotation, types.UnionType) and kind in get_args(annotation)


def argv_for(path: tuple[str, ...], command: Any, hostile: str, scratch: Path) -> list[str]:
    argv = list(path)
    for param in command.params:
        if param.name in ("config_file", "as_json") or getattr(param, "is_flag", False):
            continue
        if param.name in ("install_completion", "show_completion"):
            continue
        annotation = param.type_descriptor.annotation
        if _is(annotation, str):
            value = hostile
        elif not param.required:
            continue
        elif _is(annotation, int) or _is(annotation, float):
            value = "1"
        elif _is(annotation, Path):
            value = str(scratch / "p")
        else:
            value = "x"
        if param.param_type_name == "argument":
            argv.append(value)
        else:
            argv += [param.opts[-1], value]
    return argv


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    lab = layout.lab_config(
        base / "lab", layout.LabShape(2, 29_440, "postgres", None, archive=True)
    )
    path = base / "pgherd.yaml"
    path.write_text(config_mod.dump(lab))
    lab.api_token_file.parent.mkdir(parents=True)
    lab.api_token_file.write_text("t0ken\n")
    return path


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(root.rglob("*")):
        digest.update(str(item).encode())
        if item.is_file():
            digest.update(item.read_bytes())
    return digest.hexdigest()


def takes_text(command: Any) -> bool:
    return any(
        _is(p.type_descriptor.annotation, str)
        for p in command.params
        if p.name not in ("config_file", "as_json")
    )


TESTED = [
    (path, command)
    for path, command in leaves()
    if path not in SKIPPED and path[:1] not in SKIPPED and takes_text(command)
]
QUICK = {command.words for command in quick_args.COMMANDS}
COMMAND_LIST = [pytest.param(path, "typer", id=" ".join(path)) for path, _ in TESTED] + [
    pytest.param(path, "quick", id=f"{' '.join(path)} (quick path)")
    for path, _ in TESTED
    if path in QUICK
]


def test_every_quick_command_with_a_text_argument_is_run_on_its_quick_path() -> None:
    commands = dict(leaves())
    with_text = {words for words in QUICK if takes_text(commands[words])}
    assert {p.values[0] for p in COMMAND_LIST if p.values[1] == "quick"} == with_text
    assert len(with_text) >= 3  # connstr, node check, standby clone


@pytest.mark.parametrize(("path", "way"), COMMAND_LIST)
def test_hostile_names_get_a_one_line_error(
    path: tuple[str, ...],
    way: str,
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command = dict(leaves())[path]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGHERD_CONFIG", str(config_file))
    monkeypatch.setenv("PGHERD_CACHE_DIR", str(tmp_path / "cache"))  # not the user's cache
    monkeypatch.delenv("PGHERD_API_TOKEN", raising=False)
    monkeypatch.setenv("COLUMNS", "400")
    before = _digest(config_file.parent)
    quick_lines = 0
    for param in HOSTILE:
        hostile = str(param.values[0])
        argv = argv_for(path, command, hostile, tmp_path)
        monkeypatch.setattr(sys, "argv", ["pgherd", *argv])
        if way == "quick":
            quick_lines += quick_args.parse(argv) is not None
        with pytest.raises(SystemExit) as exited:
            (entry.main if way == "quick" else main)()
        out, err = capsys.readouterr()
        shown = f"pgherd {argv!r}\nstdout: {out}\nstderr: {err}"
        assert exited.value.code not in (0, None), shown
        assert "Traceback" not in err + out, shown
        if exited.value.code == 2:  # a usage error, from the command-line parser
            assert "Usage:" in err, shown
            continue
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(("error:", "pgherd wal")), shown
    assert _digest(config_file.parent) == before  # nothing changed
    if way == "quick":  # each line took the quick path (none was left to Typer)
        assert quick_lines == len(HOSTILE)


WAYS = ["typer", "quick"]


def _run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    way: str = "typer",
) -> tuple[int, str]:
    """``pgherd ARGV`` through the Typer CLI, or (``way="quick"``) through the program's
    dispatcher, checked to take the quick path."""
    monkeypatch.setattr(sys, "argv", ["pgherd", *argv])
    if way == "quick":
        assert quick_args.parse(argv) is not None, f"{argv} left the quick path"
    with pytest.raises(SystemExit) as exited:
        (entry.main if way == "quick" else main)()
    _, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), err


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("name", ["../x", "Node", "a-b", "x" * 64, ""])
def test_clone_refuses_a_new_node_name_that_is_not_one(
    name: str,
    way: str,
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = config_file.read_text()
    monkeypatch.setenv("PGHERD_CACHE_DIR", str(tmp_path / "cache"))  # not the user's cache
    code, err = _run(
        monkeypatch,
        capsys,
        *("standby", "clone", "--upstream", "node1", "--node", name, "-c", str(config_file)),
        *("--data-dir", str(tmp_path / "d"), "--port", "29999", "--api-port", "30999"),
        way=way,
    )
    assert code == 1
    assert err.startswith("error: --node") and "is not a valid node name" in err
    assert config_file.read_text() == before


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_a_blank_token_in_the_environment_is_refused(
    value: str,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PGHERD_API_TOKEN", value)
    code, err = _run(monkeypatch, capsys, "node", "stop", "node1", "-c", str(config_file))
    assert code == 1
    assert err.startswith("error: PGHERD_API_TOKEN is set but blank")


@pytest.mark.parametrize("way", WAYS)
def test_a_blank_token_is_refused_by_reads_that_need_one(
    way: str,
    config_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under ``api.auth_reads`` a read sends a credential: with no viewer token to read,
    the operator's, and a blank ``$PGHERD_API_TOKEN`` is refused before any call."""
    raw = config_mod.load(config_file).model_dump(mode="json") | {"api": {"auth_reads": True}}
    path = tmp_path / "pgherd.yaml"
    path.write_text(config_mod.dump(config_mod.parse(raw)))
    monkeypatch.setenv("PGHERD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PGHERD_API_TOKEN", " ")
    code, err = _run(monkeypatch, capsys, "cluster", "show", "-c", str(path), way=way)
    assert code == 1
    assert err.startswith("error: PGHERD_API_TOKEN is set but blank")
    assert err.count("\n") == 1
