"""``pgherd.adopted`` in a data directory: the operator's settings before pgherd adopted
it (model/adopt.py). It lives in the data directory so that clones and rewinds carry it to
every node of the cluster, each of which derives its settings from it."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from pgherd.errors import ConfigError
from pgherd.model.adopt import Original
from pgherd.pg.osuser import OsUser

ADOPTED_FILE = "pgherd.adopted"


def read(data_dir: Path) -> Original | None:
    """The recorded values, or None for data pgherd made (or has not adopted yet)."""
    path = data_dir / ADOPTED_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return Original.model_validate_json(text)
    except ValidationError:
        raise ConfigError(
            f"{path} is not what pgherd wrote there",
            "restore it from another node's data directory (every node has the same)",
        ) from None


def write(data_dir: Path, original: Original, user: OsUser) -> None:
    user.write_file(data_dir / ADOPTED_FILE, original.model_dump_json(indent=2) + "\n")
