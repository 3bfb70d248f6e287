"""The CLI's pydantic-free reading of ``POST /wal/switch`` (model/wal_switch.py) holds
what the agent's model serves: the same fields, names and values."""

from __future__ import annotations

import dataclasses

import pytest

from pgherd.model.lsn import Lsn
from pgherd.model.wal_switch import SwitchedWal, read_wal_switch
from pgherd.pg.archive_sql import WalSwitch


def test_the_same_fields_as_the_agents_model() -> None:
    assert [f.name for f in dataclasses.fields(SwitchedWal)] == list(WalSwitch.model_fields)


def test_reads_what_the_agent_serves() -> None:
    served = WalSwitch(lsn=Lsn.parse("0/3000078"), segment="000000010000000000000003")
    read = read_wal_switch(served.model_dump(mode="json"))
    assert read == SwitchedWal(Lsn.parse("0/3000078"), "000000010000000000000003")
    assert {f.name: getattr(read, f.name) for f in dataclasses.fields(read)} == dict(served)


@pytest.mark.parametrize(
    "doc",
    [None, [], {}, {"lsn": "0/1"}, {"lsn": "x", "segment": "s"}, {"lsn": 5, "segment": "s"}],
)
def test_anything_else_is_refused(doc: object) -> None:
    with pytest.raises(ValueError, match="not a WAL switch"):
        read_wal_switch(doc)
