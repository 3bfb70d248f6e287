"""Errors an operator can act on.

Every error pgherd raises on purpose derives from :class:`PgherdError` and carries a
``hint`` that says what to do next. The CLI prints ``error: <message> — <hint>`` on one
line and exits non-zero; the agent API returns the same two fields as JSON.

::

    PgherdError
     ├── ConfigError            pgherd.yaml is missing or invalid
     ├── InvalidInput           a command-line value is malformed
     ├── UnknownNode            a node name that the config does not list
     ├── PostgresNotFound       no PostgreSQL server binaries were found
     ├── CommandFailed          a PostgreSQL program exited non-zero (its stderr attached)
     ├── QueryFailed            a SQL statement failed
     ├── Refused                an unsafe or impossible action was refused, nothing changed
     │    ├── PortInUse
     │    ├── DataDirNotEmpty
     │    └── PathUnreachable
     ├── IdentityMismatch       system identifiers of two nodes differ
     ├── AgentUnreachable       a node's agent did not answer
     ├── AgentError             a node's agent answered with an error
     └── TimedOut               something did not happen within its time limit
"""

from __future__ import annotations


class PgherdError(Exception):
    """Root of pgherd's errors; ``hint`` tells the user what to do about it."""

    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        return f"{text} — {self.hint}" if self.hint else text


class ConfigError(PgherdError):
    default_hint = "fix pgherd.yaml (see docs/config.md)"


class InvalidInput(PgherdError):
    pass


class UnknownNode(PgherdError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown node {name!r}",
            f"known nodes: {', '.join(known)}" if known else "the config lists no nodes",
        )
        self.name = name


class PostgresNotFound(PgherdError):
    default_hint = "install PostgreSQL (apt-get install postgresql-15) or pass --pg-bin DIR"


class CommandFailed(PgherdError):
    """A program exited non-zero; ``stderr`` is PostgreSQL's own explanation."""

    def __init__(self, program: str, returncode: int, stderr: str, hint: str = "") -> None:
        detail = last_lines(stderr)
        message = f"{program} failed (exit {returncode})"
        if detail:
            message += f": {detail}"
        super().__init__(message, hint)
        self.program = program
        self.returncode = returncode
        self.stderr = stderr


class QueryFailed(PgherdError):
    pass


class Refused(PgherdError):
    """An action was refused before anything changed."""


class PortInUse(Refused):
    pass


class DataDirNotEmpty(Refused):
    pass


class PathUnreachable(Refused):
    pass


class IdentityMismatch(PgherdError):
    pass


class AgentUnreachable(PgherdError):
    pass


class AgentError(PgherdError):
    pass


class TimedOut(PgherdError):
    pass


class WalGone(PgherdError):
    """A starting standby needs WAL its upstream has removed and no archive holds."""


def last_lines(text: str, count: int = 3) -> str:
    """The last non-empty lines of a program's output, joined: where the reason usually is."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


# ---- the WAL archive, backups and restores ---------------------------------------------
#   PgherdError
#    ├── ArchiveError           the archive is missing, unreadable or not set up
#    │    ├── ArchiveMismatch   WAL or a server from another cluster (identity differs)
#    │    ├── WalConflict       a different file under a name the archive already holds
#    │    ├── CorruptWal        a stored file does not match its checksum
#    │    └── MissingWal        segments a restore or a backup needs are not archived
#    └── Refused
#         └── TargetUnreachable a recovery target no backup and archive can reach


class ArchiveError(PgherdError):
    default_hint = "see docs/archive.md"


class ArchiveMismatch(ArchiveError):
    pass


class WalConflict(ArchiveError):
    pass


class CorruptWal(ArchiveError):
    pass


class MissingWal(ArchiveError):
    pass


class TargetUnreachable(Refused):
    pass
