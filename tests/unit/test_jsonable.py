"""One JSON form for every --json and the console: models, dataclasses, enums, times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pgherd.model.events import Outcome
from pgherd.model.jsonable import jsonable
from pgherd.model.lsn import Lsn
from pgherd.model.status import Message


@dataclass(frozen=True)
class _Result:
    state: Outcome
    at: datetime
    where: Path
    lsn: Lsn | None
    parts: tuple[Message, ...]


@dataclass
class _Renamed:
    old: str

    def as_json(self) -> dict[str, object]:
        return {"from": self.old, "at": datetime(2026, 1, 2, tzinfo=UTC)}


def test_dataclasses_models_enums_and_times_become_plain_json() -> None:
    result = _Result(
        Outcome.SUCCEEDED,
        datetime(2026, 12, 6, 7, 50, 30, tzinfo=UTC),
        Path("/var/tmp/x"),
        Lsn.parse("0/3000148"),
        (Message(message="done"),),
    )
    assert jsonable(result) == {
        "state": "succeeded",
        "at": "2026-12-06T07:50:30Z",
        "where": "/var/tmp/x",
        "lsn": "0/3000148",
        "parts": [{"message": "done"}],
    }


def test_a_result_that_names_its_json_is_shown_as_it_says() -> None:
    assert jsonable([_Renamed("node1")]) == [{"from": "node1", "at": "2026-01-02T00:00:00Z"}]
    assert jsonable({"ok": True, "rows": (_Renamed("a"),)}) == {
        "ok": True,
        "rows": [{"from": "a", "at": "2026-01-02T00:00:00Z"}],
    }


def test_values_written_without_pydantic_are_written_as_pydantic_writes_them() -> None:
    """jsonable writes plain values, enums, times and paths itself (the quick commands
    print JSON without importing pydantic); pydantic_core's form is the reference."""
    from datetime import timedelta, timezone
    from enum import IntEnum

    from pydantic_core import to_jsonable_python

    class Number(IntEnum):
        THREE = 3

    samples = [
        "text", 12, 1.5, True, None, Outcome.FAILED, Number.THREE, Path("/a/b"),
        datetime(2026, 1, 2, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 2, 3, 4, 5),
    ]  # fmt: skip
    for value in samples:
        assert jsonable(value) == to_jsonable_python(value), value
        assert type(jsonable(value)) is type(to_jsonable_python(value)), value
