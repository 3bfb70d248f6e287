"""What the quick commands print without rich reads as rich prints it to a non-terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pgherd.cli.text import Column, Printer, Span, Table, cell_width, render_plain, to_rich


def rich_plain(table: Table) -> str:
    """The same table through rich, as the CLI printed it to a pipe before (width 160)."""
    out = io.StringIO()
    Console(file=out, highlight=False, width=160, force_terminal=False).print(to_rich(table))
    return out.getvalue()


def cluster_like() -> Table:
    headers = ["Node", "Role", "State", "Upstream", "TL", "LSN", "Lag", "Lag time", "Check-in age"]
    table = Table(
        "cluster lab (healthy)",
        [Column(h, right=h.startswith(("Lag", "Check-in"))) for h in headers],
    )
    table.add_row(
        "* node1", "primary", Span("running", "green"), "", "1", "0/404E708", "-", "-", "24 ms"
    )
    table.add_row(
        "  node2", "standby", Span("streaming", "green"), "node1", "1", "0/404E708", "0 B",
        "0 ms", "never",
    )  # fmt: skip
    return table


CASES = {
    "cluster show": cluster_like(),
    "a title wider than its header": Table(
        "mesh apply workers", [Column("Mesh"), Column("Lag", right=True)]
    ),
    "a long word in a title": Table("averyveryverylongtitle x", [Column("A"), Column("B")]),
    "brackets, arrows and wide characters": Table(
        "t", [Column("Pair"), Column("Note")], [(Span("a → b"), Span("[red]not markup[/]"))]
    ),
    "east asian": Table("名前", [Column("ノード")], [(Span("東京"),), (Span("x"),)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plain_tables_are_rich_tables_without_rich(name: str) -> None:
    assert render_plain(CASES[name]) == rich_plain(CASES[name])


def test_a_row_must_fill_every_column() -> None:
    table = Table("t", [Column("A"), Column("B")])
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        table.add_row("only one")


def test_a_printer_to_a_pipe_writes_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    printer = Printer(out)
    printer.line(Span("!", "yellow"), " a problem [with brackets]")
    printer.table(CASES["cluster show"])
    assert not printer.terminal
    assert out.getvalue() == "! a problem [with brackets]\n" + rich_plain(CASES["cluster show"])


def test_force_color_makes_a_pipe_a_terminal_as_rich_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    printer = Printer(out)
    printer.line(Span("!", "yellow"), " [x] stays")
    assert printer.terminal
    assert out.getvalue() == "\x1b[33m!\x1b[0m [x] stays\n"


@pytest.mark.parametrize(
    ("text", "width"), [("abc", 3), ("a → b", 5), ("東京", 4), ("e\u0301", 1), ("", 0)]
)
def test_cell_width(text: str, width: int) -> None:
    assert cell_width(text) == width
