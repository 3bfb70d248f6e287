"""The classic replication guide's chapters as pgherd pages that run. Pure.

A chapter is a Markdown page (``docs/guide/NN-name.md``). Its fenced blocks marked
``sh run`` hold commands (lines starting with ``$ ``), each followed by the output it
shows; the prose before a block is its narration (``pgherd lab tour`` prints it). The
suite runs every command (tests/docs/test_guide.py) and checks the shown output's lines,
in order, against what the command printed:

- runs of spaces count as one, and ``…`` stands for any text (an LSN, a time, a size);
- a shown line ``[exit N]`` says the command exits with N (default 0);
- the output a page shows is its key lines; the command may print more around them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^```(\S*)(.*)$")
_EXIT = re.compile(r"^\[exit (\d+)\]$")
ELLIPSIS = "…"


@dataclass(frozen=True)
class Step:
    command: str
    shown: tuple[str, ...] = ()  # the output lines the page shows (key lines)
    exit_code: int = 0


@dataclass(frozen=True)
class Block:
    narration: str  # the prose before the block
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Chapter:
    name: str  # the file's stem without its number: "streaming"
    number: int
    title: str
    blocks: tuple[Block, ...]

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(s for b in self.blocks for s in b.steps)


def chapter_name(stem: str) -> tuple[int, str]:
    """``01-streaming`` → (1, "streaming")."""
    number, _, name = stem.partition("-")
    if not number.isdigit() or not name:
        raise ValueError(f"a chapter file is named NN-name.md, not {stem}.md")
    return int(number), name


def parse(text: str, stem: str) -> Chapter:
    number, name = chapter_name(stem)
    title = ""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is None:
            if line.startswith("# ") and not title:
                title = line[2:].strip()
            else:
                prose.append(line)
            i += 1
            continue
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if fence.group(1) == "sh" and fence.group(2).split()[:1] == ["run"]:
            blocks.append(Block(_narration(prose), _steps(body)))
            prose = []
        else:
            prose += [line, *body, "```"]
    if not title:
        raise ValueError(f"{stem}.md has no '# Title' line")
    return Chapter(name, number, title, tuple(blocks))


def _narration(prose: list[str]) -> str:
    return "\n".join(prose).strip()


def _steps(body: list[str]) -> tuple[Step, ...]:
    steps: list[Step] = []
    command: str | None = None
    shown: list[str] = []
    code = 0

    def close() -> None:
        if command is not None:
            steps.append(Step(command, tuple(shown), code))

    for line in body:
        if line.startswith("$ "):
            close()
            command, shown, code = line[2:].strip(), [], 0
            continue
        exit_mark = _EXIT.match(line.strip())
        if exit_mark is not None:
            code = int(exit_mark.group(1))
        elif line.strip():
            shown.append(line)
    close()
    return tuple(steps)


def _normal(text: str) -> str:
    return " ".join(text.split())


def _pattern(shown: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in _normal(shown).split(ELLIPSIS)]
    return re.compile(".*?".join(parts))


def missing(shown: tuple[str, ...], output: str) -> str | None:
    """The first shown line that the output does not have (in order), or None."""
    actual = [_normal(line) for line in output.splitlines()]
    at = 0
    for line in shown:
        pattern = _pattern(line)
        while at < len(actual) and not pattern.search(actual[at]):
            at += 1
        if at == len(actual):
            return line
        at += 1
    return None
