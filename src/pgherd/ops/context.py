"""What every operation needs: the cluster's config, clients for its agents, a fresh
snapshot of the nodes, timed steps reported as they finish, and the event log."""

from __future__ import annotations

import contextlib
import getpass
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pgherd.clients.ops import OpsClient
from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError, Refused, TimedOut
from pgherd.model.checks import streaming_from
from pgherd.model.events import EventLog
from pgherd.model.status import NodeStatus
from pgherd.ops.events import named_statuses


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    detail: str = ""
    ok: bool = True

    def as_json(self) -> dict[str, object]:
        return {
            "step": self.name,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
            "ok": self.ok,
        }


class StepReporter(Protocol):
    def step_done(self, step: Step) -> None: ...


class QuietSteps:
    def step_done(self, step: Step) -> None:
        pass


def requested_by() -> str:
    """Who asks: ``user@host`` of the process that runs the operation."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"


@dataclass
class Operation:
    """One run of an operation against a cluster."""

    config: ClusterConfig
    token: str
    events: EventLog
    reporter: StepReporter = field(default_factory=QuietSteps)
    requested_by: str = field(default_factory=requested_by)
    steps: list[Step] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def client(self, name: str, timeout: float = 10.0) -> OpsClient:
        return OpsClient(self.config.node(name), self.token, timeout=timeout)

    def snapshot(self) -> list[NodeStatus]:
        return named_statuses(self.config)

    def node_at(self, host: str | None, port: int | None) -> str | None:
        node = self.config.node_at(host, port)
        return node.name if node else None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; the body may set ``detail``. A failing step is recorded, then raised."""
        current = Step(name)
        began = time.monotonic()
        try:
            yield current
        except BaseException as exc:
            current.ok = False
            if isinstance(exc, PgherdError) and not current.detail:
                current.detail = exc.message
            raise
        finally:
            current.seconds = time.monotonic() - began
            self.steps.append(current)
            self.reporter.step_done(current)

    def wait_streaming(
        self, names: Sequence[str], upstream: str, timeout: float = 60
    ) -> list[NodeStatus]:
        """Wait until every node in ``names`` streams from ``upstream``."""
        deadline = time.monotonic() + timeout
        waiting = list(names)
        while True:
            current = self.snapshot()
            by = {s.name: s for s in current}
            waiting = [n for n in names if not streaming_from(by[n], upstream, self.node_at)]
            if not waiting:
                return current
            if time.monotonic() >= deadline:
                raise TimedOut(
                    f"{', '.join(waiting)} not streaming from {upstream} after {timeout:.0f} s",
                    f"see their postgresql.log; pgherd doctor {waiting[0]}",
                )
            time.sleep(0.1)

    def drop_slot(self, node: str, slot: str, wait: float = 10) -> bool:
        """Drop a slot nobody should use any more, waiting a moment for a walsender that is
        still exiting to let go of it. False when the slot did not exist."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self.client(node).drop_slot(slot).changed
            except Refused:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)


def best_effort(call: Callable[[], object]) -> str | None:
    """Run a clean-up step; the error's text if it failed (the caller reports it)."""
    try:
        call()
    except PgherdError as exc:
        return exc.one_line()
    return None
