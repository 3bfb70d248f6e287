"""The postmaster's keeper: a small process between an agent and its PostgreSQL, so that
the agent can stop and start again (an upgrade, ``systemctl restart``, a crash) while
PostgreSQL runs on — and a primary still never outlives its lease when no agent is there.

The agent starts one keeper per postmaster start, in a session of its own, as the
PostgreSQL OS user. The keeper starts ``postgres`` as its own child with a parent-death
signal (a killed keeper takes PostgreSQL down: immediate shutdown), tells the agent the
postmaster's PID on a pipe, reaps it (PID 1 does not reap orphans on these machines), and
exits with its status when it exits: killed by a signal, it kills itself with the same
signal, so the agent that started it sees the code it would have seen as the parent.

**The fence.** The agent publishes in a small file until when its node may take writes —
monotonic seconds (CLOCK_MONOTONIC is one clock for every process of a host), the moment
its own fence thread would stop PostgreSQL (ha/fence.py) — or ``none`` when nothing needs
fencing (a standby, manual failover). The keeper reads it every ``POLL`` seconds and
stops PostgreSQL at once (SIGQUIT, immediate shutdown) when that moment passes. While the
agent lives, both watch the same moment; when the agent is gone (killed, or stopped), the
keeper alone does, so a primary whose agent is not back in time stops taking writes
before its lease can expire and a standby take over. An agent that comes back in time
adopts the running postmaster and renews the lease (docs/failover.md).

**Signals.** SIGTERM, which systemd's shutdown sends every process, becomes a fast
shutdown (PostgreSQL reads SIGTERM as a smart one, which waits for every client to
leave); SIGINT, SIGQUIT and SIGHUP are passed on as they are.

Only the standard library and pgherd.pg.process are imported: a keeper starts in ~50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pgherd.pg import process

POLL = 0.05  # seconds between two looks at the fence file
KEEPER_PROCESS_NAME = b"pgherd-keeper"
# Where the fence was published before it moved to tmpfs, and where it still goes when
# tmpfs cannot be used: the node's socket directory (<home>/run), on the data disk.
FENCE_FILE = "pgherd.fence"
# The fence on tmpfs: /dev/shm/pgherd-<uid of the PostgreSQL OS user>/<digest>.fence.
# /dev/shm is the host's even under the agent's unit (PrivateDevices= binds it in, and
# PostgreSQL keeps its dynamic shared memory there), so an agent started again writes
# where the keeper left running by the previous one reads.
FENCE_ROOT = Path("/dev/shm")  # noqa: S108 (a 0700 directory, checked: fence_dir)

# What the keeper sends the postmaster for each signal it receives.
PASSED_ON = {
    signal.SIGTERM: signal.SIGINT,  # fast, not smart: nobody waits at a shutdown for clients
    signal.SIGINT: signal.SIGINT,
    signal.SIGQUIT: signal.SIGQUIT,
    signal.SIGHUP: signal.SIGHUP,
}


# ---- the fence file (written by the agent, read by the keeper) -------------------------


def write_fence(
    path: Path, at: float | None, uid: int | None = None, gid: int | None = None
) -> None:
    """Publish the fence moment (monotonic seconds; None: nothing to fence), atomically.
    Not fsynced: it is rewritten at every lease renewal and means nothing after a reboot."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    text = "none\n" if at is None else f"{at:.3f}\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    try:
        if uid is not None and os.geteuid() == 0:
            os.chown(tmp, uid, gid if gid is not None else -1)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fence_dir(uid: int, gid: int, root: Path | None = None) -> Path | None:
    """The tmpfs directory for the fence files of the OS user ``uid``, made if missing;
    None when it cannot be trusted or made.

    Why tmpfs: the agent rewrites the fence at every lease renewal. On the data disk a
    write stalled for seconds under load (the fault suite throttled it to 20 writes a
    second), so the keeper read a deadline that had been renewed already and stopped a
    healthy primary (docs/reliability.md, finding 12). /dev/shm is shared by every
    user: the directory is used only if it is a real directory (not a link) owned by
    ``uid`` and closed to everybody else, so nobody else can plant or change a fence."""
    directory = (FENCE_ROOT if root is None else root) / f"pgherd-{uid}"
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    else:
        if os.geteuid() == 0 and uid != 0:
            try:
                os.chown(directory, uid, gid)
            except OSError:
                return None
    try:
        found = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != uid or found.st_mode & 0o077:
        return None
    return directory


def fence_name(data_dir: Path) -> str:
    """The fence file's name for the server of ``data_dir``: one per data directory, so
    that the nodes of one host (a lab) never share one."""
    import hashlib  # the keeper itself never needs it

    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16] + ".fence"


def tmpfs_fence_file(data_dir: Path, uid: int) -> Path:
    """Where the fence of the server of ``data_dir`` is published on tmpfs, when
    ``fence_dir`` trusts the directory of ``uid`` (the PostgreSQL OS user)."""
    return FENCE_ROOT / f"pgherd-{uid}" / fence_name(data_dir)


def forget_fence(data_dir: Path, uid: int) -> None:
    """Remove the tmpfs fence file of a data directory that is being removed (lab down
    --purge): tmpfs keeps it until the next boot otherwise."""
    tmpfs_fence_file(data_dir, uid).unlink(missing_ok=True)


@dataclass(frozen=True)
class KeeperOf:
    """What keeps a running postmaster: a keeper reading ``fence`` (``known``), no keeper
    (started by hand or pg_ctl: ``fence`` None, ``known``), or not known (``/proc``
    unreadable)."""

    fence: Path | None
    known: bool


def keeper_of(postmaster: int) -> KeeperOf:
    """Which fence file the keeper of ``postmaster`` reads, from its command line: an
    agent that adopts a running server writes where its keeper reads, which is the
    socket directory for a keeper an earlier pgherd started."""
    parent = process.parent_pid(postmaster)
    if parent is None:
        return KeeperOf(None, known=False)
    argv = process.command_line(parent)
    if argv is None:
        return KeeperOf(None, known=False)
    if b"pgherd.pg.keeper" not in argv:
        return KeeperOf(None, known=True)
    try:
        return KeeperOf(Path(os.fsdecode(argv[argv.index(b"--fence") + 1])), known=True)
    except (ValueError, IndexError):
        return KeeperOf(None, known=False)


def read_fence(path: Path) -> float | None:
    """The published fence moment; None when there is none (or no readable file)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def command(python: str, fence_file: Path, report_fd: int, postgres_argv: list[str]) -> list[str]:
    """How the agent starts a keeper for ``postgres_argv``."""
    return [
        python,
        "-I",  # no PYTHON* variables, no user site: only the installed pgherd
        "-m",
        "pgherd.pg.keeper",
        "--fence",
        str(fence_file),
        "--report-fd",
        str(report_fd),
        "--",
        *postgres_argv,
    ]


# ---- the keeper process ----------------------------------------------------------------


def _say(text: str) -> None:
    """A line in the server log (the keeper's stderr is PostgreSQL's log file)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    sys.stderr.write(f"{stamp} [{os.getpid()}] pgherd keeper: {text}\n")
    sys.stderr.flush()


def _die_with_keeper() -> None:
    """In the child, before exec: SIGQUIT (immediate shutdown) when the keeper dies."""
    keeper = os.getppid()
    process.stop_with_parent(signal.SIGQUIT)
    if os.getppid() != keeper:  # the keeper died before the line above
        os.kill(os.getpid(), signal.SIGQUIT)


def _report(fd: int, pid: int) -> None:
    """Tell the agent the postmaster's PID (it may be gone already: never mind)."""
    with contextlib.suppress(OSError):
        os.write(fd, f"{pid}\n".encode())
    with contextlib.suppress(OSError):
        os.close(fd)


def keep(postgres_argv: list[str], fence_file: Path, report_fd: int) -> int:
    """Run the postmaster until it exits; returns its ``returncode``."""
    running: list[subprocess.Popen[bytes]] = []

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, PASSED_ON[signal.Signals(signum)])

    # Before the fork: a SIGTERM must never kill the keeper and, with it, PostgreSQL.
    for received in PASSED_ON:
        signal.signal(received, pass_on)
    # preexec_fn is safe here: the keeper has a single thread.
    child = subprocess.Popen(postgres_argv, preexec_fn=_die_with_keeper, close_fds=True)
    running.append(child)
    _report(report_fd, child.pid)
    fenced = False
    while True:
        try:
            return child.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            pass
        at = read_fence(fence_file)
        if at is not None and not fenced and time.monotonic() >= at:
            _say(
                "fencing: the agent did not renew the lease in time (it is gone or stuck): "
                "immediate shutdown, before the lease can expire and a standby take over"
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGQUIT)
            fenced = True


def exit_like(returncode: int) -> None:
    """Exit the way the postmaster did: with its code, or killed by its signal."""
    if returncode >= 0:
        sys.exit(returncode)
    sig = -returncode
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGQUIT/SIGABRT would dump a core
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    sys.exit(128 + sig)  # a signal that does not end the process (cannot happen here)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pgherd-keeper", description=__doc__)
    parser.add_argument("--fence", type=Path, required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("postgres", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    postgres_argv = args.postgres[1:] if args.postgres[:1] == ["--"] else args.postgres
    if not postgres_argv:
        parser.error("the postgres command line is missing after --")
    process.set_process_name(KEEPER_PROCESS_NAME)
    exit_like(keep(postgres_argv, args.fence, args.report_fd))


if __name__ == "__main__":
    main()
