"""The agents' API credentials beside the operator's token: a viewer's token, a token per
node (agent-to-agent) and the grants file of their digests (docs/security.md). Written
after the API token, whose digest the grants carry; ``pgherd secrets rotate`` renews them
all without downtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pgherd.config import ClusterConfig, read_token
from pgherd.pg import apitokens


class _ApiRoles:
    name = "API credentials (viewer, nodes, grants)"

    def paths(self, config: ClusterConfig) -> tuple[Path, ...]:
        nodes = tuple(config.node_token_file(m) for m in _members(config))
        return (config.viewer_token_file, config.grants_file, *nodes)

    def generate(self, config: ClusterConfig) -> Mapping[Path, str]:
        return apitokens.for_operator(config, read_token(config))

    def extend(self, config: ClusterConfig, missing: Sequence[Path]) -> Mapping[Path, str] | None:
        """Members added since: their tokens, and the grants with theirs added."""
        tokens = {config.node_token_file(m): m for m in _members(config)}
        if any(path not in tokens for path in missing):
            return None  # the viewer's token or the grants: not a member's
        return apitokens.for_new_members(config, [tokens[path] for path in missing])


def _members(config: ClusterConfig) -> list[str]:
    return [n.name for n in config.nodes] + [w.name for w in config.witnesses]


KIND = _ApiRoles()
