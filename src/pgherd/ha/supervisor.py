"""Keeping one PostgreSQL server in the state the agent was told.

The postmaster is not started through ``pg_ctl start``: PID 1 does not reap orphans here,
so a postmaster started by pg_ctl would linger as a zombie after a crash and block the
next start. Nor is it the agent's own child: it is the child of a *keeper*
(pg/keeper.py), a small process the agent starts for it, which reaps it, takes it down
with itself if killed, and outlives the agent — so that stopping or restarting the agent
(``systemctl restart``, an upgrade of pgherd) never restarts PostgreSQL. The keeper is
the agent's child: its exit (right after the postmaster's) is seen at once. A postmaster
already running when the agent starts (the agent was restarted) is adopted and watched
through a pidfd (its exit seen at once too) and /proc.

Under automatic failover the HA loop publishes, through :meth:`Supervisor.set_fence`,
until when this node may take writes; the keeper stops PostgreSQL at that moment if no
agent renewed the lease by then (docs/failover.md, "When the agent stops or dies").

The supervisor remembers the system identifier of the cluster it first started or adopted
and refuses to start another one found later at the same path (a lab directory deleted and
created again under a running agent).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from pgherd.errors import PgherdError, Refused
from pgherd.ha.clock import SYSTEM, Clock
from pgherd.model.backoff import Backoff
from pgherd.model.status import Desired, PgState
from pgherd.pg import keeper, process
from pgherd.pg.controldata import read_system_identifier
from pgherd.pg.instance import Instance

log = logging.getLogger(__name__)

# PostgreSQL's shutdown modes and the signal that requests each.
SHUTDOWN_SIGNALS = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}

KEEPER_REPORT_TIMEOUT = 30.0  # seconds for a keeper to say it started the postmaster


class Supervisor:
    def __init__(
        self, instance: Instance, auto_restart: bool = True, clock: Clock = SYSTEM
    ) -> None:
        self.instance = instance
        self.clock = clock  # crash times and backoff (ha/clock.py)
        self.desired = Desired.RUNNING
        self.restarts = 0
        self.last_error: str | None = None
        # False under automatic failover: the HA loop decides whether and how a server
        # that died comes back (a primary without its lease must not).
        self.auto_restart = auto_restart
        self.system_identifier: str | None = None
        self.ran = False  # a postmaster ran under this agent (started or adopted)
        self._child: process.Child | None = None  # the keeper we started
        self._postmaster: int | None = None  # its postmaster
        self._adopted: int | None = None  # a postmaster found running at boot
        self._stopping = False
        self._crashed_at: float | None = None
        self._down_since: float | None = None  # down while it should run (boot, fencing)
        # When it went down, while it starts again after a crash or a fence (not a boot).
        self._back_since: float | None = None
        self._delay = 0.0
        self._backoff = Backoff()
        self._closed = False  # the agent got its stop signal: it starts nothing any more
        self._lock = threading.RLock()
        self.on_exit: Callable[[], None] | None = None  # told at once when the server exits
        # Until when PostgreSQL may take writes (monotonic), as the HA loop last published
        # it; None: nothing to fence (a standby, manual failover).
        self._fence_at: float | None = None
        self._fence_lock = threading.Lock()
        # What post_fence asked for, not yet written (a slow disk holds set_fence up).
        self._posted: tuple[int, float | None] | None = None  # (sequence, value)
        self._seq = 0  # every value set or posted, in order
        self._written_seq = 0  # the newest one written
        self._post_lock = threading.Lock()
        self._post_wake = threading.Event()
        self._poster: threading.Thread | None = None
        # Where the fence goes: the file the keeper of the running postmaster reads (on
        # tmpfs for one this agent started; both places when that is not known).
        self._fence_files: tuple[Path, ...] | None = None
        self._own_fence: Path | None = None  # the file a keeper this agent starts reads

    # ---- what is running ---------------------------------------------------------------

    @property
    def fence_file(self) -> Path:
        """The fence file a keeper this agent starts reads."""
        return self._fence_written()[0]

    def _fence_written(self) -> tuple[Path, ...]:
        if self._fence_files is None:
            self._fence_files = (self._own_fence_file(),)
        return self._fence_files

    def _own_fence_file(self) -> Path:
        """On tmpfs (pg/keeper.py's fence_dir says why); in the socket directory, on the
        data disk, only when tmpfs cannot be trusted. Chosen once per agent (and said
        once): every start and adoption uses the same file."""
        if self._own_fence is None:
            self._own_fence = self._choose_fence_file()
        return self._own_fence

    def _choose_fence_file(self) -> Path:
        user = self.instance.user
        directory = keeper.fence_dir(user.uid, user.gid)
        if directory is None:
            log.warning(
                "the fence deadline goes to %s on the data disk: %s/pgherd-%d is not a "
                "directory of uid %d closed to others; a stalled disk can then make the "
                "keeper stop a primary whose lease was renewed (remove or fix that path)",
                self._home_fence_file(),
                keeper.FENCE_ROOT,
                user.uid,
                user.uid,
            )
            return self._home_fence_file()
        return directory / keeper.fence_name(self.instance.data_dir)

    def _home_fence_file(self) -> Path:
        return self.instance.socket_dir / keeper.FENCE_FILE

    def publish_for_keeper_of(self, postmaster: int) -> None:
        """Write the fence where the keeper of an adopted ``postmaster`` reads it: a keeper
        an earlier pgherd started reads the socket directory's file."""
        own = self._own_fence_file()
        found = keeper.keeper_of(postmaster)
        if found.fence is not None:
            files: tuple[Path, ...] = (found.fence,)
            if found.fence != own:
                log.info(
                    "the keeper of the running postmaster reads its fence at %s (an "
                    "earlier pgherd started it): published there until PostgreSQL restarts",
                    found.fence,
                )
        elif found.known:
            files = (own,)  # no keeper (started by hand): nothing reads it
        else:
            files = (own, self._home_fence_file())
            log.warning(
                "cannot tell which fence file the keeper of postmaster %d reads: "
                "publishing it in both %s and %s",
                postmaster,
                own,
                files[1],
            )
        with self._fence_lock:
            self._fence_files = files

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        with self._lock:
            if self._child is not None and self._child.poll() is None:
                pm = self._postmaster
                return pm if pm is not None and process.is_alive(pm) else None
            if self._adopted is not None and process.is_alive(self._adopted):
                return self._adopted
            return None

    def state(self) -> PgState:
        with self._lock:
            if self.pid is None:
                return PgState.CRASHED if self._crashed_at is not None else PgState.STOPPED
            if self._stopping:
                return PgState.STOPPING
            pm = process.read_postmaster_pid(self.instance.data_dir)
            if pm is not None and pm.status in ("ready", "standby"):
                return PgState.RUNNING
            return PgState.STARTING

    def adopt(self) -> bool:
        """Take over a postmaster that is already running on our data directory."""
        pm = self.instance.postmaster()
        if pm is None:
            return False
        self._check_identity()
        self.publish_for_keeper_of(pm.pid)
        with self._lock:
            self._adopted = pm.pid
            self.ran = True
        if self.auto_restart:
            # Manual failover fences nothing: a deadline an agent under automatic failover
            # left for the keeper must not stop this server.
            self.set_fence(None)
        threading.Thread(
            target=self._watch_adopted, args=(pm.pid,), name="postmaster-exit", daemon=True
        ).start()
        log.info("adopted the running postmaster (pid %d)", pm.pid)
        return True

    def _watch_adopted(self, pid: int) -> None:
        """Say at once when an adopted postmaster exits (a pidfd becomes readable then),
        as the keeper's exit tells for one we started."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return  # gone already, or an old kernel: the watch loop's /proc check sees it
        try:
            select.select([fd], [], [])
        finally:
            os.close(fd)
        callback = self.on_exit
        if callback is not None and self._adopted == pid:
            callback()

    def set_fence(self, at: float | None) -> None:
        """Publish until when PostgreSQL may take writes (monotonic seconds; None: no
        limit) for the keeper, which stops it then if no agent renewed the lease. Written
        before it returns; a value posted earlier and not yet written is not written
        after it."""
        self._write_fence(self._next_seq(), at)

    def post_fence(self, at: float | None) -> None:
        """:meth:`set_fence` without waiting for the disk: the HA loop's lease renewals
        and its fence thread call this, and a data disk stalled for seconds (20 writes a
        second under load, the fault suite found) must not hold them up. A thread writes
        the latest value posted; values posted meanwhile are skipped."""
        seq = self._next_seq()
        with self._post_lock:
            self._posted = (seq, at)
            if self._poster is None:
                self._poster = threading.Thread(
                    target=self._write_posted, name="fence-publisher", daemon=True
                )
                self._poster.start()
        self._post_wake.set()

    def _next_seq(self) -> int:
        with self._post_lock:
            self._seq += 1
            return self._seq

    def _write_posted(self) -> None:
        while True:
            self._post_wake.wait()
            self._post_wake.clear()
            with self._post_lock:
                posted, self._posted = self._posted, None
            if posted is not None:
                self._write_fence(*posted)

    def _write_fence(self, seq: int, at: float | None) -> None:
        with self._fence_lock:
            if seq < self._written_seq:
                return  # a newer value was written meanwhile
            self._written_seq = seq
            self._fence_at = at
            for path in self._fence_written():
                if not path.parent.is_dir():
                    continue  # the node's home is not made yet: no keeper reads it
                try:
                    keeper.write_fence(path, at, self.instance.user.uid, self.instance.user.gid)
                except OSError:
                    log.exception("could not publish the fence deadline for the keeper")

    def _fence_to_start_with(self) -> float | None:
        """The fence for a keeper starting now: one posted and not yet written counts."""
        with self._post_lock:
            posted = self._posted
        return posted[1] if posted is not None else self._fence_at

    def _check_identity(self) -> None:
        """Refuse a data directory whose cluster is not the one this agent started with."""
        found = read_system_identifier(self.instance.data_dir)
        if found is None:
            return
        if self.system_identifier is None:
            self.system_identifier = found
            return
        if found != self.system_identifier:
            self.desired = Desired.STOPPED
            self.last_error = (
                f"refusing to start: {self.instance.data_dir} now holds the cluster with system "
                f"identifier {found}, not {self.system_identifier} that this agent started "
                "with (the data directory was replaced)"
            )
            log.error("%s", self.last_error)
            raise Refused(self.last_error, "restart the agent if the new cluster is intended")

    def down_for(self) -> float | None:
        """Seconds PostgreSQL has been down while it should run (after a crash, since the
        agent started without it, or since it was fenced); None when it runs or should not."""
        with self._lock:
            if self.desired is not Desired.RUNNING or self._stopping or self.pid is not None:
                return None
            self._note_exit()
            since = self._crashed_at if self._crashed_at is not None else self._down_since
            if since is None:
                since = self._down_since = self.clock.monotonic()
            return self.clock.monotonic() - since

    def restarting_for(self) -> float | None:
        """Seconds since PostgreSQL went down, while it starts again after a crash or a
        fence; None once it runs (or is down, or stopped on purpose), and at a boot:
        primary_start_timeout bounds a leader's restart in place (model/ha.py)."""
        with self._lock:
            since = self._back_since
            if since is None or self.desired is not Desired.RUNNING or self.pid is None:
                return None
            if self.state() is PgState.RUNNING:
                self._back_since = None
                return None
            return self.clock.monotonic() - since

    def _note_exit(self) -> None:
        """A postmaster we started has exited while it should run: a crash, with its
        backoff (whichever of the watch loop and the HA loop sees it first)."""
        if self._crashed_at is None and self._down_since is None and self._child is not None:
            now = self.clock.monotonic()
            self._crashed_at = now
            self._delay = self._backoff.next_delay(now)
            self.last_error = f"postgres exited unexpectedly (code {self._child.returncode})"

    def mark_down(self) -> None:
        """PostgreSQL is down but should run (the HA loop decides how it comes back)."""
        with self._lock:
            self.desired = Desired.RUNNING
            if self._down_since is None:
                self._down_since = self.clock.monotonic()

    def close(self) -> None:
        """The agent got SIGTERM: from now on it starts no postmaster. Its shutdown (open
        API requests, then the hand-over) takes a moment, and a start decided in it would
        leave a server nobody asked for — to the next agent, or to a host going down,
        whose shutdown then waits for a process that never got its signal."""
        self._closed = True

    def spawn_when_due(self, urgent: bool = False) -> bool:
        """Start the postmaster now unless it runs or the crash backoff says wait (not when
        ``urgent``: a primary restarting in place, bounded by primary_start_timeout);
        returns whether it was started. Does not wait for it to accept connections."""
        with self._lock:
            if self._closed:
                return False
            if self.pid is not None or not self.instance.exists:
                self.desired = Desired.RUNNING
                return False
            if self.desired is Desired.RUNNING:
                self._note_exit()
            self.desired = Desired.RUNNING
            now = self.clock.monotonic()
            if not urgent and self._crashed_at is not None and now - self._crashed_at < self._delay:
                return False
            if self._crashed_at is not None:
                self.restarts += 1
            self._backoff.last_start = now
            try:
                self._spawn()
            except Refused:
                raise
            except (OSError, PgherdError) as exc:
                self.last_error = f"could not start postgres: {exc}"
                self._crashed_at = now
                self._delay = self._backoff.next_delay(now)
                raise
            return True

    def forget_cluster(self) -> None:
        """The data directory was emptied to hold a new copy (a clone, an initdb): the next
        start adopts whatever cluster is then there as this agent's."""
        with self._lock:
            self.system_identifier = None

    # ---- acting ------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        with self._lock:
            self.desired = Desired.RUNNING
            if self.pid is not None:
                return
            if not self.instance.exists:
                raise Refused(
                    f"{self.instance.data_dir} holds no PostgreSQL cluster",
                    "clone it first: pgherd standby clone --upstream NODE --node NAME",
                )
            self._spawn()
            postmaster = self._postmaster
        assert postmaster is not None
        try:
            self.instance.wait_ready(timeout, check_alive=postmaster)
        except Exception as exc:
            self.last_error = str(exc)
            raise
        self.last_error = None

    def _spawn(self) -> None:
        if self._closed:
            raise Refused("the agent is stopping: it starts no PostgreSQL", "start the agent")
        self._check_identity()
        self.instance.prepare_start()
        at = self._fence_to_start_with()
        own = self._own_fence_file()
        with self._fence_lock:
            self._fence_files = (own,)
            keeper.write_fence(own, at, self.instance.user.uid, self.instance.user.gid)
        if own != self._home_fence_file():  # left by a keeper an earlier pgherd started
            self._home_fence_file().unlink(missing_ok=True)
        child, postmaster = self._popen()
        self._child, self._postmaster = child, postmaster
        threading.Thread(target=self._watch_child, args=(child,), daemon=True).start()
        self._adopted = None
        went_down = self._crashed_at if self._crashed_at is not None else self._down_since
        self._back_since = went_down if self.ran else None  # a boot is not bounded
        self._crashed_at = None
        self._down_since = None
        self.ran = True
        self._backoff.last_start = self.clock.monotonic()
        log.info("started postgres (pid %d, its keeper %d)", postmaster, child.pid)

    def _watch_child(self, child: process.Child) -> None:
        """Wait for the postmaster to exit (reaping it) and say so at once: a crash is seen
        within milliseconds, not at the next watch step."""
        child.wait()
        callback = self.on_exit
        if callback is not None and child is self._child:
            callback()

    def _popen(self) -> tuple[process.Child, int]:
        """Start a keeper for the postmaster; returns it and the postmaster's PID."""
        report_r, report_w = os.pipe()
        try:
            child = self.instance.spawn_kept_postmaster(self.fence_file, report_w)
        finally:
            os.close(report_w)
        try:
            return child, self._postmaster_of(child, report_r)
        finally:
            os.close(report_r)

    def _postmaster_of(self, child: process.Child, report: int) -> int:
        """The PID the keeper reports (a line on the pipe), or why it did not."""
        ready, _, _ = select.select([report], [], [], KEEPER_REPORT_TIMEOUT)
        line = os.read(report, 64).decode().strip() if ready else ""
        if line.isdigit():
            return int(line)
        process.wait_child(child, 1)
        if child.poll() is None:
            child.kill()
            child.wait()
        raise PgherdError(
            f"the keeper of postgres did not start it (exit {child.returncode}): "
            f"{self.instance.log_tail(3) or 'no output'}",
            f"see {self.instance.log_file}",
        )

    def stop(self, mode: str = "fast", timeout: float = 60, restart: bool = False) -> None:
        """Shut down (``fast``: roll back sessions, shutdown checkpoint); escalate on timeout.
        ``restart``: it should run again (the HA loop starts it in place: a primary keeps
        its lease, where a server stopped on purpose would give it up)."""
        with self._lock:
            self.desired = Desired.RUNNING if restart else Desired.STOPPED
            self._crashed_at = None
            self._down_since = self.clock.monotonic() if restart else None
            pid = self.pid
            if pid is None:
                return
            self._stopping = True
        try:
            process.signal_pid(pid, SHUTDOWN_SIGNALS[mode])
            if not self._wait_exit(pid, timeout):
                log.warning("postgres did not stop within %.0f s; immediate shutdown", timeout)
                process.signal_pid(pid, signal.SIGQUIT)
                if not self._wait_exit(pid, 10):
                    process.signal_pid(pid, signal.SIGKILL)
                    self._wait_exit(pid, 10)
        finally:
            with self._lock:
                self._stopping = False
        log.info("stopped postgres (%s)", mode)

    def fence(self, timeout: float = 10) -> None:
        """Stop at once (immediate shutdown: no new commit is acknowledged after the
        signal), and leave the decision how it comes back to the HA loop."""
        self.stop("immediate", timeout=timeout)
        self.mark_down()

    def restart(self, timeout: float = 60) -> None:
        self.stop(timeout=timeout)
        self.start(timeout=timeout)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        child = self._child
        if child is not None and self._postmaster == pid:
            return process.wait_child(child, timeout)
        return process.wait_gone(pid, timeout)

    # ---- watching ----------------------------------------------------------------------

    def tick(self) -> str | None:
        """One watch step: restart a server that died while it should run.

        Returns a sentence for the log when something happened.
        """
        with self._lock:
            if self.desired is not Desired.RUNNING or self._stopping or self.pid is not None:
                return None
            if not self.instance.exists:
                return None
            now = self.clock.monotonic()
            if self._crashed_at is None and self._down_since is None:
                code = self._child.returncode if self._child is not None else None
                self._crashed_at = now
                self._delay = self._backoff.next_delay(now)
                self.last_error = f"postgres exited unexpectedly (code {code})"
                if not self.auto_restart:
                    return f"{self.last_error}; the HA loop decides how it comes back"
                return f"{self.last_error}; restarting in {self._delay:.0f} s"
            if not self.auto_restart or self._crashed_at is None:
                return None
            if now - self._crashed_at < self._delay:
                return None
            self.restarts += 1
            # Counted as a start even if it fails, so failures keep backing off.
            self._backoff.last_start = now
            try:
                self._spawn()
            except Refused as exc:
                return exc.message
            except (OSError, PgherdError) as exc:
                self.last_error = f"could not start postgres: {exc}"
                self._crashed_at = now
                self._delay = self._backoff.next_delay(now)
                return self.last_error
            return f"restarted postgres after a crash (restart #{self.restarts})"
