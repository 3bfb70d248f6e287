"""Cluster operations orchestrated through the agents' API: switchover, promote, follow,
rejoin, events.

This layer sits where the CLI and the web console do (it talks to agents over HTTP and
never touches a node's files), so both use the same code and the same commands work when
the nodes are on other hosts. Decisions come from ``pgherd.model``; each agent performs
its node's steps (``pgherd.ha.operations``).
"""
