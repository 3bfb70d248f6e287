"""The watchdog device (``ha.watchdog``), driven by the agent's fence: armed while this
node may take writes, pinged as its lease moves on, closed with the magic character when
it may not (the rules are model/watchdog.py's).

Linux's watchdog API (Documentation/watchdog/watchdog-api.rst): opening the device starts
the timer; any write other than ``V`` pings it; ``WDIOC_SETTIMEOUT`` sets its timeout in
whole seconds (the driver may round it: the value it answers is the one in force, and one
longer than asked is refused, since it would let the machine run past the lease);
writing ``V`` then closing stops it (drivers with ``nowayout`` keep running: then the
machine resets after the timeout whatever the agent does, which the operator chose).

A FIFO at the configured path is taken as a stand-in (the fault suite's fake device: a
test process reads it and plays the watchdog): the same bytes are written to it, no
ioctl is sent, and the timeout is the one pgherd would set. Nothing resets a machine
through a FIFO: never use one in production.

A device that cannot be armed makes the node unfit to lead (model/ha.py): a standby does
not take over, a leader demotes, until arming works again (tried again after
``RETRY_AFTER`` seconds, or as soon as the device can be opened for writing).
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pgherd.errors import PgherdError
from pgherd.model.watchdog import Dog, order

log = logging.getLogger("pgherd.ha")

# linux/watchdog.h: _IOWR('W', 6, int), _IOR('W', 7, int)
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707
RETRY_AFTER = 30.0  # seconds before a device that could not be armed is tried again


class WatchdogError(PgherdError):
    """The watchdog device could not be armed, pinged or set."""


class Watchdog:
    """One device, for one agent. Thread-safe (the HA loop and the fence thread)."""

    def __init__(self, path: Path, timeout: int, clock: Callable[[], float]) -> None:
        self.path = path
        self.timeout = timeout
        self._clock = clock
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self.problem: str | None = None  # why it could not be armed, lately
        self.pings = 0

    @property
    def armed(self) -> bool:
        return self._fd is not None

    def follow(self, writes_until: float | None) -> Dog:
        """Arm, ping or disarm the device for a node that may take writes until
        ``writes_until`` (None: it may not); returns what was done. Raises WatchdogError
        when arming failed."""
        with self._lock:
            now = self._clock()
            do = order(self._fd is not None, writes_until, now, self.timeout)
            if do is Dog.ARM:
                self._arm(now)
                self._ping()
            elif do is Dog.PING:
                self._ping()
            elif do is Dog.DISARM:
                self._disarm()
            return do

    def unfit(self) -> str | None:
        """Why this node may not lead now (its watchdog cannot be armed), or None."""
        with self._lock:
            if self._fd is not None:
                return None
            failed_at = self._failed_at
            recent = failed_at is not None and self._clock() - failed_at < RETRY_AFTER
            if self.problem is not None and recent:
                return self.problem
            found = _probe(self.path)
            if found is None:
                self.problem = None
            return found

    def close(self) -> None:
        """The agent stops cleanly: the magic close."""
        with self._lock:
            self._disarm()

    # ---- the device ------------------------------------------------------------------

    def _arm(self, now: float) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            self._fail(now, f"cannot open {self.path}: {exc.strerror}")
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                self._set_timeout(fd)
        except WatchdogError as exc:
            self._close_magic(fd)
            self._fail(now, exc.message)
        self._fd = fd
        self.problem = self._failed_at = None
        log.info(
            "watchdog %s armed: it resets this machine %d s after a missed ping",
            self.path,
            self.timeout,
        )

    def _set_timeout(self, fd: int) -> None:
        asked = array.array("i", [self.timeout])
        try:
            fcntl.ioctl(fd, WDIOC_SETTIMEOUT, asked, True)
        except OSError as exc:
            raise WatchdogError(
                f"{self.path} does not take a timeout ({exc.strerror})",
                "use a device whose driver supports WDIOC_SETTIMEOUT (softdog does)",
            ) from None
        found = array.array("i", [0])
        try:
            fcntl.ioctl(fd, WDIOC_GETTIMEOUT, found, True)
        except OSError:
            found = asked
        if found[0] > self.timeout:
            raise WatchdogError(
                f"{self.path} runs with a {found[0]} s timeout, longer than the {self.timeout} s "
                "the lease allows",
                "use a device that takes shorter timeouts, or a longer ha.ttl",
            )

    def _ping(self) -> None:
        assert self._fd is not None
        try:
            os.write(self._fd, b"1")
        except OSError as exc:
            log.warning("watchdog %s: ping failed: %s", self.path, exc.strerror)
            return
        self.pings += 1

    def _disarm(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        self._close_magic(fd)
        log.info("watchdog %s disarmed (magic close)", self.path)

    @staticmethod
    def _close_magic(fd: int) -> None:
        try:
            os.write(fd, b"V")
        except OSError as exc:
            log.warning(
                "watchdog: the magic close failed (%s): it may reset this machine", exc.strerror
            )
        finally:
            os.close(fd)

    def _fail(self, now: float, why: str) -> NoReturn:
        self.problem, self._failed_at = why, now
        raise WatchdogError(why, "the node may not lead until its watchdog can be armed")


def _probe(path: Path) -> str | None:
    """Why ``path`` cannot be a watchdog to arm, found without opening it (opening a real
    device arms it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"{path}: {exc.strerror} (load softdog, or fix ha.watchdog)"
    if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return f"{path} is not a character device"
    if not os.access(path, os.W_OK):
        return f"{path} is not writable by this agent's user (give it a udev rule or a group)"
    return None
