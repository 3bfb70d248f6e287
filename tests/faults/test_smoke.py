from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults import runner
from tests.faults.catalogue import FAULTS
from tests.faults.cluster import FaultCluster

pytestmark = [pytest.mark.faults]

NAMES = os.environ.get("FAULTS", "kill-postmaster").split(",")


@pytest.mark.parametrize("name", NAMES)
def test_fault(cluster: FaultCluster, name: str, module_dir: Path) -> None:
    result = runner.run(cluster, FAULTS[name](), module_dir / "runs" / name, NAMES.index(name))
    print(result)
    runner.assert_clean(result)
