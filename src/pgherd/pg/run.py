"""Running PostgreSQL programs: argv lists, a timeout, as the PostgreSQL OS user.

Never through a shell. The environment is rebuilt from scratch so that nothing of the
caller's (a root HOME, a PGPASSWORD) leaks into PostgreSQL's programs; secrets reach
them through passfiles named in the environment, never on the command line.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from pgherd.errors import CommandFailed, TimedOut
from pgherd.pg.osuser import OsUser

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def program_env(user: OsUser, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(user.home),
        "USER": user.name,
        "LOGNAME": user.name,
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": os.environ.get("TZ", "UTC"),
    }
    if extra:
        env.update(extra)
    return env


class AsUser(TypedDict, total=False):
    umask: int
    user: int
    group: int
    extra_groups: list[int]


def popen_kwargs(user: OsUser) -> AsUser:
    """Arguments for subprocess that start a program as ``user`` with a private umask."""
    if user.needs_switch:
        return AsUser(umask=0o077, user=user.uid, group=user.gid, extra_groups=[])
    return AsUser(umask=0o077)


def run(
    argv: Sequence[str | Path],
    user: OsUser,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    check: bool = True,
    hint: str = "",
) -> Completed:
    """Run a program to completion; on failure raise with the program's own stderr."""
    args = tuple(str(a) for a in argv)
    name = Path(args[0]).name
    log.debug("running %s", " ".join(args))
    try:
        done = subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=program_env(user, env),
            cwd=cwd or (user.home if user.home.is_dir() else Path("/")),
            check=False,
            **popen_kwargs(user),
        )
    except subprocess.TimeoutExpired:
        raise TimedOut(
            f"{name} did not finish within {timeout:.0f} s", "see its log, then retry"
        ) from None
    result = Completed(args, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise CommandFailed(name, done.returncode, done.stderr or done.stdout, hint)
    return result
