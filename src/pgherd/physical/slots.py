"""This node's replication slots: the ones its standbys stream through."""

from __future__ import annotations

import base64

from pgherd.model.node_ops import SlotChange, SlotState
from pgherd.pg import replication, slot_files
from pgherd.pg.local_node import LocalNode


def create(local: LocalNode, slot: str) -> SlotChange:
    with local.instance.connect() as conn:
        created = replication.create_physical_slot(conn, slot)
    detail = "created" if created else "exists already"
    return SlotChange(node=local.node.name, slot=slot, changed=created, detail=detail)


def drop(local: LocalNode, slot: str) -> SlotChange:
    with local.instance.connect() as conn:
        dropped = replication.drop_slot(conn, slot)
    detail = "dropped" if dropped else "did not exist"
    return SlotChange(node=local.node.name, slot=slot, changed=dropped, detail=detail)


def state(local: LocalNode, slot: str) -> SlotState:
    """The state file of ``slot``, for a standby that keeps a copy of it."""
    data = slot_files.read_state(local.node.data_dir, slot)
    return SlotState(node=local.node.name, slot=slot, state=base64.b64encode(data).decode())
