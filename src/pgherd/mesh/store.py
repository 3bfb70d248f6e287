"""Where a node keeps its meshes: ``<home>/mesh/NAME.json`` (the spec, as ``mesh create``
gave it), and per incoming pair a status file and a log written by the apply worker.

Files, not tables: the agent reads them without a database connection (PostgreSQL may be
down), and the worker writes its status without touching the database it applies to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pgherd.config_lite import DataNode
from pgherd.errors import ConfigError, Refused
from pgherd.model.mesh import MeshSpec


def mesh_dir(node: DataNode) -> Path:
    return node.home_dir / "mesh"


def spec_path(node: DataNode, name: str) -> Path:
    return mesh_dir(node) / f"{name}.json"


def status_path(node: DataNode, name: str, source: str) -> Path:
    return mesh_dir(node) / f"{name}.from-{source}.status.json"


def log_path(node: DataNode, name: str, source: str) -> Path:
    return mesh_dir(node) / f"{name}.from-{source}.log"


def copy_status_path(node: DataNode, name: str) -> Path:
    """A joining node's initial copy: its progress (mesh/initial_copy.py)."""
    return mesh_dir(node) / f"{name}.copy.json"


def _ensure_dir(node: DataNode) -> Path:
    directory = mesh_dir(node)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def write_json(path: Path, data: Any) -> None:
    """Atomically, mode 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_spec(node: DataNode, spec: MeshSpec) -> None:
    _ensure_dir(node)
    write_json(spec_path(node, spec.name), spec.model_dump(mode="json"))


def load_spec(node: DataNode, name: str) -> MeshSpec:
    path = spec_path(node, name)
    try:
        return MeshSpec.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise Refused(
            f"{node.name} is not a member of a mesh named {name}",
            "see the meshes with `pgherd mesh status`",
        ) from None
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a valid mesh spec: {exc.errors()[0]['msg']}") from None


def load_specs(node: DataNode) -> list[MeshSpec]:
    directory = mesh_dir(node)
    if not directory.is_dir():
        return []
    specs = []
    for path in sorted(directory.glob("*.json")):
        if path.name.count(".") != 1:  # status files have more dots
            continue
        try:
            specs.append(MeshSpec.model_validate_json(path.read_text()))
        except (OSError, ValidationError):
            continue
    return specs


def remove_spec(node: DataNode, name: str) -> None:
    spec_path(node, name).unlink(missing_ok=True)


def read_status(node: DataNode, name: str, source: str) -> dict[str, Any] | None:
    return _read_json(status_path(node, name, source))


def read_copy_status(node: DataNode, name: str) -> dict[str, Any] | None:
    return _read_json(copy_status_path(node, name))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
