"""Logical replication: publications, subscriptions and pgherd's own apply worker."""
