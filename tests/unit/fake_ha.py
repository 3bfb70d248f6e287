"""A lab's node1 as its HA executor sees it, on a fake clock and a store in memory: for
the unit tests of the lease (test_failover_parts.py, test_lease_keeping.py). No server
is started."""

from __future__ import annotations

import threading
from pathlib import Path

from pgherd.dcs.memory import MemoryStore
from pgherd.ha.execute import Executor
from pgherd.ha.fence import Fence
from pgherd.ha.loop import settings_of
from pgherd.ha.supervisor import Supervisor
from pgherd.lab import layout
from pgherd.pg.local_node import LocalNode

LAB = Path("/var/tmp/pgherd-lab")


class FakeClock:
    def __init__(self, at: float) -> None:
        self.at = at

    def monotonic(self) -> float:
        return self.at

    def time(self) -> float:
        return 1_800_000_000.0 + self.at


def executor_on(clock: FakeClock, store: MemoryStore, fence: Fence) -> Executor:
    """node1's executor of a 3-node etcd lab with the default ha: settings."""
    cfg = layout.lab_config(
        LAB, layout.LabShape(3, 25000, "postgres", None, failover="automatic", dcs="etcd")
    )
    local = LocalNode.open(cfg, "node1")
    return Executor(
        local,
        Supervisor(local.instance, auto_restart=False, clock=clock),
        settings_of(cfg),
        "token",
        fence,
        threading.Lock(),
        lambda: store,
        clock,
    )
