"""The supervisor under automatic failover: the postmaster it spawns dies with the agent
(parent-death signal), and it never starts a cluster other than the one it began with."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pgherd.errors import Refused
from pgherd.ha.supervisor import Supervisor
from pgherd.model.status import Desired, PgState
from pgherd.pg import osuser, process
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap
from tests.conftest import free_port_base
from tests.support import cluster_config, wait_until

pytestmark = pytest.mark.integration


def test_a_replaced_data_directory_is_refused(workdir: Path, os_user: osuser.OsUser) -> None:
    config = cluster_config(workdir, os_user, 1, free_port_base(1))
    local = LocalNode.open(config, "node1")
    bootstrap.init_primary(local)
    supervisor = Supervisor(local.instance)
    try:
        supervisor.start(timeout=60)
        first = supervisor.system_identifier
        assert first is not None
        supervisor.stop("fast")
        # The lab directory is deleted and a new cluster appears at the same path.
        shutil.rmtree(local.node.data_dir)
        bootstrap.init_primary(local)
        with pytest.raises(Refused, match=f"not {first} that this agent started with"):
            supervisor.start(timeout=60)
        assert supervisor.desired is Desired.STOPPED
        assert supervisor.last_error is not None and "refusing to start" in supervisor.last_error
        assert supervisor.state() is PgState.STOPPED
        # Nor does the watch loop that restarts a server that died.
        supervisor.desired = Desired.RUNNING
        supervisor.tick()  # notes the server is down
        assert "refusing to start" in (supervisor.tick() or "")
        assert supervisor.pid is None
    finally:
        supervisor.stop("immediate")


AGENT = textwrap.dedent(
    """
    import sys, time
    from pgherd import config as config_mod
    from pgherd.ha.supervisor import Supervisor
    from pgherd.pg.local_node import LocalNode

    from pathlib import Path
    config = config_mod.load(Path(sys.argv[1]))
    supervisor = Supervisor(LocalNode.open(config, "node1").instance)
    supervisor.start(timeout=60)
    print(supervisor.pid, flush=True)
    time.sleep(600)
    """
)


def test_the_postmaster_dies_with_its_agent(workdir: Path, os_user: osuser.OsUser) -> None:
    """kill -9 of the process that spawned it: the kernel sends the postmaster SIGQUIT."""
    config = cluster_config(workdir, os_user, 1, free_port_base(1))
    local = LocalNode.open(config, "node1")
    bootstrap.init_primary(local)
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(workdir / "pgherd.yaml")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None
        postmaster = int(agent.stdout.readline())
        assert process.is_alive(postmaster)
        agent.kill()
        agent.wait(10)
        wait_until(lambda: not process.is_alive(postmaster), 10, what="the postmaster to go")
        assert "received immediate shutdown request" in local.instance.log_tail(20)
    finally:
        agent.kill()
        agent.wait(10)
        if agent.stdout is not None:
            agent.stdout.close()
        local.instance.stop("immediate")
        process.reap_zombie_children()
