"""Agents started as their systemd unit starts them: the unit ``pgherd agent unit --node
NAME`` prints is read, and its ``ExecStart=`` run as its ``User=`` with its ``UMask=`` and a
clean environment, stderr to a log file (the journal, here); stopped with SIGTERM
(``KillMode=process``: the agent alone is signalled; PostgreSQL runs on under its keeper)
and reloaded with SIGHUP (``ExecReload=``)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


@dataclass(frozen=True)
class Unit:
    """What a unit file says about starting the agent."""

    exec_start: tuple[str, ...]
    user: str
    umask: int

    @classmethod
    def parse(cls, text: str) -> Unit:
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                fields.setdefault(key.strip(), value.strip())
        argv = tuple(
            a.replace("%%", "%").replace("$$", "$") for a in shlex.split(fields["ExecStart"])
        )
        return cls(argv, fields["User"], int(fields.get("UMask", "0022"), 8))


def unit_of(config_path: Path, node: str) -> Unit:
    """The unit ``pgherd agent unit --node NODE`` prints for this config."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgherd",
            "agent",
            "unit",
            "--node",
            node,
            "--config",
            str(config_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return Unit.parse(done.stdout)


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

    def reload(self) -> None:
        """systemctl reload: ExecReload=/bin/kill -HUP $MAINPID."""
        self.proc.send_signal(signal.SIGHUP)

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
    unit: Unit,
    node: NodeConfig,
    user: osuser.OsUser,
    netns: str | None = None,
    on: Callable[..., list[str]] | None = None,
) -> Agent:
    """The unit's ``ExecStart=`` as its ``User=``, in the network namespace ``netns``, or
    as ``on`` runs a program (a test host's ``argv``: its namespace and control groups)."""
    assert unit.user == user.name, f"the unit runs the agent as {unit.user}, not {user.name}"
    user.make_dir(node.home_dir)
    argv = [*as_user(user), *unit.exec_start]
    if on is not None:
        argv = on(*argv)
    elif netns is not None:
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
            umask=unit.umask,
        )
    finally:
        os.close(log)
    return Agent(node, proc)
