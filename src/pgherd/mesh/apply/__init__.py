"""pgherd's apply worker: pgoutput over the streaming replication protocol, applied to a
target under a replication origin (exactly once), with conflict handling for multi-master.

Modules: ``pgoutput`` and ``messages`` (the protocol, pure), ``encode`` and ``splice``
(COPY BINARY, arrays and code made per table layout, pure), ``stream`` (the replication
connection), ``target`` (a table's statements on the target), ``state`` (the states, as
enums), ``session`` (the target connection: local transaction, COPY run, batch in flight),
``batch`` (a batch of row changes), ``applier`` (the one owner of the transaction state:
remote transactions, groups, batches), ``conflicts`` (one row at a time through the
policy), ``worker`` (the loop that reads the stream and feeds the applier). docs/mesh.md,
"Inside the worker", draws them.
"""
