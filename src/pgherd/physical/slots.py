"""This node's replication slots: the ones its standbys stream through."""

from __future__ import annotations

from pgherd.model.node_ops import SlotChange
from pgherd.pg import replication
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
