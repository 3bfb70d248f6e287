"""The states of the apply worker, each owned by one object.

The worker's own life (:class:`pgherd.model.mesh.WorkerState`, the values its status file
shows and its agent reports) is the :class:`~pgherd.mesh.apply.worker.Worker`'s. Everything
about transactions is the :class:`~pgherd.mesh.apply.applier.Applier`'s, along two axes
that move independently:

- :class:`Remote`, where the stream is relative to the source's transactions;
- :class:`Target`, what the connection to the target is doing, kept by the applier's
  :class:`~pgherd.mesh.apply.session.TargetSession`.

A *group* (consecutive remote transactions applied in one local transaction) is open
exactly when the target is not ``IDLE``; it may stay open between remote transactions, and
a COPY run may stay open across the transactions of a group::

    Remote:  BETWEEN --Begin--> BEGUN --first change--> APPLYING --Commit--> BETWEEN
                                  |  \\--Commit (nothing applied)-------------^
                                  \\--Origin, or applied before--> SKIPPING --Commit--^

    Target:  IDLE --begin--> OPEN <--> COPY  (a run of inserts streaming)
                              ^  <--> BATCH (a batch statement in flight, pipeline mode)
             IDLE <--commit under the origin-- OPEN
"""

from __future__ import annotations

from enum import StrEnum


class Remote(StrEnum):
    """Where the stream is relative to the source's transactions."""

    BETWEEN = "between"  # between transactions
    BEGUN = "begun"  # Begin read; an Origin message, if any, comes next
    APPLYING = "applying"  # a change was applied: the transaction is in the open group
    SKIPPING = "skipping"  # it carries an origin, or was applied before a restart: dropped


class Target(StrEnum):
    """What the connection to the target is doing."""

    IDLE = "idle"  # no local transaction: no group open
    OPEN = "open"  # a local transaction (the group) is open; a statement can run
    COPY = "copy"  # a COPY run of inserts is streaming: no other statement can run
    BATCH = "batch"  # a batch statement is in flight (pipeline mode), its result unread
