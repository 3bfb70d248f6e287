"""Schema changes in the stream (docs/mesh.md, "DDL in the stream"): the applier's part of
them, kept apart from its hot path.

- A row of the mesh's DDL log (``pgherd.mesh_ddl``, published like the mesh's tables) is a
  schema change made on the source: its statement runs here at that place in the stream,
  with the search_path it ran with there, once the changes it follows have run here
  (:class:`~pgherd.mesh.apply.waits.DdlWait`), and the group commits right after (the
  statement locks its table).
- A table whose rows still carry columns a logged change dropped here is described
  without them, and its rows take the row path with those values left out; a column that
  is neither here nor dropped is on its way (:class:`~pgherd.mesh.apply.waits.SchemaWait`).
"""

from __future__ import annotations

import logging

from pgherd.mesh.apply import pgoutput as po
from pgherd.mesh.apply.batch import RemoteTxn
from pgherd.mesh.apply.conflicts import ApplyContext, Counters, RowApplier
from pgherd.mesh.apply.session import TargetSession
from pgherd.mesh.apply.target import MissingColumns, TargetTable, describe
from pgherd.mesh.apply.waits import DdlWait, SchemaWait, dropped_columns, parse_after
from pgherd.model.conflict import Change

log = logging.getLogger("pgherd.apply")

DDL_LOG = ("pgherd", "mesh_ddl")
_DDL_TEXT = frozenset({"mesh", "statement", "search_path", "after"})  # columns read, as text


class SchemaChanges:
    def __init__(
        self, session: TargetSession, ctx: ApplyContext, rows: RowApplier, counters: Counters
    ) -> None:
        self.session = session
        self.ctx = ctx
        self.rows = rows
        self.counters = counters
        self._ddl_relid: int | None = None
        self._keep: dict[int, tuple[int, ...]] = {}  # relid -> the source's columns kept
        self.ran_in_group = False  # a statement ran in the open group: commit it at once

    def describe(self, relation: po.Relation) -> TargetTable:
        """The target's table for a Relation message, without columns dropped here; a
        column that is neither here nor dropped makes the worker wait for it."""
        relid = relation.relid
        try:
            table = describe(self.session.conn, relation)
            self._keep.pop(relid, None)
        except MissingColumns as exc:
            dropped = self._dropped(exc.table)
            waiting = [c for c in exc.columns if c not in dropped]
            if waiting:
                raise SchemaWait(exc.table, waiting) from None
            table = describe(self.session.conn, relation, ignore=exc.columns)
            self._keep[relid] = tuple(
                i for i, c in enumerate(relation.columns) if c.name not in exc.columns
            )
        if (relation.namespace, relation.name) == DDL_LOG:
            self._ddl_relid = relid
        return table

    def takes(self, relid: int) -> bool:
        """Changes of this relation take :meth:`apply` rather than the batches."""
        return relid == self._ddl_relid or relid in self._keep

    def apply(
        self, change: Change, relid: int, table: TargetTable, payload: bytes, txn: RemoteTxn
    ) -> None:
        """One change, one row: a DDL log row (its statement runs first) or a row whose
        dropped columns are left out. Everything pending was applied before."""
        message = po.decode(payload)
        keep = self._keep.get(relid)

        def project(data: po.TupleData | None) -> po.TupleData | None:
            if data is None or keep is None:
                return data
            return po.TupleData(
                "".join(data.kinds[i] for i in keep), tuple(data.values[i] for i in keep)
            )

        if isinstance(message, po.Insert):
            new = project(message.new)
            assert new is not None
            if relid == self._ddl_relid and not self._run(table, new):
                return  # another mesh's change: its own workers bring the row and run it
            self.rows.apply(table, Change.INSERT, new, new, txn)
        elif isinstance(message, po.Update):
            new = project(message.new)
            assert new is not None
            self.rows.apply(table, change, project(message.old) or new, new, txn)
        else:
            assert isinstance(message, po.Delete)
            old = project(message.old)
            assert old is not None
            self.rows.apply(table, change, old, None, txn)

    def _dropped(self, table: str) -> set[str]:
        """Columns of ``table`` that a logged schema change of the mesh dropped here."""
        prefix = f"{table}."
        return {
            line.removeprefix(prefix)
            for line in dropped_columns(self.session.conn, self.ctx.mesh)
            if line.startswith(prefix)
        }

    def _run(self, table: TargetTable, row: po.TupleData) -> bool:
        """Run a schema change the source logged for this mesh, with the search_path it ran
        with there; False for another mesh's row. Every mesh publishes the one log table,
        so two meshes with members in common both stream each row: only the row's own
        mesh may write it here, or its workers would meet it already written (a conflict)
        and take a change that never ran here for one that did (``DdlWait``)."""
        values = {
            name: (value or b"").decode()
            for name, value in zip(table.columns, row.values, strict=True)
            if name in _DDL_TEXT
        }
        if values.get("mesh") != self.ctx.mesh:
            return False
        waiting = DdlWait(parse_after(values.get("after", "")))
        if not waiting.ready(self.session.conn, self.ctx.mesh):
            raise waiting
        statement = values["statement"]
        log.info("running a schema change from %s: %s", self.ctx.source, statement)
        session = self.session
        previous = session.execute("SELECT current_setting('search_path')").fetchone()
        session.execute("SELECT set_config('search_path', %s, true)", (values["search_path"],))
        session.execute(statement.encode())
        session.execute(
            "SELECT set_config('search_path', %s, true)", (previous[0] if previous else "",)
        )
        self.ran_in_group = True
        self.counters.schema_changes += 1
        return True
