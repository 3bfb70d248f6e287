"""Typed clients of the agents' HTTP API, one module per API area.

They sit just above ``pg/`` and ``dcs/`` so that every layer that talks to another node's
agent (the HA loop, cluster operations, the archive, the mesh, the CLI and the console)
can import them without reaching up into ``api/``, where the routes live.
"""
