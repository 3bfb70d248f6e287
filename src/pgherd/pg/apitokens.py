"""The agents' API credentials on disk: a token per role and per node, and the grants file
(SHA-256 digests and roles) the agents check them against. ``pgherd secrets rotate`` and
``lab up`` write them here.

Files (beside ``api_token_file``, each 0600): ``api-token`` (operator), ``api-viewer-token``,
``node-tokens/NAME`` (one per node and witness), ``api-grants.json``. They belong to the
user the agents run as (``owner``): where that is not the PostgreSQL OS user, the server
process cannot read them.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgherd.config import ClusterConfig
from pgherd.model.access import Grant, Grants, Role, digest, grants_json, parse_grants, rotated
from pgherd.pg.osuser import OsUser


def new_token() -> str:
    """256 random bits, URL-safe: within RFC 6750's token alphabet."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Written:
    grants: int  # how many the agents now accept (new ones, and old ones in their grace)
    members: tuple[str, ...]  # nodes and witnesses that got a token of their own
    grace_until: float | None  # when the previous tokens stop working


def previous(config: ClusterConfig) -> Grants:
    """What the agents accept now: the grants file, or for a cluster from before there was
    one, its one token as the operator's."""
    if config.grants_file.exists():
        return parse_grants(json.loads(config.grants_file.read_text()))
    if config.api_token_file.exists() and (old := config.api_token_file.read_text().strip()):
        return Grants.of([Grant("operator", Role.OPERATOR, digest(old))])
    return Grants(())


def for_operator(config: ClusterConfig, operator: str) -> dict[Path, str]:
    """New viewer and node tokens, and the grants that accept them with ``operator`` (the
    token already in the operator's file): what ``pgherd secrets init`` writes beside it."""
    members = [n.name for n in config.nodes] + [w.name for w in config.witnesses]
    viewer = new_token()
    peers = {name: new_token() for name in members}
    grants = Grants.of(
        [
            Grant("operator", Role.OPERATOR, digest(operator)),
            Grant("viewer", Role.VIEWER, digest(viewer)),
            *(Grant(name, Role.PEER, digest(token)) for name, token in peers.items()),
        ]
    )
    files = {
        config.grants_file: json.dumps(grants_json(grants), indent=1) + "\n",
        config.viewer_token_file: viewer + "\n",
    }
    return files | {config.node_token_file(name): t + "\n" for name, t in peers.items()}


def for_new_members(config: ClusterConfig, members: Sequence[str]) -> dict[Path, str]:
    """A token for each of ``members`` (added to pgherd.yaml since the others were made) and
    the grants file with theirs added to every grant it holds: what ``pgherd secrets init``
    writes for a new node. The agents read the grants again on its change."""
    peers = {name: new_token() for name in members}
    kept = [g for g in previous(config).grants if g.name not in peers or g.role != Role.PEER]
    grants = Grants.of([*kept, *(Grant(n, Role.PEER, digest(t)) for n, t in peers.items())])
    files = {config.grants_file: json.dumps(grants_json(grants), indent=1) + "\n"}
    return files | {config.node_token_file(name): t + "\n" for name, t in peers.items()}


def write(config: ClusterConfig, owner: OsUser, grace: float | None = None) -> Written:
    """New tokens for the operator, the viewer and every member, and the grants that
    accept them. ``grace`` (seconds): the previous grants stay valid that long (a
    rotation without downtime); None writes the new ones only (a first set-up)."""
    owner.make_dir(config.api_token_file.parent)
    owner.make_dir(config.node_token_file("x").parent)
    members = [n.name for n in config.nodes] + [w.name for w in config.witnesses]
    tokens = {("operator", Role.OPERATOR): new_token(), ("viewer", Role.VIEWER): new_token()}
    tokens |= {(name, Role.PEER): new_token() for name in members}
    new = Grants.of(Grant(name, role, digest(token)) for (name, role), token in tokens.items())
    now = time.time()
    accepted = new if grace is None else rotated(previous(config), new, now, grace)
    # The grants first: an agent must accept a new token before any client sends it.
    owner.write_file(config.grants_file, json.dumps(grants_json(accepted), indent=1) + "\n")
    owner.write_file(config.api_token_file, tokens[("operator", Role.OPERATOR)] + "\n")
    owner.write_file(config.viewer_token_file, tokens[("viewer", Role.VIEWER)] + "\n")
    for name in members:
        owner.write_file(config.node_token_file(name), tokens[(name, Role.PEER)] + "\n")
    until = now + grace if grace else None
    return Written(len(accepted.grants), tuple(members), until)
