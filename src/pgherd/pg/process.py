"""Processes, the way they behave on these machines.

PID 1 here does not reap orphans: a postmaster whose parent went away becomes a zombie
when it dies, and ``kill -0`` still succeeds on a zombie. Liveness is therefore read from
``/proc/PID/stat`` and a zombie counts as dead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from pgherd.pg.run import AsUser

# A child this process started (and reaps): the postmaster, an apply worker, etcd.
Child = subprocess.Popen[bytes]

AGENT_PROCESS_NAME = b"pgherd-agent"  # what `ps -o comm` and /proc/PID/comm show for agents


def set_process_name(name: bytes) -> None:
    """Name this process (prctl PR_SET_NAME) so lab down and ps can tell pgherd's processes
    apart (agents, witnesses, mesh apply workers)."""
    pr_set_name = 15
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_name, ctypes.c_char_p(name), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stop_with_parent(sig: int = signal.SIGTERM) -> None:
    """prctl(PR_SET_PDEATHSIG): this process gets ``sig`` when its parent dies."""
    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def pdeathsig_prefix(sig: str) -> list[str]:
    """``setpriv --pdeathsig SIG --`` (util-linux): the program gets SIG when the thread that
    started it exits (with the agent, even killed); nothing where setpriv is missing. Run it
    after any switch of user: a change of credentials clears the parent-death signal."""
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
    return [setpriv, "--pdeathsig", sig, "--"] if setpriv else []


def proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat (``R``, ``S``, ``Z``…), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return stat[stat.rindex(")") + 2 :].split(" ", 1)[0]


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(stat[stat.rindex(")") + 2 :].split(" ")[1])


def own_age() -> float | None:
    """Seconds since this process was started (exec'd), to the kernel's clock tick
    (10 ms): what a command spent starting up before its first line ran. None where
    /proc does not tell."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split(" ")[19])  # field 22: starttime
        started = ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)


def is_alive(pid: int) -> bool:
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def command_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def title_segment(title: str) -> str | None:
    """The WAL segment named in a startup process's title ("postgres: [CLUSTER: ]startup
    recovering 000000010000000A000000F3[ waiting]"), or None for any other title."""
    words = title.split()
    try:
        at = words.index("recovering")
    except ValueError:
        return None
    if "startup" not in words[:at] or at + 1 >= len(words):
        return None
    segment = words[at + 1]
    return segment if len(segment) == 24 else None


def running_pids() -> list[int]:
    """The PIDs /proc lists now (some may be gone by the time they are read)."""
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is ``pid`` now, zombies included."""
    return [child for child in running_pids() if parent_pid(child) == pid]


def command_line(pid: int) -> list[bytes] | None:
    """The arguments of ``pid`` from /proc/PID/cmdline (a process that set its title,
    as PostgreSQL's do, shows the title there); None when it is gone or unreadable."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def recovering_segment(postmaster: int) -> str | None:
    """The WAL segment the startup process of ``postmaster`` is replaying, from its process
    title (PostgreSQL updates it at each segment); None when no child of it replays.
    Progress of a recovery that does not take connections yet: a standby rewound or
    cloned from a busy primary replays for minutes before it is consistent."""
    for child in children_of(postmaster):
        argv = command_line(child)
        if argv is None:
            continue
        segment = title_segment(b" ".join(argv).decode(errors="replace"))
        if segment is not None:
            return segment
    return None


def working_in(directory: Path, programs: tuple[str, ...], uid: int) -> list[int]:
    """Live processes of ``uid`` running one of ``programs`` with ``directory`` on their
    command line: what still writes into a data directory (an initdb, a pg_basebackup and
    its WAL-streaming child, which shares its command line) after its parent died."""
    found = []
    target = str(directory)
    for pid in running_pids():
        try:
            if Path(f"/proc/{pid}").stat().st_uid != uid:
                continue
        except OSError:
            continue
        argv = command_line(pid)
        if argv is None:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if not words or Path(words[0]).name not in programs:
            continue
        if any(w == target or w.endswith("=" + target) for w in words) and is_alive(pid):
            found.append(pid)
    return found


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` is dead (or a zombie); True if it went within ``timeout``."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        reap(pid)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    reap(pid)
    return True


def reap(pid: int) -> None:
    """Collect ``pid`` if it is our zombie child (as a subreaper we inherit orphans)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def signal_pid(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def become_subreaper() -> bool:
    """Adopt our orphaned descendants (prctl PR_SET_CHILD_SUBREAPER) so we can reap them.

    Used by the test suite, which starts agents through ``pgherd lab up``: when that
    command exits, its agents become our children instead of PID 1's, which never reaps.
    """
    pr_set_child_subreaper = 36
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_zombie_children() -> list[int]:
    """Collect every zombie child of ours; returns their PIDs."""
    reaped = []
    for pid in children_of(os.getpid()):
        if proc_state(pid) == "Z":
            reap(pid)
            reaped.append(pid)
    return reaped


@dataclass(frozen=True)
class PostmasterPid:
    """The contents of ``postmaster.pid``."""

    pid: int
    data_dir: str
    port: int | None
    socket_dir: str | None
    status: str | None  # "starting", "stopping", "ready", "standby" (PostgreSQL 10+)

    @classmethod
    def parse(cls, text: str) -> PostmasterPid:
        lines = text.splitlines()
        if not lines or not lines[0].strip().lstrip("-").isdigit():
            raise ValueError("postmaster.pid has no PID on its first line")

        def line(n: int) -> str | None:
            return lines[n].strip() if len(lines) > n and lines[n].strip() else None

        port = line(3)
        return cls(
            pid=abs(int(lines[0].strip())),
            data_dir=line(1) or "",
            port=int(port) if port and port.isdigit() else None,
            socket_dir=line(4),
            status=line(7),
        )


def read_postmaster_pid(data_dir: Path) -> PostmasterPid | None:
    try:
        return PostmasterPid.parse((data_dir / "postmaster.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def running_postmaster(data_dir: Path) -> PostmasterPid | None:
    """The live postmaster of ``data_dir``, or None (no pid file, dead or zombie PID)."""
    pm = read_postmaster_pid(data_dir)
    if pm is None or not is_alive(pm.pid):
        return None
    if command_name(pm.pid) not in ("postgres", "postmaster"):
        return None  # the PID was reused by something else
    return pm


def spawn_logged(
    argv: Sequence[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = True,
    pass_fds: Sequence[int] = (),
    **as_user: Unpack[AsUser],
) -> Child:
    """Start ``argv`` in a session of its own (unless ``new_session`` is False), its input
    closed and its output appended to ``log_file`` (created 0600): a postmaster, an agent,
    an apply worker, etcd. The caller reaps it (or leaves it, detached, as the lab does
    with agents)."""
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            env=env,
            cwd=cwd,
            start_new_session=new_session,
            pass_fds=tuple(pass_fds),
            **as_user,
        )
    finally:
        os.close(fd)


def wait_child(child: Child, timeout: float) -> bool:
    """Whether ``child`` exited (and was reaped) within ``timeout`` seconds."""
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def stop_child(child: Child, timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send ``child`` ``sig``; past ``timeout`` seconds, kill it. Reaped either way."""
    child.send_signal(sig)
    if not wait_child(child, timeout):
        child.kill()
        child.wait(5)


def run_here(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, capture: bool = True
) -> tuple[int, str]:
    """Run ``argv`` to its end as this process's user (a shell of the lab tour): its exit
    code and, when ``capture``, what it printed (stdout and stderr together); else its
    output goes to ours, on the terminal."""
    done = subprocess.run(
        list(argv),
        env=dict(env),
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout or ""
