"""The archive_command and restore_command pgherd writes into a server's settings."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from pgherd.model.repository import SPEC_FILE, RepositorySpec, write_specs
from pgherd.model.wal import HISTORY_FOLDER
from pgherd.pg.osuser import OsUser

SPOOL_DIR = "wal-spool"


def spool_of(home: Path) -> Path:
    """A node's WAL spool (see archive/spool.py), in its pgherd home."""
    return home / SPOOL_DIR


def pgherd_program() -> list[str]:
    """How PostgreSQL (as its OS user) runs this very pgherd: the ``pgherd`` script of
    the virtualenv we run from, by absolute path (PostgreSQL's PATH does not have it)."""
    script = Path(sys.executable).parent / "pgherd"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pgherd"]


def push_command(archive: Path) -> str:
    """A synchronous push into one local directory (benchmarks, hand-made setups)."""
    return (
        shlex.join([*pgherd_program(), "wal", "push"])
        + " %p --archive "
        + shlex.quote(str(archive))
    )


def spool_push_command(spool: Path) -> str:
    """What nodes run: answered by the agent's resident pusher through the spool."""
    return shlex.join([*pgherd_program(), "wal", "push"]) + " %p --spool " + shlex.quote(str(spool))


def fetch_command(where: Sequence[str], history_dir: Path | None = None) -> str:
    """``pgherd wal fetch`` with ``where`` (``--spool DIR``, ``--repos FILE`` or
    ``--archive DIR``), behind a shell test for timeline history files when the first
    repository is a local directory (``history_dir``): at every promotion PostgreSQL
    probes the archive for history files that do not exist yet, and a Python start-up
    per probe (~0.1 s) lengthens a switchover's write pause. A missing history file is
    answered by ``ls`` instead; segments always go through pgherd, which stops a restore
    at a gap in the archive rather than letting it end early. One brace group, so that
    callers can put it behind ``&&``."""
    fetch = shlex.join([*pgherd_program(), "wal", "fetch"]) + " %f %p " + shlex.join(where)
    if history_dir is None:
        return f"{{ {fetch}; }}"
    history = shlex.quote(str(history_dir))
    return f"{{ case %f in *.history) ls {history}/%f-*.zst >/dev/null 2>&1;; esac && {fetch}; }}"


def history_dir(specs: Sequence[RepositorySpec]) -> Path | None:
    """Where the first repository keeps history files, when it is a plain directory
    (an encrypted one names them the same way)."""
    if specs and specs[0].path is not None:
        return Path(specs[0].path) / HISTORY_FOLDER
    return None


def archive_settings(
    spool: Path, specs: Sequence[RepositorySpec]
) -> dict[str, str | int | float | bool]:
    """Every node archives when it is the primary (``on`` does nothing on a standby) and
    reads the archive whenever it recovers: a standby that fell behind what its upstream
    keeps catches up from the archive, then streams again."""
    return {
        "archive_mode": "on",
        "archive_command": spool_push_command(spool),
        "restore_command": fetch_command(["--spool", str(spool)], history_dir(specs)),
    }


def write_spool(spool: Path, specs: Sequence[RepositorySpec], user: OsUser) -> None:
    """The spool directory and its repositories.json, owned by the PostgreSQL OS user
    (archive_command reads it and consumes the pusher's answers there)."""
    user.make_dir(spool)
    user.write_file(spool / SPEC_FILE, write_specs(tuple(specs)))
