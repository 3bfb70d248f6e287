"""The coordination store: one small interface, several backends.

The HA loop needs few things from a store, but needs them atomic. Each method documents
the atomicity a backend must give; the contract tests (tests/integration/test_dcs.py) run
the same cases against every backend.

Keys are grouped under the cluster's name (``cluster:`` in pgherd.yaml), so that two
clusters sharing one store never see each other's keys: ``initialize`` (which PostgreSQL
cluster this is: who claimed its creation, then its system identifier; no TTL),
``leader`` (the lease), ``members/<name>`` (each agent's check-in, with a TTL), ``config``
(cluster-wide state, compare-and-set by version) and ``events/<sortable id>`` (the
history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pgherd.errors import PgherdError


class StoreUnavailable(PgherdError):
    """The store did not answer (every endpoint failed or timed out)."""

    default_hint = "check that the coordination store (etcd or the sqlite file) is reachable"


@dataclass(frozen=True)
class Leader:
    """Who holds the leader lease, and for how long at most (seconds, as the store says)."""

    name: str
    ttl_left: float | None = None


@dataclass(frozen=True)
class Member:
    """A member's check-in as the store holds it, and how long it has left."""

    name: str
    data: str  # JSON written by the member's agent
    ttl_left: float | None = None


@dataclass(frozen=True)
class Versioned:
    """A value and its version, for a compare-and-set that fails if another wrote."""

    value: str
    version: int  # changes on every write; 0 means "absent"


@dataclass(frozen=True)
class Snapshot:
    """Everything one HA cycle reads, read once (decisions never re-read the store)."""

    leader: Leader | None
    members: tuple[Member, ...]
    config: Versioned | None
    read_at: float = field(default=0.0)
    initialize: Versioned | None = None


class Store(Protocol):
    """What a coordination-store backend provides. All methods raise StoreUnavailable
    when the store cannot be reached; no method returns a guess."""

    def acquire_leader(self, name: str, ttl: float) -> bool:
        """Create the leader key for ``name`` with a lease of ``ttl`` seconds.

        Atomic create-if-absent: if any unexpired leader key exists (even ``name``'s own),
        return False and change nothing.
        """
        ...

    def renew_leader(self, name: str, ttl: float) -> bool:
        """Extend the lease to ``ttl`` seconds from now, only if ``name`` holds it.

        Atomic compare-and-set on the holder: if the key is absent, expired or held by
        another member, return False and change nothing.
        """
        ...

    def release_leader(self, name: str) -> bool:
        """Delete the leader key only if ``name`` holds it (atomic delete-if-mine)."""
        ...

    def leader(self) -> Leader | None:
        """The current holder of an unexpired lease, or None."""
        ...

    def touch_member(self, name: str, data: str, ttl: float) -> None:
        """Write ``members/<name>`` with a TTL (last writer wins; only its agent writes it)."""
        ...

    def remove_member(self, name: str) -> None: ...

    def members(self) -> tuple[Member, ...]:
        """Unexpired members, by name."""
        ...

    def config(self) -> Versioned | None: ...

    def set_config(self, value: str, expected_version: int) -> bool:
        """Write the config only if its version is still ``expected_version`` (0: absent).

        Atomic compare-and-set; False (nothing written) when someone wrote it meanwhile.
        """
        ...

    def initialize(self, value: str, expected_version: int = 0) -> bool:
        """Write the ``initialize`` key: which PostgreSQL cluster this store's cluster is
        (model/bootstrap.py reads it: who claimed its creation, then its system identifier).

        With ``expected_version`` 0, an atomic create-if-absent: of any number of agents
        racing to initialise the cluster exactly one gets True, the others False with
        nothing changed. Otherwise an atomic compare-and-set on the version (the claimer
        publishes the system identifier; an agent takes over a claim whose claimer is gone):
        False, with nothing written, when anyone wrote or deleted the key meanwhile. The key
        has no TTL: it outlives every agent, as the cluster does.
        """
        ...

    def initialization(self) -> Versioned | None:
        """The ``initialize`` key and its version, or None when no cluster was claimed."""
        ...

    def cancel_initialization(self, expected_version: int) -> bool:
        """Delete the ``initialize`` key only if its version is still ``expected_version``
        (an agent whose initdb failed gives its claim back). Atomic delete-if-unchanged."""
        ...

    def append_event(self, event: str) -> None:
        """Add an event to the history; events keep their order of appending per writer
        and are listed by the time they were appended."""
        ...

    def events(self, limit: int = 100) -> tuple[str, ...]:
        """The newest ``limit`` events, oldest first."""
        ...

    def snapshot(self) -> Snapshot:
        """Leader, members, config and the initialize key in one read (as consistent as the
        backend allows)."""
        ...

    def close(self) -> None: ...
