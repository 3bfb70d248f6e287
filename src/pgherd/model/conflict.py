"""Conflicts between a replicated change and the row the target holds, and how each policy
resolves them. Pure decisions; the apply worker reads the local row, asks :func:`decide`
and does what it says.

A row *version* is who wrote the row last and when: the node (the target itself, or the
node whose change a worker applied: replication origins record it per transaction) and
the commit timestamp (``track_commit_timestamp``; an applied transaction keeps the
remote commit time, because the worker sets it with ``pg_replication_origin_xact_setup``).

Conflicts (the names follow PostgreSQL 18's):

- ``insert_exists``: an INSERT whose key is already there;
- ``update_missing`` / ``delete_missing``: the row to change is not there;
- ``update_differs`` / ``delete_differs``: the row was last written by another node than
  the one the change comes from (a write here, or from a third node), and the source had
  not applied that version when it made its change: the two writes were concurrent.

Whether the source had seen the local version is known exactly from its stream: the
transactions it applied from other nodes pass through it (the worker skips them, loop
prevention) with an Origin message naming the node and a Begin carrying their commit time
(applied transactions keep their original commit time). A change made after the source
applied the local version follows it and is applied without a conflict, whatever the
clocks say: that is what keeps two nodes from diverging when one updates a row another
inserted.

Resolutions by policy:

=================  ==========================  =======================  ==================
conflict           last-update-wins            node-priority            error
=================  ==========================  =======================  ==================
insert_exists      newer commit time wins      higher-priority node     stop the worker
update_differs     newer commit time wins      higher-priority node     stop the worker
update_missing     skip (the delete wins)      skip (the delete wins)   stop the worker
delete_differs     delete (the delete wins)    delete (the delete wins) stop the worker
delete_missing     skip                        skip                     skip
=================  ==========================  =======================  ==================

Commit times are compared at a resolution of ``resolution_us`` (100 ms by default, set per
mesh): the apply worker commits small remote transactions in groups, and a group records
one commit time for all its rows (the last one's); a group never spans two slots of that
length, so every node sees each version in the same slot and reaches the same decision
(exact grouping would need a commit time per row, which PostgreSQL does not keep). Bigger
slots make bigger groups (faster catch-up after a backlog of small transactions: see
docs/benchmarks.md); changes to one row in one slot are a tie, which goes to the node
whose name sorts first. A row whose version is unknown (written before commit timestamps
were on, or frozen long ago) loses to any change. An UPDATE racing a DELETE always ends
deleted: without tombstones a deleted row leaves no time to compare, and "the delete wins"
is the rule that converges on every node. Two deletes of one row agree, so even ``error``
only records them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# Commit times are compared in slots of this many microseconds (see the module docstring).
TIME_RESOLUTION_US = 100_000


class Policy(StrEnum):
    LAST_UPDATE_WINS = "last-update-wins"
    NODE_PRIORITY = "node-priority"
    ERROR = "error"


class Change(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


class ConflictKind(StrEnum):
    INSERT_EXISTS = "insert_exists"
    UPDATE_MISSING = "update_missing"
    UPDATE_DIFFERS = "update_differs"
    DELETE_MISSING = "delete_missing"
    DELETE_DIFFERS = "delete_differs"


class Resolution(StrEnum):
    APPLY = "apply"  # no conflict: apply the change as it is
    APPLY_REMOTE = "apply-remote"  # conflict: the remote change wins (an insert overwrites)
    KEEP_LOCAL = "keep-local"  # conflict: the local row stays, the change is dropped
    SKIP = "skip"  # conflict: nothing to do (the row is not there)
    ERROR = "error"  # conflict: stop the worker and show it


@dataclass(frozen=True)
class Version:
    """Who wrote a row last and when (microseconds since 2000-01-01 UTC, as PostgreSQL
    counts); ``node`` None when it cannot be known. ``baseline``: the row came with a
    node's initial copy (model/mesh_copy.py): every change that reaches it was made after
    the copy's snapshot, so it follows that version and is no conflict."""

    node: str | None
    commit_time: int | None
    baseline: bool = False


@dataclass(frozen=True)
class Decision:
    conflict: ConflictKind | None
    resolution: Resolution
    reason: str


def classify(
    change: Change, local: Version | None, source: str, source_saw_local: bool = False
) -> ConflictKind | None:
    """The conflict, if any, of applying ``change`` from ``source`` to a row whose current
    version is ``local`` (None: there is no row with the key). ``source_saw_local``: the
    source had applied the local version before it made the change."""
    if local is not None and (local.node == source or source_saw_local or local.baseline):
        return None
    if change is Change.INSERT:
        return None if local is None else ConflictKind.INSERT_EXISTS
    if local is None:
        return (
            ConflictKind.UPDATE_MISSING if change is Change.UPDATE else ConflictKind.DELETE_MISSING
        )
    if local.node == source:
        return None
    return ConflictKind.UPDATE_DIFFERS if change is Change.UPDATE else ConflictKind.DELETE_DIFFERS


def saw(seen: dict[str, int], local: Version | None) -> bool:
    """Whether a source that had applied each node's transactions up to ``seen[node]``
    (commit times) had applied the ``local`` version."""
    if local is None or local.node is None or local.commit_time is None:
        return False
    return seen.get(local.node, -1) >= local.commit_time


def newer_wins(
    local: Version, remote: Version, resolution_us: int = TIME_RESOLUTION_US
) -> tuple[bool, str]:
    """Last update wins: whether the remote version beats the local one, and why."""
    if local.commit_time is None:
        return True, "the local row has no commit timestamp"
    if remote.commit_time is None:
        return False, "the remote change has no commit timestamp"
    local_slot = local.commit_time // resolution_us
    remote_slot = remote.commit_time // resolution_us
    if remote_slot != local_slot:
        won = remote_slot > local_slot
        return won, "the remote change is newer" if won else "the local row is newer"
    won = (remote.node or "") < (local.node or "\uffff")
    first = remote.node if won else local.node
    return won, f"same commit time (to {resolution_us // 1000} ms); {first} sorts first"


def priority_wins(local: Version, remote: Version, priority: Sequence[str]) -> tuple[bool, str]:
    """Node priority: whether the remote version's node outranks the local one's."""

    def rank(node: str | None) -> int:
        return priority.index(node) if node in priority else len(priority)

    won = rank(remote.node) < rank(local.node)
    if won:
        return True, f"{remote.node} has priority over {local.node or 'an unknown writer'}"
    return False, f"{local.node} has priority over {remote.node}"


def decide(
    policy: Policy,
    change: Change,
    local: Version | None,
    remote: Version,
    priority: Sequence[str] = (),
    resolution_us: int = TIME_RESOLUTION_US,
    source_saw_local: bool = False,
) -> Decision:
    """What to do with ``change`` (written on ``remote.node`` at ``remote.commit_time``)
    given the local row's version; ``priority`` lists nodes from the highest."""
    source = remote.node or ""
    kind = classify(change, local, source, source_saw_local)
    if kind is None:
        return Decision(None, Resolution.APPLY, "no conflict")
    if kind is ConflictKind.DELETE_MISSING:
        return Decision(kind, Resolution.SKIP, "the row is already deleted")
    if policy is Policy.ERROR:
        return Decision(kind, Resolution.ERROR, "the policy is error: stop and show")
    if kind is ConflictKind.UPDATE_MISSING:
        return Decision(kind, Resolution.SKIP, "the row was deleted here: the delete wins")
    if kind is ConflictKind.DELETE_DIFFERS:
        return Decision(kind, Resolution.APPLY_REMOTE, "the delete wins")
    assert local is not None
    if policy is Policy.LAST_UPDATE_WINS:
        won, why = newer_wins(local, remote, resolution_us)
    else:
        won, why = priority_wins(local, remote, priority)
    return Decision(kind, Resolution.APPLY_REMOTE if won else Resolution.KEEP_LOCAL, why)
