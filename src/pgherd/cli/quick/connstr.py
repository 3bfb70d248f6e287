"""``pgherd connstr NODE [--replication]``: a libpq URI for psql and scripts."""

from __future__ import annotations

import sys
from pathlib import Path

from pgherd import config_cache
from pgherd.config_lite import config_path
from pgherd.pg import conninfo


def run(node: str, replication: bool, config_file: Path | None) -> int:
    """With the cluster's TLS on, the URI asks for ``sslmode=verify-full`` against the
    cluster CA, as every connection pgherd makes does."""
    config = config_cache.load(config_path(config_file))
    target = config.node(node)
    user = config.replication_user if replication else config.superuser
    uri = conninfo.uri(target.host, target.port, user, config.passfile, sslrootcert=config.ca_file)
    sys.stdout.write(uri + "\n")
    return 0
