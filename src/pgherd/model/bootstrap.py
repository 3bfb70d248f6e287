"""How a node comes to hold its cluster's data: the bootstrap decision, a pure function.

Before an agent's HA loop runs, the node's data directory must hold the PostgreSQL cluster
that the coordination store names. The store's ``initialize`` key (dcs/base.py) says which
one: a :class:`ClusterRecord` with who claimed the cluster's creation, how (``initdb`` or
``adopt``) and, once known, its system identifier. Each bootstrap cycle the agent reads
its data directory (:class:`LocalData`), the store and its peers' agents
(:class:`BootWorld`) and :func:`decide` says what to do (:class:`Plan`), with the
sentence it logs:

- the store holds no cluster: a node whose data directory holds a primary's cluster claims
  the key with that system identifier (``adopt`` a PostgreSQL pgherd did not make, or
  ``register`` one it did); when no node holds data and every peer answered, the agents
  race to claim the key (create-if-absent: exactly one wins) and the winner runs initdb;
- the key is claimed but not yet published: the others wait (a claim whose claimer has
  not checked in for a while is taken over: its initdb, if it ever finishes, is discarded);
- the key holds a system identifier: a data directory that holds it is a member (the HA
  loop takes over); an empty one clones the leader; one that holds another cluster is
  refused, never started as a member.

A marker file in the node's home says what work was under way (initdb, clone, adopt). An
agent that died in the middle of an initdb or a clone leaves it behind, and the next start
removes what that work left (``clean``) before anything else: a half-copied data directory
is never mistaken for a cluster. Adopted data are never removed: an interrupted adoption is
resumed (its steps can be run again).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError

from pgherd.model.status import Frozen


class DataState(StrEnum):
    EMPTY = "empty"  # no data directory, or an empty one
    CLUSTER = "cluster"  # a PostgreSQL cluster (PG_VERSION and pg_control)
    FILES = "files"  # files that are not a PostgreSQL cluster: not ours to remove


class Work(StrEnum):
    """What a marker says the agent was doing to its data directory."""

    INITDB = "initdb"
    CLONE = "clone"
    ADOPT = "adopt"


class Marker(Frozen):
    work: Work
    at: float  # seconds since the epoch
    source: str | None = None  # the node a clone copies


class Origin(StrEnum):
    INITDB = "initdb"  # created by pgherd's initdb on the claiming node
    ADOPT = "adopt"  # an existing data directory (adopted, or registered)


class ClusterRecord(Frozen):
    """The value of the store's ``initialize`` key."""

    cluster: str  # the cluster's name in pgherd.yaml (keys live under it too)
    by: str  # the node that claimed the creation
    origin: Origin
    at: float  # when it was claimed (seconds since the epoch)
    system_identifier: str | None = None  # None: the initdb is under way


def parse_record(value: str) -> ClusterRecord | None:
    """The record in the key, or None when it holds something else."""
    try:
        return ClusterRecord.model_validate_json(value)
    except ValidationError:
        return None


@dataclass(frozen=True)
class LocalData:
    """This node's data directory, read by its agent."""

    path: Path
    state: DataState
    system_identifier: str | None = None
    standby: bool = False  # standby.signal: a standby's data
    running: bool = False  # a postmaster runs on it
    pgherd_made: bool = False  # postgresql.conf includes pgherd's settings file
    marker: Marker | None = None


@dataclass(frozen=True)
class PeerData:
    """Another data node, as its agent answered this cycle."""

    name: str
    reachable: bool
    system_identifier: str | None = None  # None: it holds no cluster
    standby: bool = False
    running_primary: bool = False
    checked_in: bool = False  # its check-in is in the store (its agent is alive)


@dataclass(frozen=True)
class BootWorld:
    store_ok: bool
    cluster: str  # this config's cluster name
    record: ClusterRecord | None = None
    record_version: int = 0  # the key's version (0: absent)
    record_problem: str | None = None  # the key holds something that is not a record
    leader: str | None = None
    peers: tuple[PeerData, ...] = ()
    now: float = 0.0  # seconds since the epoch
    stale_after: float = 60.0  # a claim this old whose claimer does not check in is taken over

    def peer(self, name: str) -> PeerData | None:
        return next((p for p in self.peers if p.name == name), None)


class Step(StrEnum):
    MEMBER = "member"  # the data are the store's cluster: the HA loop takes over
    WAIT = "wait"
    CLEAN = "clean"  # remove what an interrupted initdb or clone left, then decide again
    INITDB = "initdb"  # claim the cluster's creation (or keep my claim), then initdb
    REGISTER = "register"  # claim the cluster with the system identifier of data pgherd made
    ADOPT = "adopt"  # claim it with this data's identifier, then adopt the PostgreSQL
    CLONE = "clone"  # copy the leader
    REFUSE = "refuse"  # the data are another cluster's: never started as a member


@dataclass(frozen=True)
class Plan:
    step: Step
    reason: str
    source: str | None = None  # CLONE: the leader to copy


def decide(me: str, data: LocalData, world: BootWorld) -> Plan:
    if not world.store_ok:
        if data.running and data.marker is None:
            # A running server must be watched by the HA loop, which fences a primary that
            # cannot reach the store; it changes nothing else without the store.
            return Plan(
                Step.MEMBER, "the store is unreachable and PostgreSQL runs: the HA loop takes over"
            )
        return Plan(
            Step.WAIT,
            "the store is unreachable: waiting (a cluster is created, joined or adopted only "
            "through it)",
        )
    if world.record_problem is not None:
        return Plan(Step.WAIT, world.record_problem)
    record = world.record
    if record is not None and record.cluster != world.cluster:
        return Plan(
            Step.REFUSE,
            f"the store's initialize key names the cluster {record.cluster!r}, not "
            f"{world.cluster!r}: two clusters must not share keys",
        )
    if data.marker is not None and interrupted(data, record):
        return Plan(Step.CLEAN, cleaning_sentence(data))
    if record is None:
        return _no_cluster(me, data, world)
    if record.system_identifier is None:
        return _being_initialised(me, data, world, record)
    return _published(me, data, world, record, record.system_identifier)


def interrupted(data: LocalData, record: ClusterRecord | None) -> bool:
    """Whether the marker's work died half-way and its files must go. A clone always
    (only its end removes the marker); an initdb unless its data are the published
    cluster (it died after publishing, before removing the marker); an adoption never:
    the operator's data are only ever adopted, and an adoption is resumed."""
    marker = data.marker
    if marker is None or marker.work is Work.ADOPT:
        return False
    if marker.work is Work.CLONE:
        return True
    published = record.system_identifier if record is not None else None
    return not (data.state is DataState.CLUSTER and data.system_identifier == published)


def cleaning_sentence(data: LocalData) -> str:
    assert data.marker is not None
    work = data.marker.work
    what = (
        f"a clone from {data.marker.source}"
        if work is Work.CLONE and data.marker.source
        else (f"an {work}" if work is Work.INITDB else f"a {work}")
    )
    return (
        f"{what} did not finish (this agent stopped while it ran): removing what it left in "
        f"{data.path}, then starting again"
    )


def _data_problem(data: LocalData) -> Plan:
    return Plan(
        Step.WAIT,
        f"{data.path} holds files but no PostgreSQL cluster: not touching them (empty the "
        "directory, or point data_dir elsewhere)",
    )


def _no_cluster(me: str, data: LocalData, world: BootWorld) -> Plan:
    if data.state is DataState.FILES:
        return _data_problem(data)
    if data.state is DataState.CLUSTER:
        return _claim_with_data(me, data, world)
    holders = [p for p in world.peers if p.reachable and p.system_identifier is not None]
    if holders:
        first = holders[0]
        return Plan(
            Step.WAIT,
            f"{first.name} holds a PostgreSQL cluster (system identifier "
            f"{first.system_identifier}): waiting for it to be adopted, then cloning it",
        )
    silent = [p.name for p in world.peers if not p.reachable]
    if silent:
        return Plan(
            Step.WAIT,
            f"the store holds no cluster: waiting for {', '.join(silent)} to answer before "
            "anyone runs initdb (a node that holds data is adopted, never overwritten)",
        )
    return Plan(
        Step.INITDB,
        "the store holds no cluster and no node holds data: claiming the cluster's creation",
    )


def _claim_with_data(me: str, data: LocalData, world: BootWorld) -> Plan:
    """This node holds a cluster and the store holds no record of one (or only my own
    unpublished claim)."""
    sysid = data.system_identifier
    leader = world.leader
    if leader is not None and leader != me:
        # A cluster that ran before the store had the key (an older pgherd): its leader's
        # data decide what the cluster is.
        peer = world.peer(leader)
        if peer is None or not peer.reachable or peer.system_identifier is None:
            return Plan(
                Step.WAIT,
                f"{leader} leads but its agent did not answer: waiting to compare system "
                "identifiers",
            )
        if peer.system_identifier != sysid:
            return Plan(Step.REFUSE, refusal(data, world.cluster, peer.system_identifier, leader))
        return Plan(
            Step.REGISTER,
            f"the store has a leader ({leader}) but no cluster record: recording system "
            f"identifier {sysid}, the leader's and mine",
        )
    if leader == me:
        return Plan(
            Step.REGISTER,
            f"I lead and the store has no cluster record: recording system identifier {sysid}",
        )
    if data.standby:
        return Plan(
            Step.WAIT,
            f"{data.path} holds a standby's data (system identifier {sysid}) and the store "
            "holds no cluster: start the agent of its primary first (it adopts its data), or "
            "move this directory aside to clone anew",
        )
    if data.pgherd_made:
        return Plan(
            Step.REGISTER,
            f"the store holds no cluster: recording this node's (system identifier {sysid}, "
            "made by pgherd) as the cluster",
        )
    return Plan(
        Step.ADOPT,
        f"the store holds no cluster: adopting the PostgreSQL cluster in {data.path} "
        f"(system identifier {sysid}) as the primary",
    )


def _being_initialised(me: str, data: LocalData, world: BootWorld, record: ClusterRecord) -> Plan:
    """Someone claimed the creation (an initdb) and did not publish it yet."""
    if record.by == me:
        if data.state is DataState.EMPTY:
            return Plan(Step.INITDB, "I claimed the cluster's creation: running initdb")
        if data.state is DataState.FILES:
            return _data_problem(data)
        return _claim_with_data(me, data, world)
    if data.state is not DataState.EMPTY:
        held = (
            f"this node's data (system identifier {data.system_identifier}) will not be it"
            if data.state is DataState.CLUSTER
            else "this node's data directory holds other files"
        )
        return Plan(Step.WAIT, f"{record.by} is creating the cluster, and {held}: waiting")
    claimer = world.peer(record.by)
    age = world.now - record.at
    gone = claimer is None or not claimer.checked_in
    if gone and age > world.stale_after:
        holders = [p.name for p in world.peers if p.reachable and p.system_identifier]
        if not holders:
            return Plan(
                Step.INITDB,
                f"{record.by} claimed the cluster's creation {age:.0f} s ago and has not "
                "checked in since: taking the claim over",
            )
    return Plan(Step.WAIT, f"{record.by} is creating the cluster: waiting to clone it")


def _published(
    me: str, data: LocalData, world: BootWorld, record: ClusterRecord, sysid: str
) -> Plan:
    if data.state is DataState.FILES:
        return _data_problem(data)
    if data.state is DataState.CLUSTER:
        if data.system_identifier != sysid:
            return Plan(Step.REFUSE, refusal(data, world.cluster, sysid, record.by))
        if data.marker is not None and data.marker.work is Work.ADOPT and record.by == me:
            return Plan(
                Step.ADOPT, f"resuming the adoption of {data.path} (system identifier {sysid})"
            )
        return Plan(Step.MEMBER, f"{data.path} holds the cluster (system identifier {sysid})")
    leader = world.leader
    if leader is None:
        return Plan(Step.WAIT, "this node holds no data yet: waiting for a leader to clone")
    if leader == me:
        return Plan(
            Step.WAIT,
            "the store says I lead but this node holds no data: waiting for the lease to lapse",
        )
    peer = world.peer(leader)
    if peer is None or not peer.reachable or not peer.running_primary:
        return Plan(
            Step.WAIT, f"waiting for the leader {leader} to run as the primary, to clone it"
        )
    if peer.system_identifier != sysid:
        return Plan(
            Step.WAIT,
            f"the leader {leader} runs the cluster {peer.system_identifier}, not the store's "
            f"{sysid}: two clusters under the name {world.cluster!r}? not cloning",
        )
    return Plan(Step.CLONE, f"this node holds no data: cloning the leader {leader}", source=leader)


def refusal(data: LocalData, cluster: str, expected: str | None, whose: str) -> str:
    """The one line an operator reads when a data directory is another cluster's."""
    return (
        f"not starting {data.path} as a member: it holds the cluster with system identifier "
        f"{data.system_identifier}, but the cluster {cluster!r} is {expected} ({whose}'s) — "
        f"move it aside (mv {data.path} {data.path}.old): this agent then clones the cluster"
    )
