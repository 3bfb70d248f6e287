"""Physical (streaming) replication operations, a module per verb."""
