"""Which node of the config a subscription's conninfo names (the loop check's publisher),
single-host and multi-host (an HA publisher followed through its failovers)."""

from __future__ import annotations

import pytest

from pgherd import config
from pgherd.logical.loops import publisher_in
from tests.unit.test_config import raw_config


@pytest.mark.parametrize(
    ("hosts", "ports", "expected"),
    [
        ("127.0.0.1", "5442", "node2"),
        ("10.0.0.3", None, None),  # port 5432 by default: none listens there
        ("10.0.0.3", "5441", "node3"),
        ("db9,127.0.0.1", "5432,5441", "node1"),  # multi-host: the first of this config
        ("db9,10.0.0.3", "5441", "node3"),  # one port for every host
        ("db9,db8", "5441,5442", None),  # another config's cluster
        (None, None, None),
    ],
)
def test_the_node_a_conninfo_names(
    hosts: str | None, ports: str | None, expected: str | None
) -> None:
    found = publisher_in(config.parse(raw_config()), hosts, ports)
    assert (found.name if found else None) == expected
