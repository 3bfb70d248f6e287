"""The agents' API token: a bearer token every acting request carries (32 random bytes,
URL-safe), the same on every host."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from pgherd.config import ClusterConfig


class _ApiToken:
    name = "API token"

    def paths(self, config: ClusterConfig) -> tuple[Path, ...]:
        return (config.api_token_file,)

    def generate(self, config: ClusterConfig) -> Mapping[Path, str]:
        return {config.api_token_file: secrets.token_urlsafe(32) + "\n"}

    def extend(self, config: ClusterConfig, missing: Sequence[Path]) -> Mapping[Path, str] | None:
        return None  # one file: present or not, nothing in between


KIND = _ApiToken()
