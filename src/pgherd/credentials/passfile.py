"""The passfile (pgpass format): a generated password for the superuser and for the
replication role, the same on every node (host, port and database are wildcards)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pgherd.config import ClusterConfig
from pgherd.pg import passfile


class _Passfile:
    name = "passfile"

    def paths(self, config: ClusterConfig) -> tuple[Path, ...]:
        return (config.passfile,)

    def generate(self, config: ClusterConfig) -> Mapping[Path, str]:
        passwords = {
            config.superuser: passfile.generate_password(),
            config.replication_user: passfile.generate_password(),
        }
        return {config.passfile: passfile.render(passwords)}

    def extend(self, config: ClusterConfig, missing: Sequence[Path]) -> Mapping[Path, str] | None:
        return None  # one file: present or not, nothing in between


KIND = _Passfile()
