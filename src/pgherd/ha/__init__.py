"""The per-node agent: it owns its PostgreSQL and keeps it in the state it was told."""
