"""A mesh's members as configs and nodes: a member is a node of this pgherd.yaml or of a
peer's, or a whole cluster (a primary and its standbys) named by its ``cluster:``
(model/mesh_members.py decides which; this module reads the peers' files).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgherd import config as config_mod
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.errors import InvalidInput
from pgherd.model.mesh_members import Place, UnknownMember, find_member


@dataclass(frozen=True)
class Member:
    """A member of a mesh: its name, the config its nodes are in, and those nodes (one for
    a node member; a cluster member's primary and standbys)."""

    name: str
    config: ClusterConfig
    nodes: tuple[NodeConfig, ...]
    cluster: bool


def configs(config: ClusterConfig) -> list[ClusterConfig]:
    """This config, then each peer's (``peers:``), in that order."""
    return [config, *(config_mod.load(path) for path in config.peers)]


def places(found: list[ClusterConfig]) -> list[Place]:
    return [Place(c.cluster, c.independent, tuple(c.node_names)) for c in found]


def resolve(config: ClusterConfig, name: str, found: list[ClusterConfig] | None = None) -> Member:
    """The member ``name`` stands for; bad names refused with the way out."""
    found = found if found is not None else configs(config)
    try:
        where = find_member(name, places(found))
    except UnknownMember as exc:
        raise InvalidInput(f"mesh member {name}: {exc}", "fix --nodes or peers:") from None
    place = found[where.place]
    return Member(name, place, tuple(place.node(n) for n in where.nodes), where.cluster)


def source_hosts(member: Member) -> list[tuple[str, int]]:
    """Where a worker reads a member from: every node (libpq takes the writable one)."""
    return [(n.host, n.port) for n in member.nodes]
