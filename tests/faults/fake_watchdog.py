"""A fake watchdog device for the fault suite: a FIFO at the node's ``watchdog`` path that
the agent writes to as to /dev/watchdog (pgherd takes a FIFO for a stand-in:
ha/watchdog.py), read by a thread here that plays the device. It records what the agent
did (armed, each ping, the magic close, a close without it) and, like softdog, resets the
machine when it is armed and no ping came for its timeout: every process of the node's
host is killed at once, and the host boots again a few seconds later (as after a reset).
The events carry the machine's wall clock, as the fault suite's history does.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pgherd.pg import osuser

POLL = 0.02


class Happened(StrEnum):
    ARMED = "armed"
    PING = "ping"
    DISARMED = "disarmed"  # "V", then closed
    CLOSED = "closed without the magic character"  # the timer keeps running
    RESET = "reset"  # no ping for the timeout: the machine is reset


@dataclass(frozen=True)
class Event:
    at: float
    what: Happened


@dataclass
class FakeWatchdog:
    path: Path
    timeout: float
    on_reset: Callable[[], None]
    events: list[Event] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, owner: osuser.OsUser) -> None:
        self.path.unlink(missing_ok=True)
        os.mkfifo(self.path, 0o600)
        os.chown(self.path, owner.uid, owner.gid)
        self._thread = threading.Thread(target=self._serve, name=f"watchdog {self.path.name}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.path.unlink(missing_ok=True)

    def seen(self, what: Happened, since: float = 0.0) -> list[float]:
        return [e.at for e in list(self.events) if e.what is what and e.at >= since]

    def _note(self, what: Happened) -> None:
        self.events.append(Event(time.time(), what))

    def _serve(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        running = False  # the timer runs (armed, or closed without "V")
        open_now = False  # a writer holds the device
        magic = False
        last = 0.0
        try:
            while not self._stop.wait(POLL):
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    data = None  # a writer holds it, nothing written
                if data:
                    for byte in data:
                        if byte == ord("V"):
                            magic = True
                            continue
                        magic = False
                        if not open_now:
                            open_now = running = True
                            self._note(Happened.ARMED)
                        last = time.monotonic()
                        self._note(Happened.PING)
                elif data == b"" and open_now:  # the writer closed it
                    open_now = False
                    if magic:
                        running = False
                        self._note(Happened.DISARMED)
                    else:
                        self._note(Happened.CLOSED)
                    magic = False
                if running and time.monotonic() - last > self.timeout:
                    running = open_now = False
                    self._note(Happened.RESET)
                    with contextlib.suppress(Exception):
                        self.on_reset()
        finally:
            os.close(fd)
