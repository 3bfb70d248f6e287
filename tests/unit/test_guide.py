"""The guide's pages: how a chapter is read (model/guide.py) and how output is matched."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgherd.lab import tour
from pgherd.model import guide

PAGE = """# Checking a standby

Some narration about `cluster show`.

```sh run
$ pgherd cluster show
cluster lab (healthy)
│ * node1 │ primary │ running │ … │
$ pgherd node stop node9
error: … is not a node
[exit 1]
```

A plain block is prose, not run:

```sh
$ rm -rf /
```

```sh run
$ true
```
"""


def test_a_page_becomes_blocks_of_steps_with_their_narration() -> None:
    chapter = guide.parse(PAGE, "05-checking")
    assert (chapter.number, chapter.name, chapter.title) == (5, "checking", "Checking a standby")
    first, second = chapter.blocks
    assert first.narration == "Some narration about `cluster show`."
    assert [s.command for s in first.steps] == ["pgherd cluster show", "pgherd node stop node9"]
    assert first.steps[1].exit_code == 1 and first.steps[0].exit_code == 0
    assert "rm -rf" in second.narration  # shown to the reader, never run
    assert [s.command for s in chapter.steps][-1] == "true"


def test_shown_lines_match_in_order_with_ellipses_and_any_spacing() -> None:
    output = "cluster lab (healthy)\n┃ Node ┃\n│ * node1   │ primary │ running   │ 0/4000060 │\n"
    shown = ("cluster lab (healthy)", "│ * node1 │ primary │ running │ … │")
    assert guide.missing(shown, output) is None
    assert guide.missing(("│ * node1 │ standby │",), output) == "│ * node1 │ standby │"
    assert guide.missing(tuple(reversed(shown)), output) == "cluster lab (healthy)"


def test_a_file_name_without_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match=r"NN-name\.md"):
        guide.parse(PAGE, "checking")


def test_every_page_of_the_guide_parses_and_is_found_by_number_or_name() -> None:
    folder = Path(__file__).resolve().parents[2] / "docs" / "guide"
    chapters = tour.chapters(folder)
    assert chapters and [c.number for c in chapters] == sorted(c.number for c in chapters)
    first = chapters[0]
    assert tour.pick(chapters, "1") == [first] == tour.pick(chapters, first.name)
    with pytest.raises(Exception, match="no chapter 'nope'"):
        tour.pick(chapters, "nope")


def test_the_tour_narrates_runs_and_stops_at_a_command_that_fails(tmp_path: Path) -> None:
    page = (
        "# A tiny chapter\n\nSay hello.\n\n```sh run\n$ export WHO=world\n"
        "$ echo hello $WHO\nhello world\n```\n\nThen fail.\n\n```sh run\n$ false\n```\n"
    )
    chapter = guide.parse(page, "01-tiny")
    shell = tour.Shell.for_lab(tmp_path / "lab", 20000)
    said: list[str] = []
    shown: list[str] = []
    paused: list[int] = []
    with pytest.raises(Exception, match="`false` exited 1, expected 0"):
        tour.tour([chapter], shell, said.append, shown.append, lambda: paused.append(1))
    assert said == ["# 1. A tiny chapter", "Say hello.", "Then fail."]
    assert shown == ["$ export WHO=world", "$ echo hello $WHO", "$ false"]
    assert len(paused) == 2  # before each block
    code, output = shell.run("echo $WHO $LAB $PORT_BASE")  # the environment carries over
    assert code == 0 and output.split() == ["world", str(tmp_path / "lab"), "20000"]
    assert tour.check(chapter.steps[1], 0, "hello world\n") is None
    assert "lacks the line" in str(tour.check(chapter.steps[1], 0, "hello\n"))
