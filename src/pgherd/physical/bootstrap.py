"""A new primary: initdb, pgherd's settings and access rules, and the replication role."""

from __future__ import annotations

from collections.abc import Sequence

from pgherd.pg import passfile, roles
from pgherd.pg.local_node import LocalNode


def init_primary(local: LocalNode, prefix: Sequence[str] = ()) -> None:
    """initdb and configure; the agent starts the server afterwards. ``prefix``: what
    initdb's command line starts with (see Instance.initdb)."""
    local.prepare_home()
    password = passfile.password_for(local.config.passfile, local.config.superuser)
    local.instance.initdb(password, prefix=prefix)
    local.write_config(upstream=None)


def create_replication_role(local: LocalNode) -> None:
    """Run on the (running) primary once; standbys get the role through replication."""
    password = passfile.password_for(local.config.passfile, local.config.replication_user)
    with local.instance.connect() as conn:
        roles.ensure_replication_role(conn, local.config.replication_user, password)
