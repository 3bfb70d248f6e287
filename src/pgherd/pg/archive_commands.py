"""The archive_command and restore_command pgherd writes into a server's settings."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from pgherd.model.wal import HISTORY_FOLDER


def pgherd_program() -> list[str]:
    """How PostgreSQL (as its OS user) runs this very pgherd: the ``pgherd`` script of
    the virtualenv we run from, by absolute path (PostgreSQL's PATH does not have it)."""
    script = Path(sys.executable).parent / "pgherd"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pgherd"]


def push_command(archive: Path) -> str:
    return (
        shlex.join([*pgherd_program(), "wal", "push"])
        + " %p --archive "
        + shlex.quote(str(archive))
    )


def fetch_command(archive: Path) -> str:
    """``pgherd wal fetch``, behind a shell test for timeline history files: at every
    promotion PostgreSQL probes the archive for history files that do not exist yet, and a
    Python start-up per probe (~0.1 s) lengthens a switchover's write pause. A missing
    history file is answered by ``ls`` instead; segments always go through pgherd, which
    stops a restore at a gap in the archive rather than letting it end early. One brace
    group, so that callers can put it behind ``&&``."""
    history = shlex.quote(str(archive / HISTORY_FOLDER))
    fetch = (
        shlex.join([*pgherd_program(), "wal", "fetch"])
        + " %f %p --archive "
        + shlex.quote(str(archive))
    )
    return f"{{ case %f in *.history) ls {history}/%f-*.zst >/dev/null 2>&1;; esac && {fetch}; }}"


def archive_settings(archive: Path) -> dict[str, str | int | float | bool]:
    """Every node archives when it is the primary (``on`` does nothing on a standby) and
    reads the archive whenever it recovers: a standby that fell behind what its upstream
    keeps catches up from the archive, then streams again."""
    return {
        "archive_mode": "on",
        "archive_command": push_command(archive),
        "restore_command": fetch_command(archive),
    }
