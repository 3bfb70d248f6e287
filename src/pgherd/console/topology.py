"""The overview picture: where each node's box goes and which arrows join them. Pure.

Nodes are placed in tiers by how far they are from a primary along the streaming tree
(primaries first, their standbys below, cascaded standbys below those); a tier wider
than :data:`PER_ROW` boxes wraps onto more rows, so ten nodes still fit a phone's width
once the SVG is scaled to it. Publishers outside the config appear as extra boxes above
the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pgherd.console.state import ClusterState
from pgherd.model.cluster import NodeRow
from pgherd.model.readable import human_bytes, human_seconds
from pgherd.model.status import PgState, Role

PER_ROW = 4
BOX_W, BOX_H = 170, 74
GAP_X, GAP_Y = 70, 78
MARGIN = 24
LABEL_AT = 0.6
SAME_ROW_BEND = 120  # how far a curve between two boxes of one row dips below them


class Health(StrEnum):
    OK = "ok"
    WARN = "warn"  # running, but catching up, paused, or not streaming
    DOWN = "down"  # stopped, crashed, unreachable


class StreamKind(StrEnum):
    PHYSICAL = "physical"
    LOGICAL = "logical"
    MESH = "mesh"


@dataclass(frozen=True)
class Box:
    name: str
    role: str  # primary, standby, unknown, external
    state: str
    health: Health
    x: int
    y: int
    leader: bool = False
    external: bool = False
    detail: str = ""  # second line: timeline and position
    problem: str | None = None

    @property
    def cx(self) -> int:
        return self.x + BOX_W // 2


@dataclass(frozen=True)
class Arrow:
    kind: StreamKind
    source: str
    target: str
    label: str
    healthy: bool
    x1: float
    y1: float
    x2: float
    y2: float
    bend: float = 0.0  # sideways offset of the curve's middle (logical, mesh)

    @property
    def path(self) -> str:
        mx, my = (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2
        if not self.bend:
            return f"M{self.x1:.0f},{self.y1:.0f} L{self.x2:.0f},{self.y2:.0f}"
        dx, dy = self.x2 - self.x1, self.y2 - self.y1
        length = max((dx * dx + dy * dy) ** 0.5, 1.0)
        cx, cy = mx - dy / length * self.bend, my + dx / length * self.bend
        return f"M{self.x1:.0f},{self.y1:.0f} Q{cx:.0f},{cy:.0f} {self.x2:.0f},{self.y2:.0f}"

    @property
    def label_x(self) -> float:
        return self._mid()[0]

    @property
    def label_y(self) -> float:
        return self._mid()[1]

    @property
    def label_anchor(self) -> str:
        """SVG text-anchor: a straight arrow's label sits on the side it leans away from;
        a curve's is centred beyond the curve's middle."""
        if self.bend:
            return "middle"
        return "end" if self.x2 < self.x1 - 1 else "start"

    def _mid(self) -> tuple[float, float]:
        mx, my = (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2
        if not self.bend:
            # 60 % of the way: arrows fanning out of one box have parted by then
            x = self.x1 + (self.x2 - self.x1) * LABEL_AT
            y = self.y1 + (self.y2 - self.y1) * LABEL_AT
            return (x - 8 if self.label_anchor == "end" else x + 8), y
        dx, dy = self.x2 - self.x1, self.y2 - self.y1
        length = max((dx * dx + dy * dy) ** 0.5, 1.0)
        out = self.bend / 2 + (12 if self.bend > 0 else -12)  # the curve's middle, and beyond
        return mx - dy / length * out, my + dx / length * out


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]


def health_of(row: NodeRow) -> Health:
    if row.state in (PgState.STOPPED, PgState.CRASHED, PgState.UNREACHABLE):
        return Health.DOWN
    if row.problem or row.state not in ("running", "streaming"):
        return Health.WARN
    return Health.OK


def tiers(rows: Sequence[NodeRow]) -> list[list[str]]:
    """Node names by depth in the streaming tree; a standby whose upstream is unknown
    (or outside the config) goes in the first tier below the primaries."""
    names = [r.name for r in rows]
    upstream = {r.name: r.upstream for r in rows if r.role is Role.STANDBY}
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        up = upstream.get(name)
        if name not in upstream:
            found = 0
        elif up is None or up not in names or up in seen:
            found = 1
        else:
            found = depth_of(up, seen | {name}) + 1
        depth[name] = found
        return found

    levels: dict[int, list[str]] = {}
    for name in names:
        levels.setdefault(depth_of(name), []).append(name)
    return [levels[d] for d in sorted(levels)]


def layout(state: ClusterState) -> Picture:
    rows = state.view.rows
    by_row = {r.name: r for r in rows}
    externals = sorted({s.source for s in state.subscriptions if not s.source_known})
    leader_names = set((state.leader.name or "").split(", ")) if state.leader else set()
    # publishers outside the config first: their arrows point down into the cluster
    grid = [externals[i : i + PER_ROW] for i in range(0, len(externals), PER_ROW)]
    for tier in tiers(rows):
        grid += [tier[i : i + PER_ROW] for i in range(0, len(tier), PER_ROW)]
    columns = max((len(r) for r in grid), default=1)
    width = 2 * MARGIN + columns * BOX_W + (columns - 1) * GAP_X
    boxes: list[Box] = []
    for index, line in enumerate(grid):
        y = MARGIN + index * (BOX_H + GAP_Y)
        used = len(line) * BOX_W + (len(line) - 1) * GAP_X
        x0 = (width - used) // 2
        for col, name in enumerate(line):
            x = x0 + col * (BOX_W + GAP_X)
            row = by_row.get(name)
            if row is None:
                boxes.append(
                    Box(name, "external", "outside this cluster", Health.OK, x, y, external=True)
                )
                continue
            detail = f"TL {row.timeline}" if row.timeline is not None else ""
            if row.lsn is not None:
                detail += f" · {row.lsn}"
            boxes.append(
                Box(
                    name=name,
                    role=str(row.role),
                    state=row.state,
                    health=health_of(row),
                    x=x,
                    y=y,
                    leader=name in leader_names,
                    detail=detail.strip(" ·"),
                    problem=row.problem,
                )
            )
    height = 2 * MARGIN + len(grid) * BOX_H + max(len(grid) - 1, 0) * GAP_Y
    joined = arrows(state, boxes)
    curves = [a for a in joined if a.y1 == a.y2 and a.bend]  # between boxes of one row
    if curves:
        # room under the last row for a curve dipping below it, and its label
        lowest = max(max(a.y1, a.label_y) for a in curves) + 20
        height = max(height, int(lowest) + MARGIN)
        top = min(a.y1 for a in curves)
        if any(a.y1 == a.y2 == top and a.y1 == MARGIN for a in joined):
            height += SAME_ROW_BEND // 2 + 20  # a curve over the first row
            boxes = [_moved(b, SAME_ROW_BEND // 2 + 20) for b in boxes]
            joined = arrows(state, boxes)
    return Picture(width, max(height, BOX_H + 2 * MARGIN), tuple(boxes), joined)


def _moved(box: Box, dy: int) -> Box:
    return Box(
        box.name,
        box.role,
        box.state,
        box.health,
        box.x,
        box.y + dy,
        box.leader,
        box.external,
        box.detail,
        box.problem,
    )


def _lag_label(lag_b: int | None, lag_s: float | None) -> str:
    if lag_b is None and lag_s is None:
        return ""
    return f"{human_bytes(lag_b)} · {human_seconds(lag_s)}"


def arrows(state: ClusterState, boxes: Sequence[Box]) -> tuple[Arrow, ...]:
    at = {b.name: b for b in boxes}
    found: list[Arrow] = []
    for row in state.view.rows:
        if row.upstream and row.upstream in at and row.name in at:
            streaming = row.state in ("streaming", "catchup")
            found.append(
                _join(
                    StreamKind.PHYSICAL,
                    at[row.upstream],
                    at[row.name],
                    _lag_label(row.lag_bytes, row.lag_seconds) if streaming else row.state,
                    streaming,
                )
            )
    for sub in state.subscriptions:
        if sub.source in at and sub.node in at:
            label = sub.info.name
            lag = _lag_label(sub.lag_bytes, sub.lag_seconds)
            found.append(
                _join(
                    StreamKind.LOGICAL,
                    at[sub.source],
                    at[sub.node],
                    f"{label} · {lag}" if lag else label,
                    sub.info.enabled,
                    bend=46,
                )
            )
    for pair in state.mesh:
        if pair.source in at and pair.target in at:
            lag = _lag_label(pair.lag_bytes, pair.lag_seconds)
            found.append(
                _join(
                    StreamKind.MESH,
                    at[pair.source],
                    at[pair.target],
                    f"{pair.mesh} · {lag}" if lag else pair.mesh,
                    pair.state in ("running", "waiting"),
                    bend=-30,
                )
            )
    return tuple(found)


def _join(kind: StreamKind, a: Box, b: Box, label: str, healthy: bool, bend: float = 0.0) -> Arrow:
    """An arrow from box ``a``'s edge to box ``b``'s edge. Between boxes of one row it
    is a curve under them (over them for a mesh pair's second direction), so its label
    has room."""
    if a.y == b.y:
        above = kind is StreamKind.MESH and a.name > b.name
        y = a.y if above else a.y + BOX_H
        depth = SAME_ROW_BEND if (b.x > a.x) != above else -SAME_ROW_BEND
        return Arrow(kind, a.name, b.name, label, healthy, a.cx, y, b.cx, y, depth)
    down = b.y > a.y
    y1 = a.y + BOX_H if down else a.y
    y2 = b.y if down else b.y + BOX_H
    return Arrow(kind, a.name, b.name, label, healthy, a.cx, y1, b.cx, y2, bend)
