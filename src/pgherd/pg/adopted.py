"""``pgherd.adopted`` in a data directory: the operator's settings before pgherd adopted
it (model/adopt.py). It lives in the data directory so that clones and rewinds carry it to
every node of the cluster, each of which derives its settings from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pgherd.errors import ConfigError
from pgherd.pg.osuser import OsUser

if TYPE_CHECKING:
    from pgherd.model.adopt import Original

ADOPTED_FILE = "pgherd.adopted"


def read(data_dir: Path) -> Original | None:
    """The recorded values, or None for data pgherd made (or has not adopted yet)."""
    path = data_dir / ADOPTED_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    # pydantic only for data pgherd adopted: `standby clone` of a node pgherd made is a
    # quick command, which starts without it.
    from pydantic import ValidationError

    from pgherd.model.adopt import Original

    try:
        return Original.model_validate_json(text)
    except ValidationError:
        raise ConfigError(
            f"{path} is not what pgherd wrote there",
            "restore it from another node's data directory (every node has the same)",
        ) from None


def write(data_dir: Path, original: Original, user: OsUser) -> None:
    user.write_file(data_dir / ADOPTED_FILE, original.model_dump_json(indent=2) + "\n")
