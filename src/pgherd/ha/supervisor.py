"""Keeping one PostgreSQL server in the state the agent was told.

The postmaster runs as the agent's own child (not through ``pg_ctl start``): PID 1 does
not reap orphans here, so a postmaster started by pg_ctl would linger as a zombie after a
crash and block the next start; as our child it is reaped by us and its death is seen at
once. A postmaster already running when the agent starts (the agent was restarted) is
adopted and watched through /proc.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from pgherd.errors import PgherdError, Refused
from pgherd.model.status import Desired, PgState
from pgherd.pg import process
from pgherd.pg.instance import Instance
from pgherd.pg.run import popen_kwargs, program_env

log = logging.getLogger(__name__)

# PostgreSQL's shutdown modes and the signal that requests each.
SHUTDOWN_SIGNALS = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


@dataclass
class Backoff:
    """Seconds to wait before the next restart after a crash: none the first time, then
    2, 4, 8… up to ``limit``; back to none once the server ran ``stable_after`` seconds."""

    limit: float = 30.0
    stable_after: float = 60.0
    failures: int = 0
    last_start: float = field(default=0.0)

    def next_delay(self, now: float) -> float:
        if now - self.last_start > self.stable_after:
            self.failures = 0
        delay = min(2.0**self.failures, self.limit) if self.failures else 0.0
        self.failures += 1
        return delay


class Supervisor:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.desired = Desired.RUNNING
        self.restarts = 0
        self.last_error: str | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._adopted: int | None = None
        self._stopping = False
        self._crashed_at: float | None = None
        self._backoff = Backoff()
        self._lock = threading.RLock()

    # ---- what is running ---------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        with self._lock:
            if self._child is not None and self._child.poll() is None:
                return self._child.pid
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
        with self._lock:
            self._adopted = pm.pid
        log.info("adopted the running postmaster (pid %d)", pm.pid)
        return True

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
            child = self._child
        assert child is not None
        try:
            self.instance.wait_ready(timeout, check_alive=child.pid)
        except Exception as exc:
            self.last_error = str(exc)
            raise
        self.last_error = None

    def _spawn(self) -> None:
        self.instance.prepare_start()
        logfile = self.instance.log_file
        fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.instance.user.chown(logfile)
            self._child = subprocess.Popen(
                self.instance.postgres_argv(),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                env=program_env(self.instance.user),
                cwd=self.instance.data_dir,
                start_new_session=True,
                **popen_kwargs(self.instance.user),
            )
        finally:
            os.close(fd)
        self._adopted = None
        self._crashed_at = None
        self._backoff.last_start = time.monotonic()
        log.info("started postgres (pid %d)", self._child.pid)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Shut down (``fast``: roll back sessions, shutdown checkpoint); escalate on timeout."""
        with self._lock:
            self.desired = Desired.STOPPED
            self._crashed_at = None
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

    def restart(self, timeout: float = 60) -> None:
        self.stop(timeout=timeout)
        self.start(timeout=timeout)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        child = self._child
        if child is not None and child.pid == pid:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
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
            now = time.monotonic()
            if self._crashed_at is None:
                code = self._child.returncode if self._child is not None else None
                self._crashed_at = now
                self._delay = self._backoff.next_delay(now)
                self.last_error = f"postgres exited unexpectedly (code {code})"
                return f"{self.last_error}; restarting in {self._delay:.0f} s"
            if now - self._crashed_at < self._delay:
                return None
            self.restarts += 1
            # Counted as a start even if it fails, so failures keep backing off.
            self._backoff.last_start = now
            try:
                self._spawn()
            except (OSError, PgherdError) as exc:
                self.last_error = f"could not start postgres: {exc}"
                self._crashed_at = now
                self._delay = self._backoff.next_delay(now)
                return self.last_error
            return f"restarted postgres after a crash (restart #{self.restarts})"
