"""``pgherd lab tour [CHAPTER]``: the classic replication guide's chapters, run live on a lab.

The chapters are the pages of docs/guide/ (shipped in the package as ``pgherd/guide``),
parsed by ``model/guide.py``. Their commands run in one shell session per tour (a bash
that keeps the environment between commands, so an ``export`` in one block holds in the
next), with three variables set: ``LAB`` (a directory for the labs), ``PORT_BASE`` (the
first of 30 free ports) and ``PGHERD_CONFIG``. The test suite runs the same pages with the
same shell (tests/docs/test_guide.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pgherd.errors import InvalidInput
from pgherd.model import guide
from pgherd.model.guide import Chapter, Step
from pgherd.pg import process

_STATE = ".tour-env"


def guide_dir() -> Path:
    """The chapter pages: in the installed package, else in the checkout's docs/."""
    shipped = Path(str(resources.files("pgherd"))) / "guide"
    if shipped.is_dir():
        return shipped
    checkout = Path(__file__).resolve().parents[3] / "docs" / "guide"
    if checkout.is_dir():
        return checkout
    raise InvalidInput("the guide's pages are not installed", "reinstall pgherd")


def chapters(where: Path | None = None) -> list[Chapter]:
    folder = where or guide_dir()
    found = [
        guide.parse(path.read_text(), path.stem) for path in sorted(folder.glob("[0-9][0-9]-*.md"))
    ]
    return sorted(found, key=lambda c: c.number)


def pick(found: list[Chapter], wanted: str | None) -> list[Chapter]:
    """Every chapter, or the one named (``switchover``) or numbered (``5``)."""
    if wanted is None:
        return found
    for chapter in found:
        if wanted in (chapter.name, str(chapter.number), f"{chapter.number:02d}"):
            return [chapter]
    names = ", ".join(f"{c.number} {c.name}" for c in found)
    raise InvalidInput(f"no chapter {wanted!r} in the guide", f"pick one of: {names}")


@dataclass
class Shell:
    """Runs commands in bash with an environment kept between commands."""

    workdir: Path
    env: dict[str, str]

    @classmethod
    def for_lab(cls, lab: Path, port_base: int) -> Shell:
        lab.mkdir(parents=True, exist_ok=True)
        os.chmod(lab, 0o755)  # noqa: S103 - postgres must reach the labs below it
        bindir = str(Path(sys.executable).parent)  # this virtualenv's pgherd
        env = {
            "PATH": f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "COLUMNS": "110",
            "LAB": str(lab),
            "PORT_BASE": str(port_base),
            "PGHERD_CONFIG": str(lab / "streaming" / "pgherd.yaml"),
        }
        shell = cls(lab, env)
        (lab / _STATE).unlink(missing_ok=True)
        return shell

    def _argv(self, command: str) -> list[str]:
        state = self.workdir / _STATE
        script = (
            f'[ -f "{state}" ] && . "{state}"; cd "$LAB"; eval "$PGHERD_TOUR_COMMAND"; '
            f'rc=$?; export -p | grep -v PGHERD_TOUR_COMMAND > "{state}"; exit $rc'
        )
        return ["bash", "-c", script]

    def run(self, command: str, timeout: float = 900) -> tuple[int, str]:
        """Run ``command``; its exit code and what it printed (stdout and stderr)."""
        env = self.env | {"PGHERD_TOUR_COMMAND": command}
        return process.run_here(self._argv(command), env, timeout)

    def run_live(self, command: str, timeout: float = 900) -> int:
        """Run ``command`` with its output going straight to the terminal."""
        env = self.env | {"PGHERD_TOUR_COMMAND": command}
        code, _ = process.run_here(self._argv(command), env, timeout, capture=False)
        return code


LABS = ("streaming", "pair")  # the labs the chapters make under $LAB


def fresh_labs(shell: Shell) -> None:
    """A tour starts from fresh labs: remove those an earlier tour left in its directory."""
    for name in LABS:
        if (shell.workdir / name / "pgherd.yaml").exists():
            shell.run(f"pgherd lab down --dir $LAB/{name} --purge")


def check(step: Step, code: int, output: str) -> str | None:
    """Why ``output`` does not show what the page shows, or None."""
    if code != step.exit_code:
        return f"exited {code}, the page says {step.exit_code}"
    line = guide.missing(step.shown, output)
    if line is not None:
        return f"the output lacks the line {line!r}"
    return None


def tour(
    selected: list[Chapter],
    shell: Shell,
    say: Callable[[str], None],
    show: Callable[[str], None],
    pause: Callable[[], None] | None,
) -> None:
    """Narrate and run each chapter; ``pause`` (on a terminal) waits for Enter before each
    block. Stops at the first command that does not exit as its page says."""
    for chapter in selected:
        say(f"# {chapter.number}. {chapter.title}")
        for block in chapter.blocks:
            if block.narration:
                say(block.narration)
            if pause is not None:
                pause()
            for step in block.steps:
                show(f"$ {step.command}")
                code = shell.run_live(step.command)
                if code != step.exit_code:
                    raise InvalidInput(
                        f"chapter {chapter.name}: `{step.command}` exited {code}, "
                        f"expected {step.exit_code}",
                        "see its output above; the lab stays as it is for a look",
                    )
