"""Lab clusters driven through the real CLI, as a user would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.pg import process
from tests.conftest import free_port_base
from tests.support import pgherd, postgres_processes

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Lab:
    directory: Path
    port_base: int

    @property
    def config_path(self) -> Path:
        return self.directory / "pgherd.yaml"

    @property
    def config(self) -> ClusterConfig:
        return config_mod.load(self.config_path)


def start_lab(directory: Path, nodes: int, *extra: str, spread: tuple[int, ...] = (0, 1000)) -> Lab:
    """A lab through the CLI. Labs of the tests written before automatic failover existed
    keep failing over by hand only (``--failover manual``) unless a test asks otherwise;
    ``spread``: the port offsets the lab takes (add 2000, 3000 for a lab's etcd)."""
    if "--failover" not in extra and "--independent" not in extra:
        extra = (*extra, "--failover", "manual")
    base = free_port_base(nodes + 1, spread)
    try:
        pgherd(
            "lab", "up", "--dir", directory, "--nodes", str(nodes), "--port-base", str(base), *extra
        )
    except AssertionError:
        # Agents that did start would outlive the failed test (and restart PostgreSQL in
        # whatever later appears at their data directories' paths).
        pgherd("lab", "down", "--dir", directory, check=False)
        process.reap_zombie_children()
        raise
    return Lab(directory, base)


def stop_lab(lab: Lab) -> None:
    pgherd("lab", "down", "--dir", lab.directory, check=False)
    process.reap_zombie_children()
    left = postgres_processes(lab.directory)
    assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="module")
def lab3(module_dir: Path) -> Iterator[Lab]:
    """A 3-node lab shared by a module's tests (each test leaves it as it found it)."""
    lab = start_lab(module_dir / "lab", 3)
    yield lab
    stop_lab(lab)
