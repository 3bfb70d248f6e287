"""The apply workers a node's agent runs: one per mesh and per other member, each applying
that member's changes INTO this node (the target's agent runs them: it owns the target's
PostgreSQL and sees it restart).

Workers are child processes (``python -m pgherd.mesh.apply``), so that a crash, a
``kill -9`` or a memory leak in one cannot take the agent down, and so that each has a
core of its own. The agent reaps them and restarts them with a backoff (at once, then
2, 4, 5, 5… s: PostgreSQL restarts a failed subscription worker every
wal_retrieve_retry_interval, 5 s by default, and a member back from an outage should be
applied from as soon); a worker stopped by the ``error`` policy (exit 3) is retried
every 30 s only, so that fixing the row (or changing the policy) lets it go on by itself.

A member that is an HA cluster keeps the spec on every node; only the agent whose node is a
running primary runs the workers (model/mesh_members.py): after a failover the new
primary's agent starts them, and an agent whose node turned standby or stopped stops them.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from pgherd.mesh import store
from pgherd.mesh.apply.worker import EXIT_CONFLICT
from pgherd.model.backoff import Backoff
from pgherd.model.mesh import ConflictCount, MeshSpec, MeshWorkerRow, WorkerState
from pgherd.model.mesh_members import local_member, workers_here
from pgherd.pg import process
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.mesh")

CONFLICT_RETRY = 30.0
RESTART_LIMIT = 5.0  # seconds at most between restarts of a worker that keeps failing
STATUS_FRESH = 5.0  # seconds: an older status file says nothing about a running worker


@dataclass
class _Worker:
    mesh: str
    source: str
    member: str  # the member this node serves: itself, or its cluster
    spec_json: str
    proc: process.Child | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(limit=RESTART_LIMIT))
    start_after: float = 0.0
    restarts: int = 0
    exit_code: int | None = None


class MeshWorkers:
    def __init__(self, local: LocalNode, config_path: Path) -> None:
        self.local = local
        self.config_path = config_path.absolute()
        self._workers: dict[tuple[str, str], _Worker] = {}
        self._lock = threading.RLock()

    @property
    def me(self) -> str:
        return self.local.node.name

    def member(self, spec: MeshSpec) -> str | None:
        """The member this node serves in ``spec``: itself, or its cluster."""
        return local_member(spec.nodes, self.me, self.local.config.cluster)

    def wanted(self) -> dict[tuple[str, str], MeshSpec]:
        found: dict[tuple[str, str], MeshSpec] = {}
        for spec in store.load_specs(self.local.node):
            member = self.member(spec)
            if member is not None:
                found |= {(spec.name, source): spec for source in spec.sources_of(member)}
        return found

    def tick(self, postgres_running: bool) -> list[str]:
        """Start, restart and stop workers to match the spec files, on a running primary
        only (a cluster member's standbys keep the spec for when they lead); sentences for
        the log."""
        said: list[str] = []
        now = time.monotonic()
        here = workers_here(postgres_running, self.local.instance.standby_configured)
        with self._lock:
            wanted = self.wanted() if here.run else {}
            for key in list(self._workers):
                if key not in wanted:
                    self._stop(self._workers.pop(key))
                    why = "" if here.run else f": {here.reason}"
                    said.append(f"stopped the apply worker {key[1]} → {self.me} ({key[0]}){why}")
            for key, spec in wanted.items():
                spec_json = spec.model_dump_json()
                worker = self._workers.get(key)
                if worker is None:
                    member = self.member(spec) or self.me
                    worker = self._workers[key] = _Worker(key[0], key[1], member, spec_json)
                elif worker.spec_json != spec_json:
                    self._stop(worker)  # the mesh changed (a node joined): start afresh
                    worker.spec_json, worker.start_after = spec_json, now
                said += self._watch(worker, now)
        return said

    def _watch(self, worker: _Worker, now: float) -> list[str]:
        proc = worker.proc
        if proc is not None:
            code = proc.poll()
            if code is None:
                return []
            worker.proc, worker.exit_code = None, code
            if code == EXIT_CONFLICT:
                worker.start_after = now + CONFLICT_RETRY
                return [
                    f"the apply worker {worker.source} → {self.me} stopped on a conflict "
                    f"(policy error); retrying in {CONFLICT_RETRY:.0f} s"
                ]
            delay = worker.backoff.next_delay(now)
            worker.start_after = now + delay
            return [
                f"the apply worker {worker.source} → {self.me} exited (code {code}); "
                f"restarting in {delay:.0f} s"
            ]
        if now < worker.start_after:
            return []
        self._spawn(worker)
        worker.backoff.last_start = now
        if worker.exit_code is not None:
            worker.restarts += 1
        return [f"started the apply worker {worker.source} → {self.me} ({worker.mesh})"]

    def _spawn(self, worker: _Worker) -> None:
        node = self.local.node
        store.mesh_dir(node).mkdir(mode=0o700, parents=True, exist_ok=True)
        log_file = store.log_path(node, worker.mesh, worker.source)
        argv = [
            sys.executable,
            "-m",
            "pgherd.mesh.apply",
            "--config",
            str(self.config_path),
            "--mesh",
            worker.mesh,
            "--source",
            worker.source,
            "--target",
            self.me,
            "--member",
            worker.member,
        ]
        worker.proc = process.spawn_logged(argv, log_file)

    @staticmethod
    def _stop(worker: _Worker, timeout: float = 10) -> None:
        proc, worker.proc = worker.proc, None
        if proc is None or proc.poll() is not None:
            return
        process.stop_child(proc, timeout)

    def stop_mesh(self, name: str) -> None:
        """Stop the mesh's workers now (before its slots and origins are dropped)."""
        with self._lock:
            for key in [k for k in self._workers if k[0] == name]:
                self._stop(self._workers.pop(key))

    def stop_all(self) -> None:
        with self._lock:
            for worker in self._workers.values():
                self._stop(worker)
            self._workers.clear()

    def rows(self) -> tuple[MeshWorkerRow, ...]:
        with self._lock:
            return tuple(self._row(w) for _key, w in sorted(self._workers.items()))

    def _row(self, worker: _Worker) -> MeshWorkerRow:
        status = store.read_status(self.local.node, worker.mesh, worker.source) or {}
        alive = worker.proc is not None and worker.proc.poll() is None
        fresh = time.time() - float(status.get("updated_at", 0)) < STATUS_FRESH
        if alive:
            reported = status.get("state") if fresh else None
            state = WorkerState(reported) if reported else WorkerState.STARTING
        elif worker.exit_code == EXIT_CONFLICT:
            state = WorkerState.CONFLICT
        elif worker.exit_code is not None:
            state = WorkerState.RESTARTING
        else:
            state = WorkerState.WAITING
        last = status.get("last_conflict")
        last_text = None
        if isinstance(last, dict):
            last_text = f"{last.get('kind')} on {last.get('table')} {last.get('key')}: " + str(
                last.get("resolution")
            )
        return MeshWorkerRow(
            mesh=worker.mesh,
            source=worker.source,
            target=worker.member,
            state=state,
            pid=worker.proc.pid if alive and worker.proc is not None else None,
            restarts=worker.restarts,
            lag_bytes=status.get("lag_bytes") if alive and fresh else None,
            lag_seconds=status.get("lag_seconds") if alive and fresh else None,
            transactions=int(status.get("transactions", 0)),
            rows=int(status.get("rows", 0)),
            conflicts=int(status.get("conflicts", 0)),
            conflict_counts=_conflict_counts(status.get("conflict_counts")),
            last_conflict=last_text,
            error=None if state == "running" else status.get("error"),
        )


def _conflict_counts(raw: object) -> tuple[ConflictCount, ...]:
    """The status file's ``conflict_counts`` (a worker of an older pgherd has none)."""
    if not isinstance(raw, list):
        return ()
    found = []
    for item in raw:
        try:
            found.append(ConflictCount.model_validate(item))
        except ValidationError:
            continue
    return tuple(found)
