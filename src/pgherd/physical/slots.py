"""This node's replication slots: the ones its standbys stream through."""

from __future__ import annotations

import base64
import logging

from pgherd.errors import PgherdError
from pgherd.model.node_ops import SlotChange, SlotState
from pgherd.pg import replication, slot_files
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.slots")


def create(local: LocalNode, slot: str) -> SlotChange:
    with local.instance.connect() as conn:
        created = replication.create_physical_slot(conn, slot)
    detail = "created" if created else "exists already"
    return SlotChange(node=local.node.name, slot=slot, changed=created, detail=detail)


def for_other_nodes(local: LocalNode) -> list[SlotChange]:
    """A slot for every other data node, made right after this node was promoted.

    A physical slot starts at the redo point of the server's last checkpoint: right
    after a promotion, the end-of-recovery checkpoint at the new timeline's first
    records, or a restartpoint before them. So the slot of the old primary keeps every
    segment of the new timeline, from the one it starts in, until that node comes back:
    pg_rewind copies them from here, and the rewound node replays them. (At 20 GB, with
    ~0.6 GB written after a promotion that made no slots, they were recycled before the
    rejoin and the rewound node could not catch up: bench/scale.py.) Patroni keeps its
    members' slots on the leader for the same reason. The WAL a slot holds for a node
    that stays away is bounded only by ``max_slot_wal_keep_size``; ``pgherd doctor``
    and ``/metrics`` show it. A slot that cannot be made is logged, not raised: the
    promotion has happened."""
    made = []
    for node in local.config.nodes:
        if node.name == local.node.name:
            continue
        try:
            made.append(create(local, node.name))
        except PgherdError as exc:
            log.warning("slot %s: %s", node.name, exc.message)
    return made


def drop(local: LocalNode, slot: str) -> SlotChange:
    with local.instance.connect() as conn:
        dropped = replication.drop_slot(conn, slot)
    detail = "dropped" if dropped else "did not exist"
    return SlotChange(node=local.node.name, slot=slot, changed=dropped, detail=detail)


def state(local: LocalNode, slot: str) -> SlotState:
    """The state file of ``slot``, for a standby that keeps a copy of it."""
    data = slot_files.read_state(local.node.data_dir, slot)
    return SlotState(node=local.node.name, slot=slot, state=base64.b64encode(data).decode())
