"""The agent's answer to ``POST /wal/switch``, read without pydantic.

:class:`pgherd.pg.archive_sql.WalSwitch` (pydantic) is what the agent serves; the CLI
reads the same document into :class:`SwitchedWal`, same fields, names and types
(tests/unit/test_wal_switch.py holds them equal): ``archive check`` is a quick command,
and a backup whose end segment is late asks for a switch (archive/backup.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgherd.model.json_values import mapping, text
from pgherd.model.lsn import Lsn


@dataclass(frozen=True)
class SwitchedWal:
    lsn: Lsn
    segment: str  # the segment that was closed (and is now due for archiving)


def read_wal_switch(doc: object) -> SwitchedWal:
    """The decoded JSON; ValueError when it is not a WAL switch's answer."""
    try:
        data = mapping(doc)
        return SwitchedWal(lsn=Lsn.parse(text(data["lsn"])), segment=text(data["segment"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a WAL switch: {exc}") from None
