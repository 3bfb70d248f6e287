"""WAL file names, segments and timeline histories: pure arithmetic, no I/O.

PostgreSQL names a WAL segment ``TTTTTTTTXXXXXXXXYYYYYYYY``: the timeline, then the
segment number split into a "log id" and the segment within it (``XXXXXXXX`` × the
segments per 4 GB + ``YYYYYYYY``). A timeline's history file (``TTTTTTTT.history``)
lists every ancestor timeline and the LSN where the next one branched off. These
functions turn names into numbers and back, and answer "which segments does a replay
from A to B on this timeline path read?", which retention, verification and restore
all ask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pgherd.model.lsn import Lsn

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
# Where an archive keeps timeline history files: the archive store writes them there and
# the restore_command answers a missing one with `ls` instead of starting pgherd.
HISTORY_FOLDER = "wal/history"
_SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
_PARTIAL = re.compile(r"^([0-9A-F]{24})\.partial$")
_BACKUP = re.compile(r"^([0-9A-F]{24})\.([0-9A-F]{8})\.backup$")
_HISTORY = re.compile(r"^([0-9A-F]{8})\.history$")


class WalKind(StrEnum):
    """What an archived file is, from its name."""

    SEGMENT = "segment"
    PARTIAL = "partial"  # the last, incomplete segment of a timeline a standby left
    BACKUP_LABEL = "backup"  # a backup history file: start/stop of a base backup
    HISTORY = "history"  # a timeline history file


def segments_per_id(segment_size: int) -> int:
    return 0x1_0000_0000 // segment_size


@dataclass(frozen=True, order=True, slots=True)
class Segment:
    """One WAL segment: ordered by number first, then timeline (the replay order)."""

    number: int
    timeline: int

    def name(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
        per_id = segments_per_id(segment_size)
        return f"{self.timeline:08X}{self.number // per_id:08X}{self.number % per_id:08X}"

    def start(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
        return Lsn(self.number * segment_size)

    def end(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
        """The first LSN after this segment."""
        return Lsn((self.number + 1) * segment_size)


@dataclass(frozen=True, slots=True)
class WalName:
    """An archived file name understood: its kind, and its segment when it has one."""

    name: str
    kind: WalKind
    segment: Segment | None  # None for history files
    timeline: int


def parse_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    match = _SEGMENT.match(name)
    if match is None:
        raise ValueError(f"not a WAL segment name: {name!r}")
    tli, log_id, seg = (int(part, 16) for part in match.groups())
    per_id = segments_per_id(segment_size)
    if tli == 0 or seg >= per_id:
        raise ValueError(f"not a WAL segment name: {name!r}")
    return Segment(log_id * per_id + seg, tli)


def parse_name(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> WalName:
    """Any file PostgreSQL archives; ValueError for anything else."""
    if _SEGMENT.match(name):
        seg = parse_segment(name, segment_size)
        return WalName(name, WalKind.SEGMENT, seg, seg.timeline)
    for pattern, kind in ((_PARTIAL, WalKind.PARTIAL), (_BACKUP, WalKind.BACKUP_LABEL)):
        match = pattern.match(name)
        if match:
            seg = parse_segment(match.group(1), segment_size)
            return WalName(name, kind, seg, seg.timeline)
    match = _HISTORY.match(name)
    if match:
        tli = int(match.group(1), 16)
        if tli < 2:
            raise ValueError(f"not a timeline history file name: {name!r}")
        return WalName(name, WalKind.HISTORY, None, tli)
    raise ValueError(f"not a WAL file name: {name!r}")


def never_archived(name: str) -> bool:
    """A name PostgreSQL asks ``restore_command`` for that no archive ever holds: timeline
    1's history file. At the end of an archive recovery that starts a new timeline,
    PostgreSQL copies the parent timeline's history from the archive, timeline 1's
    included; "not there" is the answer, not an error (which ends the recovery)."""
    match = _HISTORY.match(name)
    return match is not None and int(match.group(1), 16) == 1


def is_wal_name(name: str) -> bool:
    try:
        parse_name(name)
    except ValueError:
        return False
    return True


def segment_of(lsn: Lsn, timeline: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    return Segment(lsn.value // segment_size, timeline)


def history_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


# ---- timeline histories ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineSwitch:
    """One history line: ``timeline`` ended at ``switch_lsn`` (the child began there)."""

    timeline: int
    switch_lsn: Lsn
    reason: str


def parse_history(text: str) -> tuple[TimelineSwitch, ...]:
    """A ``.history`` file: ``<parent tli>\\t<switch LSN>\\t<reason>`` per line, oldest first."""
    entries: list[TimelineSwitch] = []
    for number, line in enumerate(text.splitlines(), 1):
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        fields = body.split(None, 2)
        if len(fields) < 2 or not fields[0].isdigit():
            raise ValueError(f"history file line {number} is malformed: {line!r}")
        tli = int(fields[0])
        if entries and tli <= entries[-1].timeline:
            raise ValueError(f"history file line {number}: timelines must increase")
        entries.append(
            TimelineSwitch(tli, Lsn.parse(fields[1]), fields[2] if len(fields) > 2 else "")
        )
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class TimelinePath:
    """The timelines a replay follows to reach ``target``: each with where it ends.

    ``ends[i]`` is the LSN where ``timelines[i]`` was left for the next one; the last
    timeline (the target) has no end.
    """

    timelines: tuple[int, ...]
    ends: tuple[Lsn, ...]

    @classmethod
    def of(cls, target: int, history: Sequence[TimelineSwitch]) -> TimelinePath:
        if history and history[-1].timeline >= target:
            raise ValueError(f"the history of timeline {target} names a later timeline")
        return cls((*(h.timeline for h in history), target), tuple(h.switch_lsn for h in history))

    @property
    def target(self) -> int:
        return self.timelines[-1]

    def timeline_at(self, lsn: Lsn) -> int:
        """The timeline that holds ``lsn`` on this path."""
        for tli, end in zip(self.timelines, self.ends, strict=False):
            if lsn < end:
                return tli
        return self.target

    def contains(self, timeline: int, lsn: Lsn) -> bool:
        """Whether a position on ``timeline`` is on this path (before it branched off)."""
        if timeline not in self.timelines:
            return False
        index = self.timelines.index(timeline)
        return index == len(self.ends) or lsn <= self.ends[index]

    def segments(
        self, start: Lsn, end: Lsn, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> list[Segment]:
        """The segments a replay from ``start`` up to ``end`` (exclusive) reads, in order.

        At a switch, the segment holding the switch LSN is read from the new timeline
        (the child's copy of it), as PostgreSQL does.
        """
        if end <= start:
            return [segment_of(start, self.timeline_at(start), segment_size)]
        first = start.value // segment_size
        last = (end.value - 1) // segment_size
        result = []
        for number in range(first, last + 1):
            result.append(Segment(number, self.timeline_of_segment(number, segment_size)))
        return result

    def timeline_of_segment(self, number: int, segment_size: int) -> int:
        for tli, end in zip(self.timelines, self.ends, strict=False):
            if number < end.value // segment_size:
                return tli
        return self.target


@dataclass(frozen=True, slots=True)
class Gap:
    """Consecutive missing segments: ``first`` to ``last`` inclusive."""

    first: Segment
    last: Segment

    def describe(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
        if self.first == self.last:
            return self.first.name(segment_size)
        return f"{self.first.name(segment_size)} to {self.last.name(segment_size)}"


def gaps(needed: Iterable[Segment], present: set[Segment]) -> list[Gap]:
    """The runs of ``needed`` segments that are not ``present``."""
    found: list[Gap] = []
    run: list[Segment] = []
    for seg in needed:
        if seg in present:
            if run:
                found.append(Gap(run[0], run[-1]))
                run = []
        else:
            run.append(seg)
    if run:
        found.append(Gap(run[0], run[-1]))
    return found


def contiguous_end(
    path: TimelinePath, start: Lsn, present: set[Segment], segment_size: int = DEFAULT_SEGMENT_SIZE
) -> Segment | None:
    """The last segment reachable from ``start`` along ``path`` without a gap, or None
    when even the first one is missing."""
    number = start.value // segment_size
    last: Segment | None = None
    while True:
        seg = Segment(number, path.timeline_of_segment(number, segment_size))
        if seg not in present:
            return last
        last = seg
        number += 1


# ---- reading a segment's first page ----------------------------------------------------

# XLOG_PAGE_MAGIC per major version: the format of WAL, which changes with each release.
PAGE_MAGIC = {0xD106: 13, 0xD10D: 14, 0xD110: 15, 0xD113: 16, 0xD116: 17}
LONG_HEADER_SIZE = 40  # XLogLongPageHeaderData on 64-bit platforms


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """What the long header on a segment's first page says about the cluster."""

    magic: int
    timeline: int
    page_address: Lsn
    system_identifier: str
    segment_size: int
    block_size: int

    @property
    def major(self) -> int | None:
        return PAGE_MAGIC.get(self.magic)


def parse_segment_header(data: bytes) -> SegmentHeader:
    """xlp_magic, xlp_info, xlp_tli, xlp_pageaddr, xlp_rem_len, (pad), xlp_sysid,
    xlp_seg_size, xlp_xlog_blcksz, little-endian as written on x86 and arm64."""
    if len(data) < LONG_HEADER_SIZE:
        raise ValueError("too short for a WAL segment header")
    magic = int.from_bytes(data[0:2], "little")
    info = int.from_bytes(data[2:4], "little")
    if not info & 0x0002:  # XLP_LONG_HEADER
        raise ValueError("the first page has no long header: not the start of a WAL segment")
    return SegmentHeader(
        magic=magic,
        timeline=int.from_bytes(data[4:8], "little"),
        page_address=Lsn(int.from_bytes(data[8:16], "little")),
        system_identifier=str(int.from_bytes(data[24:32], "little")),
        segment_size=int.from_bytes(data[32:36], "little"),
        block_size=int.from_bytes(data[36:40], "little"),
    )
