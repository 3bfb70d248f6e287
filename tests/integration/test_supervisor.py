"""The supervisor: the postmaster it starts outlives its agent (under a keeper) and is
adopted by the next one; the keeper stops it at the fence moment the agent published when
no agent renews it, with a killed keeper it goes down, and a SIGTERM to the keeper (a
system shutting down) is a fast shutdown. It never starts a cluster other than the one it
began with."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgherd.errors import Refused
from pgherd.ha.supervisor import Supervisor
from pgherd.model.status import Desired, PgState
from pgherd.pg import osuser, process
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap
from tests.conftest import free_port_base
from tests.support import cluster_config, connect, query, wait_until

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
    fence = None
    if len(sys.argv) > 2:  # a fence moment, this many seconds from now
        fence = time.monotonic() + float(sys.argv[2])
        supervisor.set_fence(fence)
    print(supervisor.pid, fence, flush=True)
    time.sleep(600)
    """
)


def start_agent(workdir: Path, *args: str) -> tuple[subprocess.Popen[str], int, float | None]:
    """A process that starts the postmaster as the agent does; returns it, the
    postmaster's PID and the fence moment it published (monotonic: one clock for every
    process of the host), if any."""
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, str(workdir / "pgherd.yaml"), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert agent.stdout is not None
    pid, fence = agent.stdout.readline().split()
    return agent, int(pid), None if fence == "None" else float(fence)


def end(agent: subprocess.Popen[str]) -> None:
    agent.kill()
    agent.wait(10)
    if agent.stdout is not None:
        agent.stdout.close()


def keeper_of(postmaster: int) -> int:
    keeper = process.parent_pid(postmaster)
    assert keeper is not None
    assert process.command_name(keeper) == "pgherd-keeper"
    return keeper


@pytest.fixture
def node(workdir: Path, os_user: osuser.OsUser) -> Iterator[LocalNode]:
    config = cluster_config(workdir, os_user, 1, free_port_base(1))
    local = LocalNode.open(config, "node1")
    bootstrap.init_primary(local)
    try:
        yield local
    finally:
        local.instance.stop("immediate")
        process.reap_zombie_children()


def test_the_postmaster_outlives_its_agent_and_the_next_agent_adopts_it(
    workdir: Path, node: LocalNode
) -> None:
    """kill -9 of the agent: PostgreSQL runs on (no fence was published: manual
    failover), and a new supervisor adopts that very postmaster."""
    agent, postmaster, _ = start_agent(workdir)
    keeper = keeper_of(postmaster)
    assert process.parent_pid(keeper) == agent.pid
    end(agent)
    time.sleep(0.5)
    assert process.is_alive(postmaster)
    assert query(node.config, "node1", "SELECT 1") == [(1,)]
    supervisor = Supervisor(node.instance)
    assert supervisor.adopt()
    assert supervisor.pid == postmaster
    assert supervisor.state() is PgState.RUNNING
    exited = threading.Event()
    supervisor.on_exit = exited.set
    supervisor.stop("fast")
    assert not process.is_alive(postmaster)
    assert exited.wait(5), "the adopted postmaster's exit was not noticed at once"
    assert process.wait_gone(keeper, 5), "the keeper outlived its postmaster"


def test_with_no_agent_to_renew_the_lease_the_keeper_fences_on_time(
    workdir: Path, node: LocalNode
) -> None:
    agent, postmaster, published = start_agent(workdir, "3")
    assert published is not None
    end(agent)
    wait_until(lambda: not process.is_alive(postmaster), 10, what="the keeper to fence")
    stopped = time.monotonic()
    assert published - 0.5 < stopped < published + 1.0
    log = node.instance.log_tail(20)
    assert "pgherd keeper: fencing: the agent did not renew the lease in time" in log
    assert "received immediate shutdown request" in log


def test_a_killed_keeper_takes_postgresql_down(workdir: Path, node: LocalNode) -> None:
    agent, postmaster, _ = start_agent(workdir)
    try:
        process.signal_pid(keeper_of(postmaster), signal.SIGKILL)
        wait_until(lambda: not process.is_alive(postmaster), 10, what="the postmaster to go")
        assert "received immediate shutdown request" in node.instance.log_tail(20)
    finally:
        end(agent)


def test_sigterm_to_the_keeper_is_a_fast_shutdown(workdir: Path, node: LocalNode) -> None:
    """What systemd's shutdown does to every process left: PostgreSQL stops cleanly and
    does not wait for clients, as a smart shutdown would."""
    agent, postmaster, _ = start_agent(workdir)
    try:
        with connect(node.config, "node1"):  # a client that would hold a smart shutdown
            process.signal_pid(keeper_of(postmaster), signal.SIGTERM)
            wait_until(lambda: not process.is_alive(postmaster), 20, what="a fast shutdown")
        assert "received fast shutdown request" in node.instance.log_tail(20)
    finally:
        end(agent)


def test_an_agent_that_got_sigterm_starts_no_postgresql(node: LocalNode) -> None:
    """The HA loop runs on for a moment after SIGTERM (the API's graceful shutdown): a
    start it decides then must not happen (a host going down waited 90 s for that
    server, which never got its signal)."""
    supervisor = Supervisor(node.instance, auto_restart=False)
    supervisor.close()
    assert supervisor.spawn_when_due(urgent=True) is False
    with pytest.raises(Refused, match="the agent is stopping"):
        supervisor.start(timeout=10)
    assert supervisor.pid is None
    assert not node.instance.is_running


def test_a_server_coming_back_from_a_crash_is_timed_until_it_runs(node: LocalNode) -> None:
    """primary_start_timeout bounds a leader's restart in place (model/ha.py): the
    supervisor says how long since the server went down while it starts again — not at
    a boot, and no longer once it runs."""
    supervisor = Supervisor(node.instance, auto_restart=False)
    try:
        supervisor.start(timeout=60)
        assert supervisor.restarting_for() is None  # a boot is not bounded
        first = supervisor.pid
        assert first is not None
        process.signal_pid(first, signal.SIGKILL)
        wait_until(lambda: not process.is_alive(first), 10, what="the crash")
        process.reap_zombie_children()
        assert supervisor.down_for() is not None  # noted as down (a crash)
        time.sleep(0.5)
        assert supervisor.spawn_when_due(urgent=True)
        again = supervisor.pid
        assert again is not None
        process.signal_pid(again, signal.SIGSTOP)  # held on its way up
        try:
            assert supervisor.state() is PgState.STARTING
            back = supervisor.restarting_for()
            assert back is not None and back >= 0.5  # counted from the crash
        finally:
            process.signal_pid(again, signal.SIGCONT)
        wait_until(lambda: supervisor.state() is PgState.RUNNING, 60, what="the restart")
        assert supervisor.restarting_for() is None
    finally:
        supervisor.stop("immediate")
