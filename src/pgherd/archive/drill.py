"""``pgherd backup drill``: restore the latest backup into a scratch directory, start it,
run a check query, report the time, and clean up. A backup that has not been restored
is not a backup."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pgherd.archive import restore as restore_mod
from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError
from pgherd.model.recovery_target import Target, TargetAction, TargetKind
from pgherd.pg import binaries, osuser, ports, process
from pgherd.pg.instance import Instance

CHECK_QUERY = (
    "SELECT count(*) FROM pg_database WHERE datallowconn",
    "SELECT sum(pg_relation_size(oid)) FROM pg_class WHERE relkind = 'r'",
)


@dataclass(frozen=True)
class DrillResult:
    backup: str
    repository: str
    restore_seconds: float
    check_seconds: float
    databases: int
    table_bytes: int
    state: str
    ok: bool
    detail: str


def drill(
    config: ClusterConfig,
    repository: str | None,
    scratch: Path | None,
    step: Callable[[str], None],
) -> DrillResult:
    user = osuser.resolve(config.os_user)
    base = scratch or Path(tempfile.gettempdir())
    osuser.require_reachable(base, user)
    holder = Path(tempfile.mkdtemp(prefix="pgherd-drill-", dir=base))
    user.chown(holder)
    into = holder / "data"
    port = _free_port()
    request = restore_mod.RestoreRequest(
        into, port, Target(TargetKind.LATEST), TargetAction.PROMOTE, repository=repository
    )
    try:
        result = restore_mod.restore(config, request, step)
        started = time.monotonic()
        instance = Instance(
            data_dir=into,
            pgbin=binaries.find(config.pg_bin),
            user=user,
            port=port,
            socket_dir=into,
            log_file=into / restore_mod.LOG_NAME,
            superuser=config.superuser,
        )
        with instance.connect() as conn:
            databases = conn.execute(CHECK_QUERY[0]).fetchone()
            tables = conn.execute(CHECK_QUERY[1]).fetchone()
        checked = time.monotonic() - started
        return DrillResult(
            backup=result.backup,
            repository=repository or "first",
            restore_seconds=result.seconds,
            check_seconds=checked,
            databases=int(str(databases[0])) if databases else 0,
            table_bytes=int(str(tables[0] or 0)) if tables else 0,
            state=result.state,
            ok=result.state == "promoted",
            detail=f"replayed to {result.lsn} on timeline {result.timeline}",
        )
    except PgherdError as exc:
        return DrillResult("-", repository or "first", 0, 0, 0, 0, "failed", False, exc.one_line())
    finally:
        _stop(into)
        shutil.rmtree(holder, ignore_errors=True)


def _free_port() -> int:
    for port in range(55400, 55500):
        if ports.is_free("127.0.0.1", port):
            return port
    raise PgherdError("no free port between 55400 and 55499 for the drill")


def _stop(into: Path) -> None:
    pm = process.running_postmaster(into)
    if pm is not None:
        process.signal_pid(pm.pid, signal.SIGINT)
        process.wait_gone(pm.pid, 30)
