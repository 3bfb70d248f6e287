"""The quick commands' config, read as the full CLI's ``cli/options.load_config`` reads it:
the file through the cache (no pydantic once its text was validated), and, when the agents
ask every read for a credential (``api.auth_reads``), the viewer's token for this
process's reads (else the operator's)."""

from __future__ import annotations

from pathlib import Path

from pgherd import config_cache
from pgherd.clients.agent import read_as_viewer
from pgherd.config_lite import LiteConfig, config_path


def load_config(config_file: Path | None) -> LiteConfig:
    config = config_cache.load(config_path(config_file))
    read_as_viewer(config)
    return config
