"""The WAL spool: how archive_command and the agent's resident pusher talk.

A directory per node (``<home>/wal-spool``, owned by the PostgreSQL OS user)::

    repositories.json     which repositories to push to (no secrets: file names)
    pusher.lock           held (flock) by the agent's pusher: one pusher per spool
    <wal name>.ok         the pusher's word: durable in every repository
    <wal name>.error      the pusher's word: it failed, and why (one line)
    status.json           the pusher's figures and heartbeat (rewritten every second)
    in-use                touched by archive_command at every push through the spool

archive_command (``pgherd wal push %p --spool DIR``) answers PostgreSQL from the
``.ok``/``.error`` files, waiting for them while the pusher runs; with no pusher
running it pushes the segment itself. The pusher works ahead on every ``.ready``
file in ``pg_wal/archive_status`` with several workers, so PostgreSQL usually finds its
answer waiting. A ``.ok`` file is written only after every repository confirmed the
segment durable, so nothing is acknowledged early.

Standard library only: this is on the archive_command path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LOCK = "pusher.lock"
IN_USE = "in-use"
IN_USE_WINDOW = 30.0  # seconds after archive_command last came by that the pusher works
STATUS = "status.json"
HEARTBEAT = 5.0  # seconds: a status.json older than this is a pusher that is gone
OK = ".ok"
ERROR = ".error"


def pusher_running(spool: Path) -> bool:
    """Whether the pusher runs: it rewrites status.json every second (a heartbeat read
    without taking its lock, so that archive_command polling never keeps a starting
    pusher from taking it)."""
    try:
        age = time.time() - (spool / STATUS).stat().st_mtime
    except FileNotFoundError:
        return False
    return age < HEARTBEAT


def write_answer(spool: Path, name: str, suffix: str, text: str = "") -> None:
    """Atomically, so archive_command never reads half an answer."""
    final = spool / f"{name}{suffix}"
    tmp = spool / f".{name}{suffix}.tmp{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, final)


def take_answer(spool: Path, name: str) -> tuple[bool, str] | None:
    """(True, "") for a durable push, (False, why) for a failed one, None when the
    pusher has not answered yet. An answer is consumed: the next call is None."""
    ok = spool / f"{name}{OK}"
    try:
        ok.unlink()
    except FileNotFoundError:
        pass
    else:
        return True, ""
    error = spool / f"{name}{ERROR}"
    try:
        text = error.read_text().strip()
        error.unlink()
    except FileNotFoundError:
        return None
    return False, text


def mark_in_use(spool: Path) -> None:
    """archive_command came by: the pusher works ahead while this is recent (a node whose
    archive_command was changed to something else, by hand or by a benchmark, is left
    alone)."""
    path = spool / IN_USE
    try:
        os.utime(path)
    except FileNotFoundError:
        path.touch()


def in_use(spool: Path, now: float) -> bool:
    try:
        return now - (spool / IN_USE).stat().st_mtime < IN_USE_WINDOW
    except FileNotFoundError:
        return False
