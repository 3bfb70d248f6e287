"""Writing secret files: once, 0600, owned by the PostgreSQL OS user."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pgherd.config import ClusterConfig
from pgherd.errors import Refused
from pgherd.pg.osuser import OsUser


class Kind(Protocol):
    """One kind of secret: where pgherd.yaml puts its files, and new contents for them."""

    name: str  # as the operator reads it: "passfile", "API token"

    def paths(self, config: ClusterConfig) -> tuple[Path, ...]: ...

    def generate(self, config: ClusterConfig) -> Mapping[Path, str]:
        """New contents for every file of :meth:`paths`."""
        ...

    def extend(self, config: ClusterConfig, missing: Sequence[Path]) -> Mapping[Path, str] | None:
        """When ``missing`` are only the files of members added to pgherd.yaml since the
        others were made (a node's token, its certificate): their contents, and any shared
        file they change (the grants), made from what exists. None otherwise."""
        ...


class Action(StrEnum):
    CREATED = "created"
    KEPT = "kept"  # it exists: never replaced without force
    REPLACED = "replaced"
    UPDATED = "updated"  # a shared file that now names a member added since (the grants)


@dataclass(frozen=True)
class Written:
    kind: str
    path: Path
    action: Action


def init(
    config: ClusterConfig, user: OsUser, kinds: Sequence[Kind], force: bool = False
) -> list[Written]:
    """Create the files of every kind that has none; keep the files of a kind that has them
    all (replace them with ``force``). A kind with some of its files and not the others is
    refused, nothing written for it: which half is right is the operator's to say — unless
    the missing files are those of members added since (a new node's token and
    certificate), which the kind then makes from what exists, keeping the rest."""
    done: list[Written] = []
    for kind in kinds:
        paths = kind.paths(config)
        present = [p for p in paths if p.exists()]
        if present and not force:
            missing = [p for p in paths if p not in present]
            added = kind.extend(config, missing) if missing else {}
            if added is None:
                raise Refused(
                    f"{kind.name}: {', '.join(map(str, present))} exists but "
                    f"{', '.join(map(str, missing))} does not",
                    "copy the missing file from another host, or pass --force to replace them all",
                )
            done.extend(Written(kind.name, p, Action.KEPT) for p in paths if p not in added)
            for path, text in added.items():
                user.make_dir(path.parent)
                action = Action.UPDATED if path.exists() else Action.CREATED
                user.write_file(path, text, mode=0o600)
                done.append(Written(kind.name, path, action))
            continue
        for path, text in kind.generate(config).items():
            user.make_dir(path.parent)
            existed = path.exists()
            user.write_file(path, text, mode=0o600)
            done.append(Written(kind.name, path, Action.REPLACED if existed else Action.CREATED))
    return done
