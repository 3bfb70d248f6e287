"""What a command prints, built once and shown one of two ways: through rich when the
stream is a terminal (colours, a table fitted to the window), as plain text when it is
not (a pipe, a log, a script), without importing rich at all — ~0.05 s of start-up the
quick commands do not pay. The plain table is drawn as rich draws one to a non-terminal,
character for character (tests/unit/test_text.py compares them), so a log reads the same
either way; only a table wider than the page is left whole where rich would wrap it.

Text in a :class:`Span` is never read as rich markup: a node name, a PostgreSQL message
or a reason may hold brackets.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table as RichTable


@dataclass(frozen=True)
class Span:
    """Text with a rich style (``"green"``, ``"bold red"``), shown only on a terminal."""

    text: str
    style: str = ""


Part = str | Span


@dataclass(frozen=True)
class Column:
    """A table column: its header and which side its cells align to."""

    header: str
    right: bool = False  # right-justified (numbers, durations)
    # On a terminal: a column that takes the window's spare width (and wraps), the others
    # never wrap. Plain tables are as wide as their content.
    stretch: bool = False


@dataclass
class Table:
    """A titled table, printed plain to a pipe or by rich on a terminal."""

    title: str
    columns: Sequence[Column]
    rows: list[tuple[Span, ...]] = field(default_factory=list)

    def add_row(self, *cells: Part) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(tuple(_span(c) for c in cells))


def is_terminal(stream: TextIO) -> bool:
    """Whether rich would treat ``stream`` as a terminal (its environment rules:
    TTY_COMPATIBLE, FORCE_COLOR, then isatty)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


class Printer:
    """Lines and tables to one stream (stdout unless told), rich only on a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.terminal = is_terminal(self.stream)
        self._rich: Console | None = None

    def line(self, *parts: Part) -> None:
        """One line, never wrapped (rich's ``soft_wrap``)."""
        if self.terminal:
            self.rich().print(*[_markup(_span(p)) for p in parts], sep="", soft_wrap=True)
        else:
            self.stream.write("".join(_span(p).text for p in parts) + "\n")

    def table(self, table: Table) -> None:
        if self.terminal:
            self.rich().print(to_rich(table))
        else:
            self.stream.write(render_plain(table))

    def rich(self) -> Console:
        if self._rich is None:
            from pgherd.cli.output import make_console

            self._rich = make_console(self.stream)
        return self._rich


# ---- plain text ------------------------------------------------------------------------


def render_plain(table: Table) -> str:
    """The table as rich draws it to a non-terminal (box HEAVY_HEAD, one space of padding,
    the title left-justified over the table's width), with a newline at the end."""
    widths = [cell_width(c.header) for c in table.columns]
    for row in table.rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_width(cell.text))
    total = sum(widths) + 3 * len(widths) + 1

    def rule(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (w + 2) for w in widths) + right

    def cells(texts: Sequence[str], bar: str) -> str:
        padded = [
            _justify(text, width, column.right)
            for text, width, column in zip(texts, widths, table.columns, strict=True)
        ]
        return bar + bar.join(f" {p} " for p in padded) + bar

    lines = [_justify(line, total, right=False) for line in _wrap(table.title, total)]
    lines.append(rule("┏", "━", "┳", "┓"))
    lines.append(cells([c.header for c in table.columns], "┃"))
    lines.append(rule("┡", "━", "╇", "┩"))
    lines.extend(cells([c.text for c in row], "│") for row in table.rows)
    lines.append(rule("└", "─", "┴", "┘"))
    return "\n".join(lines) + "\n"


def cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (East Asian) characters take two,
    combining marks none."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _wrap(text: str, width: int) -> list[str]:
    """Words into lines of at most ``width`` columns (a longer word is cut), as rich wraps
    a title wider than its table."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        while cell_width(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        candidate = f"{current} {word}" if current else word
        if cell_width(candidate) <= width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def _justify(text: str, width: int, right: bool) -> str:
    room = max(width - cell_width(text), 0)
    return " " * room + text if right else text + " " * room


# ---- rich -------------------------------------------------------------------------------


def to_rich(table: Table) -> RichTable:
    from rich.table import Table as RichTable

    shown = RichTable(title=table.title, title_justify="left")
    for column in table.columns:
        justify: Literal["left", "right"] = "right" if column.right else "left"
        if column.stretch:
            shown.add_column(column.header, justify=justify, ratio=1, min_width=30)
        elif any(c.stretch for c in table.columns):
            shown.add_column(column.header, justify=justify, no_wrap=True)
        else:
            shown.add_column(column.header, justify=justify)
    for row in table.rows:
        shown.add_row(*[_markup(cell) for cell in row])
    return shown


def _markup(span: Span) -> str:
    from rich.markup import escape

    text = escape(span.text)
    return f"[{span.style}]{text}[/]" if span.style and span.text else text


def _span(part: Part) -> Span:
    return part if isinstance(part, Span) else Span(part)
