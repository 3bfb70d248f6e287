"""Who a mesh's members are, and where each member's apply workers run. Pure decisions.

A member is named in ``mesh create --nodes`` either by a **node** (a single PostgreSQL
server, as meshes began) or by a **cluster**: the ``cluster:`` name of a pgherd.yaml whose
nodes are one primary and its standbys under pgherd's failover. A cluster member is what
an operator runs in production: its slots (the other members read) are copied to its
standbys by the slot keeper (model/failover_slots.py), its replication origins and
``pgherd.mesh_progress`` rows reach the standbys in the WAL of the commits that move them,
and so:

- every node of a cluster member keeps the mesh's spec, and **the workers that apply into
  the member run on whichever node is its writable primary** (:func:`workers_here`): the
  new primary's agent starts them after a failover, an agent whose node is a standby (a
  demoted or rejoined primary) or whose PostgreSQL is down (fenced, crashed) stops them;
- **the workers of the other members read from it through every one of its nodes**, with
  ``target_session_attrs=read-write``: libpq picks the primary, whichever it is now.

The member is named by the cluster, so the slot names (``pgherd_<mesh>_<member>``) and
origin names do not change when another node becomes its primary.

Other clusters are found through ``peers:`` in pgherd.yaml (paths to their pgherd.yaml
files): :func:`find_member` looks a name up in this config, then in each peer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """One pgherd.yaml as far as member names go: this one (index 0) or a peer's."""

    cluster: str
    independent: bool  # topology: independent (every node a primary of its own)
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class MemberPlace:
    """Where a member's nodes are: the config (an index into the places) and its nodes."""

    place: int
    nodes: tuple[str, ...]
    cluster: bool  # named by its cluster: the nodes are a primary and its standbys


class UnknownMember(ValueError):
    """A member name that no config names, or that two name (the message says which)."""


def find_member(name: str, places: Sequence[Place]) -> MemberPlace:
    """The nodes a member name stands for: a node of one of the configs, or a whole
    cluster of primary and standbys (a config whose ``cluster:`` is the name). A cluster
    of independent primaries is several members, not one: its nodes are named instead."""
    found: list[MemberPlace] = []
    for index, place in enumerate(places):
        if name in place.nodes:
            found.append(MemberPlace(index, (name,), cluster=False))
        if name == place.cluster:
            if place.independent and len(place.nodes) > 1:
                raise UnknownMember(
                    f"{name} is a cluster of {len(place.nodes)} independent primaries, "
                    f"not one member: name its nodes ({', '.join(place.nodes)})"
                )
            found.append(MemberPlace(index, place.nodes, cluster=True))
    if not found:
        known = [n for p in places for n in (*p.nodes, p.cluster)]
        raise UnknownMember(
            f"no node or cluster named {name} (known: {', '.join(dict.fromkeys(known))}; other "
            "clusters come from peers: in pgherd.yaml)"
        )
    if len(found) > 1:
        raise UnknownMember(
            f"{name} names more than one node or cluster (in {len(found)} places): rename "
            "one (a node's name, or a pgherd.yaml's cluster:)"
        )
    return found[0]


def local_member(members: Sequence[str], node: str, cluster: str) -> str | None:
    """The member this node serves in a mesh with these members: itself, or its cluster
    (every node of a cluster member keeps the mesh); None when it serves none."""
    if node in members:
        return node
    if cluster in members:
        return cluster
    return None


@dataclass(frozen=True)
class WorkersHere:
    """Whether the workers that apply into this node's member run on this node."""

    run: bool
    reason: str


def workers_here(postgres_running: bool, standby: bool) -> WorkersHere:
    """Only on a running primary: a standby cannot apply (and its member's primary, on
    another node, does); a stopped server (stopped, crashed, fenced) has nothing to apply
    to, and a failover may make another node the member's primary meanwhile."""
    if not postgres_running:
        return WorkersHere(False, "PostgreSQL is not running here")
    if standby:
        return WorkersHere(False, "this node is a standby: its primary applies")
    return WorkersHere(True, "this node is its member's primary")


def apply_commit_mode(synchronous_standby_names: str) -> str:
    """``synchronous_commit`` for the worker's commits into a member's primary. A worker
    tells its source that a transaction is applied once the target holds it, and the source
    then lets its slot forget it; after a failover of the target to a synchronous standby,
    that transaction must be there. So while the primary has synchronous standbys
    (pgherd's ``ha.synchronous``), each commit waits for them (``on``: a group of
    transactions commits at once, so the wait is paid per group); without any, ``off`` as
    native apply: what is durable is read from the origin (flushed) before it is told."""
    return "on" if synchronous_standby_names.strip() else "off"


class NoPrimary(ValueError):
    """A cluster member with no single running primary to answer for it."""


def member_primary(member: str, primaries: Sequence[str], unreachable: Sequence[str]) -> str:
    """The node that answers for a cluster member (its slots, origins, rows, workers): its
    one running primary. ``primaries``: the nodes whose agents say so."""
    if len(primaries) == 1:
        return primaries[0]
    if not primaries:
        no_answer = f" (no answer from {', '.join(unreachable)})" if unreachable else ""
        raise NoPrimary(
            f"cluster {member} has no running primary{no_answer}: wait for its failover "
            "(pgherd cluster show), then retry"
        )
    raise NoPrimary(
        f"cluster {member} has {len(primaries)} primaries ({', '.join(primaries)}): settle "
        "that first (pgherd cluster show), then retry"
    )
