"""pgherd: set up, operate and watch PostgreSQL replication end to end."""

__version__ = "0.1.0"
