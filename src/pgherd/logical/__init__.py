"""Logical replication on stock PostgreSQL: publications, subscriptions, schema sync,
DDL roll-out, sequence sync and major-version upgrades (a module per verb).

Node-local operations (``publication``, ``subscription``, ``schema``, ``sequences``,
``ddl``) run inside a node's agent over its local socket; ``rollout`` and ``upgrade``
drive several agents through their API, as the CLI and the console do. ``apply``
is pgherd's own apply worker for multi-master (docs/mesh.md).
"""
