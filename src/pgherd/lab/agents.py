"""Agents as background processes on this machine: start, find, wait for, stop."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from pgherd import config as config_mod
from pgherd.clients.agent import AgentClient
from pgherd.config import NodeConfig, WitnessConfig
from pgherd.errors import AgentUnreachable, PgherdError, Refused, TimedOut, last_lines
from pgherd.model.status import Desired
from pgherd.pg import osuser, process
from pgherd.pg.run import popen_kwargs

AGENT_COMM = process.AGENT_PROCESS_NAME.decode()

AgentHost = NodeConfig | WitnessConfig


def running_agent(node: AgentHost) -> int | None:
    """The PID of the node's agent if it runs (checked by name, so a reused PID is not it)."""
    try:
        pid = int(node.agent_pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if process.is_alive(pid) and process.command_name(pid) == AGENT_COMM:
        return pid
    return None


def spawn(config_path: Path, node: AgentHost) -> int:
    """Start ``pgherd agent run`` for ``node`` detached from us (see :func:`start`)."""
    return start(config_path, node).pid


def start(config_path: Path, node: AgentHost) -> process.Child:
    """Start ``pgherd agent run`` for ``node`` as a service manager would: as the config's
    OS user (``postgres``) when we are root — an agent is never root — in its home, in a
    session of its own, its output appended to its log."""
    user = osuser.resolve(config_mod.load(config_path).os_user)
    home = node.home_dir
    user.make_dir(home)
    argv = [
        sys.executable,
        "-m",
        "pgherd",
        "agent",
        "run",
        "--node",
        node.name,
        "--config",
        str(config_path),
    ]
    env = {**os.environ, "HOME": str(user.home), "USER": user.name, "LOGNAME": user.name}
    return process.spawn_logged(argv, node.agent_log, env=env, cwd=home, **popen_kwargs(user))


def wait_healthy(node: AgentHost, pid: int, timeout: float = 60) -> None:
    """Wait until the agent answers and its PostgreSQL runs; fail early if the agent dies."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not process.is_alive(pid):
            process.reap(pid)
            raise PgherdError(
                f"the agent of {node.name} exited: {agent_log_tail(node)}", _logs(node)
            )
        try:
            ok, state = AgentClient(node).healthy()
        except AgentUnreachable:
            ok, state = False, "no answer"
        if ok:
            return
        if state == "stopped":
            held_back(node)
        last = f"state {state}"
        time.sleep(0.1)
    raise TimedOut(f"{node.name} was not healthy within {timeout:.0f} s ({last})", _logs(node))


def _logs(node: AgentHost) -> str:
    if isinstance(node, WitnessConfig):
        return f"see {node.agent_log}"
    return f"see {node.agent_log} and {node.server_log}"


def held_back(node: AgentHost) -> None:
    """Raise when the agent keeps PostgreSQL stopped on purpose (it would be a second
    primary), instead of waiting for a start that will not come."""
    status = AgentClient(node).status()
    if status.desired is Desired.STOPPED and status.error:
        raise Refused(f"{node.name}: {status.error}", f"see {node.agent_log}")


def agent_log_tail(node: AgentHost) -> str:
    try:
        return last_lines(node.agent_log.read_text(errors="replace"), 2)
    except OSError:
        return "(no log)"


def stop(node: AgentHost, timeout: float = 60) -> bool:
    """SIGTERM the agent (SIGKILL after ``timeout``), then shut its PostgreSQL down (fast):
    an agent that stops leaves PostgreSQL running for the next one (ha/handover.py), and a
    lab that stops wants both gone.

    Returns True if an agent was running.
    """
    pid = running_agent(node)
    if pid is not None:
        process.signal_pid(pid, signal.SIGTERM)
        if not process.wait_gone(pid, timeout):
            process.signal_pid(pid, signal.SIGKILL)
            process.wait_gone(pid, 5)
        node.agent_pid_file.unlink(missing_ok=True)
    if isinstance(node, NodeConfig):
        stop_postgres(node, timeout)
    return pid is not None


def stop_postgres(node: NodeConfig, timeout: float = 60) -> bool:
    """Fast shutdown of the node's postmaster, if one runs (immediate, then SIGKILL, when
    it does not go in time); True if one ran."""
    pm = process.running_postmaster(node.data_dir)
    if pm is None:
        return False
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
        process.signal_pid(pm.pid, sig)
        if process.wait_gone(pm.pid, wait):
            break
    return True
