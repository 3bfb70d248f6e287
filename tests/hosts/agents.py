"""Agents started as a systemd unit starts them: as the OS user that owns the data (never
root), ``pgherd agent run --node NAME`` with the cluster's one pgherd.yaml, a clean
environment, stderr to a log file (the journal, here), stopped with SIGTERM (KillMode=process:
the agent alone is signalled, and it shuts its PostgreSQL down itself)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pgherd.config import NodeConfig
from pgherd.pg import osuser


def as_user(user: osuser.OsUser) -> list[str]:
    """The prefix that runs a program as ``user`` with its groups (systemd's User=)."""
    return ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--"]


def service_env(user: osuser.OsUser) -> dict[str, str]:
    """What systemd gives a unit's process: no variables of ours."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "LANG": "C.UTF-8",
    }


@dataclass
class Agent:
    node: NodeConfig
    proc: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)

    @property
    def log(self) -> Path:
        return self.node.agent_log

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 90) -> None:
        """systemctl stop: SIGTERM, then SIGKILL after ``timeout`` (TimeoutStopSec)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9 of the agent (its PostgreSQL follows it: parent-death signal)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def start_agent(
    config_path: Path, node: NodeConfig, user: osuser.OsUser, netns: str | None = None
) -> Agent:
    """``pgherd agent run --node NAME`` as ``user``, in the network namespace ``netns``."""
    user.make_dir(node.home_dir)
    argv = [
        *as_user(user),
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
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    log = os.open(node.agent_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchown(log, user.uid, user.gid)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=service_env(user),
            cwd="/",
        )
    finally:
        os.close(log)
    return Agent(node, proc)
