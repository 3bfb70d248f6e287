"""Docs that run: every chapter of docs/guide/ (the classic replication guide, as pgherd
commands), executed in order in one shell, each command's output checked against the
lines its page shows (model/guide.py says how). The chapters share two labs, as the
tour does: ``$LAB/streaming`` (chapters 1-6) and ``$LAB/pair`` (7-9)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgherd.lab import tour
from pgherd.model.guide import Chapter
from pgherd.pg import process
from tests.conftest import free_port_base
from tests.support import pgherd, postgres_processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
CHAPTERS = tour.chapters(GUIDE)


@pytest.fixture(scope="module")
def shell(module_dir: Path) -> Iterator[tour.Shell]:
    lab = module_dir / "guide"
    found = tour.Shell.for_lab(lab, free_port_base(30, (0, 1000)))
    try:
        yield found
    finally:
        for name in ("streaming", "pair"):
            if (lab / name / "pgherd.yaml").exists():
                pgherd("lab", "down", "--dir", lab / name, "--purge", check=False)
        for restored in lab.glob("restored-*"):
            pid = process.read_postmaster_pid(restored)
            if pid is not None:
                process.signal_pid(pid.pid, signal.SIGQUIT)  # an immediate shutdown
        process.reap_zombie_children()
        assert not postgres_processes(lab), "the guide left processes behind"


def test_the_guide_has_every_chapter_of_the_classic_guide() -> None:
    assert [c.name for c in CHAPTERS] == [
        "streaming",
        "archive-pitr",
        "replay",
        "archive-cleanup",
        "switchover",
        "monitoring",
        "logical",
        "insert-only",
        "multi-master",
    ][: len(CHAPTERS)]
    assert all(c.steps for c in CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_chapter(chapter: Chapter, shell: tour.Shell) -> None:
    for step in chapter.steps:
        code, output = shell.run(step.command)
        problem = tour.check(step, code, output)
        assert problem is None, f"{chapter.name}: `{step.command}` {problem}\n{output}"
