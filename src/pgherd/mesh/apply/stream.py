"""The replication stream from the source: pgoutput over the streaming replication protocol.

psycopg 3 has no replication-protocol API (COPY BOTH only through its low-level libpq
wrapper), so the stream is read with psycopg2's ``LogicalReplicationConnection``, the
mature choice; everything else uses psycopg 3. Messages are read in bulk with
``read_message()`` in a loop (it takes what libpq already buffered without a system
call) and waited for with select() only when none is left: ``consume_stream`` with a
cheap callback falls into one system call per message and halves throughput here.

Feedback confirms only what the target has durably applied (the caller says what);
psycopg2 sends it every ``status_interval`` and answers the server's keepalives with it.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg2
import psycopg2.extras

# Measured on loopback (docs/benchmarks.md, "Apply"). With the worker napping when the
# stream runs dry in a backlog, the window must close during the nap: then the walsender's
# messages queue in its send buffer (up to 4 MB here) and arrive in large segments. Into an
# open window each message goes out as a segment of its own, which costs the walsender up
# to twice its decoding. 32 kB (the kernel doubles it) closes within a few milliseconds;
# 256 kB often did not within a 10 ms nap, and 8 MB never. 8 kB stalled the stream.
RECEIVE_BUFFER = 32 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux
PROTO_VERSION = "1"  # no streaming of in-progress transactions: a transaction arrives whole


class Stream:
    def __init__(
        self,
        dsn: str,
        slot: str,
        publication: str,
        start_lsn: int,
        status_interval: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.slot = slot
        self.publication = publication
        self.start_lsn = start_lsn
        self.status_interval = status_interval
        self._conn: Any = None
        self._cursor: Any = None

    def __enter__(self) -> Stream:
        self._conn = psycopg2.connect(
            self.dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
        self._size_receive_buffer()
        self._cursor = self._conn.cursor()
        self._cursor.start_replication(
            slot_name=self.slot,
            decode=False,
            start_lsn=self.start_lsn,
            status_interval=self.status_interval,
            options={
                "proto_version": PROTO_VERSION,
                "publication_names": self.publication,
                "binary": "true",
            },
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _size_receive_buffer(self) -> None:
        """A window small enough to close while the worker naps: while it is closed the
        walsender's sends only queue in its own send buffer, which lets it run ahead while
        the target executes a batch; while it is open each small message costs it a TCP
        segment, sent and received in its own process on loopback."""
        # A socket object on a duplicate of libpq's descriptor: closing it closes only the
        # duplicate.
        with (
            contextlib.suppress(OSError),
            socket.socket(fileno=os.dup(self._conn.fileno())) as sock,
        ):
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except PermissionError:  # forcing needs CAP_NET_ADMIN; else up to rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
            self._conn = self._cursor = None

    def read(self) -> Any:
        """The next message (``payload``, ``data_start``, ``wal_end``), None if none is
        buffered or ready on the socket."""
        return self._cursor.read_message()

    def wait(self, timeout: float) -> None:
        """Until data arrives on the connection, at most ``timeout`` seconds."""
        select.select([self._conn], [], [], timeout)

    def confirm(self, lsn: int) -> None:
        """Tell the source that everything up to ``lsn`` is durably applied."""
        self._cursor.send_feedback(write_lsn=lsn, flush_lsn=lsn, apply_lsn=lsn, force=True)

    @property
    def server_lsn(self) -> int:
        """The source's WAL end, as its last message or keepalive said."""
        return int(self._cursor.wal_end)


@dataclass(frozen=True)
class ExportedSlot:
    """A logical slot just made with an exported snapshot: its first change follows the
    snapshot exactly (``consistent_point``); ``snapshot`` is for ``SET TRANSACTION
    SNAPSHOT`` while the connection that made it stays open and idle."""

    consistent_point: str
    snapshot: str


@contextlib.contextmanager
def slot_with_snapshot(dsn: str, slot: str) -> Iterator[ExportedSlot]:
    """Create logical slot ``slot`` (pgoutput) over a replication connection with
    ``EXPORT_SNAPSHOT``; the snapshot can be imported until the block ends (the
    connection is then closed). ``slot`` must be a valid slot name ([a-z0-9_])."""
    conn = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        cursor = conn.cursor()
        cursor.execute(f'CREATE_REPLICATION_SLOT "{slot}" LOGICAL pgoutput EXPORT_SNAPSHOT')
        made = cursor.fetchone()
        yield ExportedSlot(consistent_point=str(made[1]), snapshot=str(made[2]))
    finally:
        with contextlib.suppress(psycopg2.Error):
            conn.close()
