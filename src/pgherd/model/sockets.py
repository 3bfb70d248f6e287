"""PostgreSQL's Unix socket: how long the directory it sits in may be. Pure.

PostgreSQL listens on ``DIR/.s.PGSQL.PORT``, and a Unix socket's path (``sun_path``) holds
at most 107 bytes before its terminating NUL; a longer one fails only when the server
starts. config.py refuses such a node's home, ``pgherd restore`` such a target.
"""

from __future__ import annotations

UNIX_PATH_MAX = 107
SOCKET_NAME_MAX = len("/.s.PGSQL.65535")


def socket_dir_fits(directory: str) -> bool:
    """Whether PostgreSQL's socket in ``directory`` fits, whatever its port."""
    return len(directory.encode()) + SOCKET_NAME_MAX <= UNIX_PATH_MAX
