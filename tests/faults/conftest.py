"""The fault suite's cluster, shared by a module's tests: pgherd on test hosts
(tests/faults/cluster.py), in synchronous mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgherd.pg import osuser
from tests.faults.checker import Mode
from tests.faults.cluster import FaultCluster, deploy


@pytest.fixture(scope="module")
def cluster(module_dir: Path, os_user: osuser.OsUser) -> Iterator[FaultCluster]:
    with deploy(module_dir / "c", os_user, Mode.SYNC) as found:
        yield found
