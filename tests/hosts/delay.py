"""A fixed delay on what a host sends, where the kernel has no ``sch_netem``: it binds an
NFQUEUE queue over raw netlink and accepts every packet the queue hands it ``delay_ms``
after it arrived, in the order they arrived. The kernel holds a queued packet until its
verdict, so the packet really leaves that much later (netem's ``delay``, without jitter).
tests/hosts/network.py (``Network.delay``) starts it in the hub's namespace and points
``iptables -t mangle -A PREROUTING -m physdev --physdev-in LINK -j NFQUEUE
--queue-bypass`` at it: what enters the bridge from the host's cable waits; with
``--queue-bypass``, traffic flows undelayed if this program dies.

Standard library only (it runs from any Python, in any namespace). The messages are the
kernel's nfnetlink_queue protocol (include/uapi/linux/netfilter/nfnetlink_queue.h): a
netlink header, an ``nfgenmsg`` whose ``res_id`` is the queue number, then attributes.
Packets are copied as metadata only (``NFQNL_COPY_META``: the id is all we need), and
with ``NFQA_CFG_F_GSO`` a TCP segment the stack built large is queued whole, not cut up
first. The queue is made long (``NFQA_CFG_QUEUE_MAXLEN``) and the socket's buffer large,
so that a busy link is delayed, not dropped: a 200 ms delay at 100 MB/s holds ~20 MB.

Prints ``ready`` once bound; on SIGTERM it still accepts what it holds, each at its time,
and exits (the caller removes the iptables rule first); its last line of output counts
the packets it delayed, the verdicts the kernel refused, the times the socket's buffer
overflowed (the kernel dropped packets then), and says how late the latest verdict was.

    python tests/hosts/delay.py --delay-ms 200 [--queue 1]
"""

from __future__ import annotations

import argparse
import collections
import errno
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 1 << 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
NFGEN = struct.Struct("!BBH")  # struct nfgenmsg: family, version, res_id (big-endian)
ATTR = struct.Struct("=HH")  # struct nlattr: len, type
QUEUE_MAXLEN = 1 << 20  # packets: far more than 200 ms of any link here
RCVBUF = 32 << 20  # bytes of queued-packet messages the socket may hold unread
SO_RCVBUFFORCE = 33  # asm-generic/socket.h (not in Python's socket module)


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    size = ATTR.size + len(data)
    return ATTR.pack(size, kind) + data + b"\0" * (_align(size) - size)


def message(kind: int, queue: int, attrs: bytes, seq: int, flags: int = 0) -> bytes:
    """One nfnetlink_queue message: ``kind`` (NFQNL_MSG_*) about ``queue``."""
    body = NFGEN.pack(socket.AF_UNSPEC, 0, queue) + attrs
    msg_type = (NFNL_SUBSYS_QUEUE << 8) | kind
    return HEADER.pack(HEADER.size + len(body), msg_type, NLM_F_REQUEST | flags, seq, 0) + body


def verdict(queue: int, packet_id: int, seq: int) -> bytes:
    return message(
        NFQNL_MSG_VERDICT,
        queue,
        attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)),
        seq,
    )


def split(data: bytes) -> list[tuple[int, bytes]]:
    """The netlink messages in one datagram: (type, payload after the header)."""
    found, at = [], 0
    while at + HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = HEADER.unpack_from(data, at)
        if length < HEADER.size:
            break
        found.append((kind, data[at + HEADER.size : at + length]))
        at += _align(length)
    return found


def packet_id(payload: bytes) -> int | None:
    """The id in an NFQNL_MSG_PACKET's NFQA_PACKET_HDR (after the nfgenmsg)."""
    at = NFGEN.size
    while at + ATTR.size <= len(payload):
        size, kind = ATTR.unpack_from(payload, at)
        if size < ATTR.size:
            return None
        if kind & NLA_TYPE_MASK == NFQA_PACKET_HDR:
            (found,) = struct.unpack_from("!I", payload, at + ATTR.size)
            return int(found)
        at += _align(size)
    return None


class Queue:
    """An NFQUEUE queue bound on a netlink socket of this namespace."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.seq = 0
        self.refused = 0  # verdicts the kernel answered with an error
        self.overruns = 0  # times the kernel could not hand us a packet (ENOBUFS)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:  # as root, past net.core.rmem_max
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((0, 0))
        self.poll = select.poll()
        self.poll.register(self.sock, select.POLLIN)

    def configure(self) -> None:
        """Bind the queue, then: metadata only, a long queue, GSO packets whole; and from
        then on the socket never blocks."""
        self._request(attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
        self._request(
            attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
            + attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))
            + attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_GSO))
            + attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_GSO))
        )
        self.sock.setblocking(False)

    def _request(self, attrs: bytes) -> None:
        """A config message, acknowledged (or refused: the kernel's error raised)."""
        self.seq += 1
        self.sock.send(message(NFQNL_MSG_CONFIG, self.number, attrs, self.seq, NLM_F_ACK))
        while True:
            for kind, payload in split(self.sock.recv(65536)):
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        raise OSError(-code, f"nfnetlink_queue config: {os.strerror(-code)}")
                    return

    def receive(self, timeout: float) -> list[int]:
        """Packet ids the kernel queued: waits up to ``timeout`` seconds for the first,
        then takes what else is already there (the socket never blocks: a timeout on it
        would make each read wait for more)."""
        ids: list[int] = []
        if not self.poll.poll(timeout * 1000):
            return ids
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return ids
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1  # the socket's buffer overflowed: the kernel dropped some
                continue
            for kind, payload in split(data):
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    found = packet_id(payload)
                    if found is not None:
                        ids.append(found)
                elif kind == NLMSG_ERROR and struct.unpack_from("=i", payload)[0]:
                    self.refused += 1  # a verdict the kernel did not take: never sent

    def accept(self, ids: list[int]) -> None:
        """NF_ACCEPT for each id, in order, in one datagram."""
        out = bytearray()
        for found in ids:
            self.seq += 1
            out += verdict(self.number, found, self.seq)
        self.sock.send(bytes(out))


def serve(queue: Queue, delay: float) -> str:
    stopping: list[float] = []
    signal.signal(signal.SIGTERM, lambda _s, _f: stopping.append(time.monotonic()))
    held: collections.deque[tuple[float, int]] = collections.deque()
    packets, latest = 0, 0.0
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        due: list[int] = []
        while held and held[0][0] <= now:
            at, found = held.popleft()
            latest = max(latest, now - at)
            due.append(found)
        if due:
            queue.accept(due)
        if stopping and (not held or now > stopping[0] + delay + 1.0):
            break
        wait = held[0][0] - now if held else 0.5
        arrived = queue.receive(max(wait, 0.0))
        at = time.monotonic() + delay
        held.extend((at, found) for found in arrived)
        packets += len(arrived)
    return (
        f"packets {packets} refused {queue.refused} overruns {queue.overruns} "
        f"latest verdict {latest * 1000:.1f} ms late"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--queue", type=int, default=1)
    args = parser.parse_args()
    queue = Queue(args.queue)
    try:
        queue.configure()
    except OSError as exc:
        sys.exit(f"delay: cannot bind NFQUEUE {args.queue}: {exc}")
    print(serve(queue, args.delay_ms / 1000), flush=True)


if __name__ == "__main__":
    main()
