"""Real PostgreSQL servers for integration tests, started with pg_ctl as ``postgres``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgherd.config import ClusterConfig
from pgherd.pg import osuser
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap
from tests.conftest import free_port_base
from tests.support import cluster_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(module_dir: Path, os_user: osuser.OsUser) -> Iterator[ClusterConfig]:
    """Three configured nodes; node1 is an initialised, running primary with the
    replication role; the others are left for the tests to clone. Every server any test
    of the module started is stopped at the end."""
    config = cluster_config(module_dir, os_user, 3, free_port_base(3, (0, 1000)))
    primary = LocalNode.open(config, "node1")
    bootstrap.init_primary(primary)
    primary.instance.start()
    bootstrap.create_replication_role(primary)
    yield config
    for node in config.nodes:
        LocalNode.open(config, node.name).instance.stop("immediate")
