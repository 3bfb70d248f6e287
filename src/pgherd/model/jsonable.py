"""The one JSON form of what pgherd shows: every command's ``--json`` goes through
:func:`jsonable`.

pydantic models are dumped by their own serializer, dataclasses field by field, an LSN as
PostgreSQL writes it, enums by value, times in ISO 8601, paths as text (pydantic_core's
``to_jsonable_python``, apart from the walk). A result whose JSON names differ from its
fields (``"from"``/``"to"`` of a switchover: names users' scripts already read) says so
with an ``as_json()`` method, which is used instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from pathlib import PurePath
from typing import Any, Protocol, runtime_checkable

from pgherd.model.lsn import Lsn


@runtime_checkable
class ShapedJson(Protocol):
    def as_json(self) -> Mapping[str, object]: ...


def jsonable(value: object) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers, booleans, None)."""
    if value is None or type(value) in (str, int, float, bool):  # not enums: by value below
        return value
    if isinstance(value, ShapedJson):
        return jsonable(value.as_json())
    if isinstance(value, Lsn):
        return str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")  # as pydantic writes it
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    # Imported here, for models and what else is left: the quick commands print the values
    # above and start without pydantic.
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=str)
