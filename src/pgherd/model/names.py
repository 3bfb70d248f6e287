"""SQL names and expressions as users type them on the command line. Pure.

A table is given as PostgreSQL would read it: ``customers``, ``sales.orders``, or with
double quotes for names that need them, ``"we ird"."na;me"``. Unquoted parts fold to
lower case, quoted parts are kept exactly (``""`` is a quote), so what pgherd publishes is
the table PostgreSQL itself would have named. The parsed parts are only ever sent to the
server through ``psycopg.sql.Identifier``, never pasted into SQL.

Row filters are SQL expressions and cannot be quoted; :func:`check_expression` makes sure
one cannot leave the ``WHERE (...)`` it is put in (no ``;``, no comments, balanced
parentheses outside string literals), and PostgreSQL then checks what is inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgherd.errors import InvalidInput

MAX_NAME_BYTES = 63  # NAMEDATALEN - 1
_UNQUOTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_ident(name: str) -> str:
    """``name`` as PostgreSQL prints it: bare when it can be, else double-quoted."""
    if _PLAIN.match(name):
        return name
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, order=True)
class QualifiedName:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def short(self) -> str:
        """Without the schema when it is ``public``: how people usually write it."""
        return quote_ident(self.name) if self.schema == "public" else str(self)


def check_name(name: str, what: str = "name") -> str:
    """A name PostgreSQL can hold: not empty, at most 63 bytes (it would truncate)."""
    if not name:
        raise InvalidInput(f"the {what} is empty", f"give a {what}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidInput(
            f"the {what} {name!r} is longer than {MAX_NAME_BYTES} bytes",
            "PostgreSQL would truncate it; choose a shorter one",
        )
    if "\0" in name:
        raise InvalidInput(f"the {what} {name!r} holds a NUL character", "remove it")
    return name


def split_outside_quotes(text: str, separator: str, limit: int = -1) -> list[str]:
    """Split on ``separator`` where it is not inside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted and (limit < 0 or len(parts) < limit):
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_identifier(text: str, what: str = "name") -> str:
    """One identifier: a double-quoted one kept exactly (``""`` is a quote), a plain one
    folded to lower case, as PostgreSQL reads them."""
    token = text.strip()
    if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
        inner = token[1:-1]
        if '"' in inner.replace('""', ""):
            raise InvalidInput(f"{what} {text!r} has an unpaired double quote", 'write "" for "')
        return check_name(inner.replace('""', '"'), what)
    if not _UNQUOTED.match(token):
        raise InvalidInput(
            f"{what} {text!r} is not a valid SQL name",
            'put names with spaces, capitals or symbols in double quotes: "My Table"',
        )
    return check_name(token.lower(), what)


def parse_table(text: str, default_schema: str = "public") -> QualifiedName:
    """``table`` or ``schema.table``, each part quoted or not."""
    if text.count('"') % 2:
        raise InvalidInput(f"table {text!r} has an unpaired double quote", 'write "" for "')
    parts = split_outside_quotes(text.strip(), ".")
    if len(parts) == 1:
        return QualifiedName(default_schema, parse_identifier(parts[0], "table name"))
    if len(parts) == 2:
        return QualifiedName(
            parse_identifier(parts[0], "schema name"), parse_identifier(parts[1], "table name")
        )
    raise InvalidInput(
        f"table {text!r} has more than two dotted parts",
        'use table or schema.table (quote a name holding a dot: "a.b")',
    )


def parse_list(text: str) -> list[str]:
    """A comma-separated list (commas inside double quotes do not split), blanks dropped."""
    return [part.strip() for part in split_outside_quotes(text, ",") if part.strip()]


def parse_tables(text: str) -> list[QualifiedName]:
    tables = [parse_table(part) for part in parse_list(text)]
    if not tables:
        raise InvalidInput("--tables names no table", "give a comma-separated list: a,b")
    return tables


def split_table_prefix(text: str, option: str) -> tuple[QualifiedName, str]:
    """``TABLE:REST`` (the colon outside quotes) for ``--row-filter`` and ``--columns``."""
    parts = split_outside_quotes(text, ":", limit=1)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        raise InvalidInput(
            f"{option} {text!r} is not of the form TABLE:VALUE",
            f"e.g. {option} 'customers:"
            + ("country = ''FR''" if "filter" in option else "a,b")
            + "'",
        )
    return parse_table(parts[0]), parts[1].strip()


def check_expression(expr: str) -> str:
    """Refuse an expression that could end the statement it is put in.

    Scans outside string literals ('…', E'…' with backslash escapes) and quoted
    identifiers: no ``;``, no ``--`` or ``/*`` comments, no dollar quoting, and
    parentheses that balance without ever closing more than they opened.
    """
    depth = 0
    i = 0
    n = len(expr)
    while i < n:
        char = expr[i]
        if char == "'":
            escapes = i > 0 and expr[i - 1] in "eE" and (i < 2 or not expr[i - 2].isalnum())
            i = _skip_string(expr, i, escapes)
            continue
        if char == '"':
            end = expr.find('"', i + 1)
            while end != -1 and end + 1 < n and expr[end + 1] == '"':
                end = expr.find('"', end + 2)
            if end == -1:
                raise _bad_expression(expr, "an unterminated quoted name")
            i = end + 1
            continue
        if char == ";":
            raise _bad_expression(expr, "a semicolon")
        if expr.startswith("--", i) or expr.startswith("/*", i):
            raise _bad_expression(expr, "a comment")
        if char == "$":
            raise _bad_expression(expr, "a dollar sign (dollar quoting or a parameter)")
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise _bad_expression(expr, "a ')' without its '('")
        i += 1
    if depth:
        raise _bad_expression(expr, "a '(' without its ')'")
    if not expr.strip():
        raise InvalidInput("the row filter is empty", "give an expression, e.g. 'active'")
    return expr.strip()


def _skip_string(expr: str, start: int, escapes: bool) -> int:
    i = start + 1
    while i < len(expr):
        if escapes and expr[i] == "\\":
            i += 2
            continue
        if expr[i] == "'":
            if i + 1 < len(expr) and expr[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    raise _bad_expression(expr, "an unterminated string literal")


def _bad_expression(expr: str, what: str) -> InvalidInput:
    return InvalidInput(
        f"the row filter {expr!r} holds {what}",
        "give one boolean expression on the table's columns, e.g. 'country = ''FR'''",
    )
