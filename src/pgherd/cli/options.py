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
        # The agents ask every read for a credential: the CLI reads as the viewer when it
        # may read that token, else as the operator (its acting calls name that one).
        from pgherd.clients.agent import AgentClient

        AgentClient.default_token = read_credential(config)
    return config


def read_credential(config: ClusterConfig) -> str:
    """The token the CLI reads with: the viewer's when its file is readable (least
    privilege), else the operator's (``$PGHERD_API_TOKEN`` or the token file)."""
    try:
        viewer = config.viewer_token_file.read_text().strip()
    except OSError:
        viewer = ""
    return viewer or config_mod.read_token(config)
