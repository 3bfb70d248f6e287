"""``pgherd wal push %p`` and ``pgherd wal fetch %f %p``: PostgreSQL's archive_command and
restore_command.

PostgreSQL runs these once per WAL segment, as its OS user, and waits for each: they
are the hot path of archiving and of every restore. So this module parses its arguments
with argparse and imports only :mod:`pgherd.archive.store` — no Typer, rich or pydantic
(``pgherd.cli.entry`` sends ``wal push|fetch`` here before anything else is imported; a
config named with ``-c`` is read through :mod:`pgherd.config_cache`, which validates each
file text once). Started this way a push costs ~0.05 s of start-up instead of ~0.6 s.

Where the repositories are: ``--spool DIR`` (what pgherd writes into a node's settings:
the node's WAL spool, whose ``repositories.json`` names them, and where a push waits for
the agent's resident pusher — see :mod:`pgherd.archive.spool`), ``--repos FILE`` (such a
file, as a restore writes it), or ``--archive DIR`` (one local directory, as before).

Exit codes follow what PostgreSQL makes of them: 0 done; 1 for "not archived" (fetch)
or a push to retry; 126 when a restore must stop rather than carry on (a corrupt or
missing segment in the middle of the archive, an archive of another cluster):
PostgreSQL treats an exit code above 125 as fatal instead of as the end of the archive,
which would otherwise end a recovery early and silently.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgherd.archive.wal_repos import WalRepositories

from pgherd.errors import ConfigError, PgherdError

EXIT_NOT_FOUND = 1
EXIT_FATAL = 126
PUSHER_WAIT = 60.0  # seconds a push waits for the resident pusher's answer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgherd wal", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    push = sub.add_parser("push", help="archive one WAL file (archive_command = ... %%p)")
    push.add_argument("path", type=Path, help="the file, as PostgreSQL's %%p")
    fetch = sub.add_parser("fetch", help="restore one WAL file (restore_command = ... %%f %%p)")
    fetch.add_argument("name", help="the WAL file name, as PostgreSQL's %%f")
    fetch.add_argument("destination", type=Path, help="where to write it, as %%p")
    for command in (push, fetch):
        where = command.add_mutually_exclusive_group()
        where.add_argument("--archive", type=Path, help="the archive directory")
        where.add_argument("--spool", type=Path, help="the node's WAL spool (pgherd's setting)")
        where.add_argument("--repos", type=Path, help="a repositories.json file")
        where.add_argument("-c", "--config", type=Path, help="pgherd.yaml naming the archive")
    return parser


def _repositories(args: argparse.Namespace) -> WalRepositories:
    # lazy imports here and below: PostgreSQL starts this once per segment (module docstring)
    from pgherd.archive.repository import SPEC_FILE, read_specs
    from pgherd.archive.wal_repos import WalRepositories
    from pgherd.model.repository import RepositorySpec

    if args.archive is not None:
        return WalRepositories.open([RepositorySpec("main", path=str(args.archive))])
    if args.spool is not None or args.repos is not None:
        return WalRepositories.open(read_specs(args.repos or args.spool / SPEC_FILE))
    # The config, validated once per file text and then read without pydantic.
    from pgherd import config_cache
    from pgherd.config_lite import config_path

    config = config_cache.load(config_path(args.config))
    if config.archive is None:
        raise ConfigError(f"{config_path(args.config)} has no archive section")
    return WalRepositories.open(config.archive.specs())


def _push_through_spool(spool: Path, source: Path) -> int | None:
    """The pusher's answer for ``source`` (0 or 1), or None when no pusher runs."""
    from pgherd.archive import spool as spool_mod

    name = source.name
    deadline = time.monotonic() + PUSHER_WAIT
    spool_mod.mark_in_use(spool)
    while True:
        answer = spool_mod.take_answer(spool, name)
        if answer is not None:
            ok, why = answer
            if not ok:
                _complain("push", why)
            return 0 if ok else 1
        if not spool_mod.pusher_running(spool):
            return None
        if time.monotonic() > deadline:
            _complain("push", f"the agent's pusher has not archived {name} in {PUSHER_WAIT:.0f} s")
            return 1
        time.sleep(0.01)


def main(argv: list[str]) -> int:

    args = _parser().parse_args(argv)
    verb = args.verb
    try:
        if verb == "push" and args.spool is not None:
            answered = _push_through_spool(args.spool, args.path)
            if answered is not None:
                return answered
        repositories = _repositories(args)
        if verb == "push":
            repositories.push(args.path)
            return 0
        found = repositories.fetch(args.name, args.destination)
    except PgherdError as exc:
        _complain(verb, exc.one_line())
        return EXIT_FATAL if verb == "fetch" else 1
    except OSError as exc:
        _complain(verb, f"{exc.strerror or exc}: {exc.filename or ''}")
        return EXIT_FATAL if verb == "fetch" else 1
    return 0 if found else EXIT_NOT_FOUND


def _complain(verb: str, text: str) -> None:
    sys.stderr.write(f"pgherd wal {verb}: error: {text}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
