"""``subscription sync-sequences``: the subscriber's sequences moved past the
publisher's, read through the subscription's own connection (the replication role may
read the sequences of the tables pgherd published)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from pgherd.logical import subscription as subscription_ops
from pgherd.model import sequences as model
from pgherd.model.names import QualifiedName
from pgherd.model.sequences import SequenceState
from pgherd.model.subscription import SequenceSync
from pgherd.pg import remote
from pgherd.pg.local_node import LocalNode

Conn = psycopg.Connection[Any]

_READ = """
SELECT s.schemaname, s.sequencename,
       has_sequence_privilege(format('%I.%I', s.schemaname, s.sequencename), 'SELECT')
           AS readable,
       CASE WHEN has_sequence_privilege(format('%I.%I', s.schemaname, s.sequencename),
                                        'SELECT')
            THEN s.last_value END AS last_value,
       s.increment_by, s.min_value, s.max_value
FROM pg_sequences s
WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2
"""


def read(conn: Conn) -> list[SequenceState]:
    return [
        SequenceState(
            name=QualifiedName(r[0], r[1]),
            readable=bool(r[2]),
            last_value=r[3],
            increment=r[4],
            min_value=r[5],
            max_value=r[6],
        )
        for r in conn.execute(_READ).fetchall()
    ]


def sync(local: LocalNode, name: str, dbname: str | None, margin: int) -> list[SequenceSync]:
    row = subscription_ops.lookup(local, name, dbname)
    with remote.connect(row["subconninfo"]) as pub:
        publisher = read(pub)
    with local.instance.connect(row["datname"]) as conn:
        mine = {s.name: s for s in read(conn)}
        steps = model.plan(publisher, mine, margin, local.config.replication_user)
        with conn.transaction():
            for step in steps:
                if step.new_value is not None:
                    conn.execute(
                        sql.SQL("SELECT setval({}, {}, true)").format(
                            sql.Literal(str(step.name)), sql.Literal(step.new_value)
                        )
                    )
    return [
        SequenceSync(
            schema_name=s.name.schema,
            name=s.name.name,
            publisher_value=s.publisher_value,
            subscriber_value=s.subscriber_value,
            new_value=s.new_value,
            note=s.note,
        )
        for s in steps
    ]
