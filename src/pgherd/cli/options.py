"""Options every command shares, so names and help stay the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pgherd import config as config_mod
from pgherd.config import ClusterConfig

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help=(
            "pgherd.yaml to use (default: $PGHERD_CONFIG, then ./pgherd.yaml, then "
            "/etc/pgherd/pgherd.yaml)"
        ),
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
NodeArg = Annotated[str, typer.Argument(help="node name from pgherd.yaml", show_default=False)]


def load_config(path: Path | None) -> ClusterConfig:
    config = config_mod.load(config_mod.config_path(path))
    if config.api.auth_reads:
        from pgherd.clients.agent import read_as_viewer

        read_as_viewer(config)
    return config
