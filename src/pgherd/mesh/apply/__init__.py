"""pgherd's apply worker: pgoutput over the streaming replication protocol, applied to a
target under a replication origin (exactly once), with conflict handling for multi-master.

Modules: ``pgoutput`` (the protocol, pure), ``encode`` (COPY BINARY and arrays, pure),
``stream`` (the replication connection), ``target`` (SQL on the target), ``applier``
(batches, groups and conflicts), ``worker`` (the loop that ties them together).
"""
