"""Checking that the ports a lab wants are free before anything is created."""

from __future__ import annotations

import errno
import socket

from pgherd.errors import PortInUse


def is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As PostgreSQL and uvicorn do: a port whose old connections linger in TIME_WAIT
        # can be listened on again, so it counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def require_free(wanted: list[tuple[str, int, str]]) -> None:
    """``wanted``: (host, port, what) triples; raise naming the first taken port."""
    for host, port, what in wanted:
        if not is_free(host, port):
            raise PortInUse(
                f"port {port} on {host} ({what}) is already in use",
                "choose another --port-base, or stop what listens there",
            )
