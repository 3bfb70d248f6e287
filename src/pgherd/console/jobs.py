"""Actions run in the background, one at a time, so that a page can show each step as it
finishes (the same :class:`~pgherd.ops.context.Step` the CLI prints) and the overview
keeps refreshing meanwhile. The orchestration is ``pgherd.ops``, unchanged."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pgherd.clients.archive import ArchiveAgentClient
from pgherd.console.plans import ActionKind, ActionRequest
from pgherd.errors import PgherdError, Refused
from pgherd.model.events import Outcome
from pgherd.ops import follow, promote, rejoin, switchover
from pgherd.ops.context import Operation, Step

KEEP_FINISHED = 50


@dataclass
class Job:
    id: str
    request: ActionRequest
    user: str
    started: float = field(default_factory=time.time)
    steps: list[Step] = field(default_factory=list)
    outcome: Outcome = Outcome.RUNNING  # then succeeded or failed
    message: str = ""
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not Outcome.RUNNING

    def step_done(self, step: Step) -> None:  # StepReporter
        self.steps.append(step)


class Jobs:
    def __init__(self, operation: Callable[[str, Job], Operation]) -> None:
        """``operation(user, job)``: a fresh Operation reporting its steps to ``job``."""
        self._operation = operation
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def running(self) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if not j.done), None)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started, reverse=True)

    def start(self, request: ActionRequest, user: str) -> Job:
        with self._lock:
            busy = next((j for j in self._jobs.values() if not j.done), None)
            if busy is not None:
                raise Refused(
                    f"another action is running: {busy.request.title} (by {busy.user})",
                    "wait for it to finish",
                )
            job = Job(secrets.token_urlsafe(9), request, user)
            self._jobs[job.id] = job
            for old in sorted(self._jobs.values(), key=lambda j: j.started)[:-KEEP_FINISHED]:
                del self._jobs[old.id]
        threading.Thread(target=self._run, args=(job,), name=f"job-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        try:
            job.message = self._execute(job)
            job.outcome = Outcome.SUCCEEDED
        except PgherdError as exc:
            job.message = exc.one_line()
            job.outcome = Outcome.FAILED
        except Exception as exc:  # shown to the operator rather than lost in a thread
            job.message = f"{type(exc).__name__}: {exc}"
            job.outcome = Outcome.FAILED
        finally:
            job.finished = time.time()

    def _execute(self, job: Job) -> str:
        request = job.request
        op = self._operation(job.user, job)
        if request.kind is ActionKind.SWITCHOVER:
            return switchover.switchover(
                op, request.node, siblings_follow=request.siblings_follow
            ).reason
        if request.kind is ActionKind.PROMOTE:
            done = promote.promote(op, request.node)
            return f"{done.node} is the primary on timeline {done.timeline_after}"
        if request.kind is ActionKind.FOLLOW:
            return follow.follow(op, request.node, request.upstream).reason
        if request.kind is ActionKind.REJOIN:
            return rejoin.rejoin(op, request.node).reason
        client = ArchiveAgentClient(op.config.node(request.node), op.token)
        with op.step(f"{request.kind.replace('-', ' ')} on {request.node}") as step:
            if request.kind is ActionKind.PAUSE_REPLAY:
                replay = client.pause_replay()
            else:
                replay = client.resume_replay()
            step.detail = f"replay {replay.pause_state} at {replay.replay_lsn}"
        return f"{request.node}: replay {replay.pause_state}"
