"""Who may call what on an agent's API. Pure: no I/O, unit-tested.

Every caller proves who it is with a bearer token. A token is never kept by the agent in
clear: it holds a *grant* per credential, the SHA-256 digest of the token with the role it
confers (the tokens are 256-bit random strings, so a fast digest is enough: there is
nothing to guess). Three roles:

- ``viewer`` reads (``GET``), nothing more: monitoring, a read-only console.
- ``operator`` reads and acts: the CLI and the console's operators.
- ``peer`` reads and acts as one named node's agent (agent-to-agent calls): each node has
  its own, so one node's secret is not the whole cluster's, and the audit log names it.

What a request needs (:func:`required_access`) follows from its method and path alone, so
the agent decides before it reads a byte of the body: every method that is not a read
acts; reads are open unless ``api.auth_reads`` is on, except the load-balancer checks
(HAProxy cannot send a token), which stay open, and ``/mesh``, whose reads show table
contents and always need a credential.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    PEER = "peer"


class Access(StrEnum):
    OPEN = "open"  # anyone who can reach the port
    READ = "read"  # a viewer, an operator or a peer
    ACT = "act"  # an operator or a peer


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Answered to anyone, even with api.auth_reads: load balancers and liveness probes cannot
# send a token, and these say only "up or not" and the role.
ALWAYS_OPEN = frozenset(
    {
        "/health",
        "/primary",
        "/read-write",
        "/replica",
        "/read-only",
        "/liveness",
        "/readiness",
    }
)
# Reads that show table contents (mesh conflicts, checksums): a credential always.
READ_NEEDS_CREDENTIAL = ("/mesh",)

# RFC 6750's b64token, bounded: what ``secrets.token_urlsafe`` makes, with room to spare.
MAX_TOKEN_CHARS = 512


def required_access(method: str, path: str, auth_reads: bool) -> Access:
    if method.upper() not in READ_METHODS:
        return Access.ACT
    if path in ALWAYS_OPEN:
        return Access.OPEN
    if path == "/mesh" or path.startswith(tuple(p + "/" for p in READ_NEEDS_CREDENTIAL)):
        return Access.READ
    return Access.READ if auth_reads else Access.OPEN


def permits(role: Role, access: Access) -> bool:
    if access is Access.OPEN:
        return True
    if access is Access.READ:
        return True  # every role reads
    return role in (Role.OPERATOR, Role.PEER)


def digest(token: str | bytes) -> str:
    """The hex SHA-256 of a token, as grants keep it."""
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Grant:
    """One credential: who it names, what it may do, the digest of its token and, while
    a rotation is under way, the time (Unix seconds) after which it is refused."""

    name: str  # operator, viewer, or the node's name for a peer
    role: Role
    token_digest: str
    not_after: float | None = None

    def valid_at(self, now: float) -> bool:
        return self.not_after is None or now <= self.not_after


@dataclass(frozen=True)
class Grants:
    """The credentials an agent accepts."""

    grants: tuple[Grant, ...]

    @classmethod
    def of(cls, items: Iterable[Grant]) -> Grants:
        return cls(tuple(items))

    def check(self, token: bytes, now: float) -> Grant | None:
        """The grant whose token this is; None for an unknown, expired or malformed one.

        Every grant is compared (constant time each), so the time taken does not say which
        one came close.
        """
        if not well_formed(token):
            return None
        given = digest(token)
        found: Grant | None = None
        for grant in self.grants:
            if hmac.compare_digest(given, grant.token_digest) and grant.valid_at(now):
                found = found or grant
        return found


def peer_certificate_problem(principal: Grant, certificate_name: str | None) -> str | None:
    """With ``tls.client_certs``: why a credential may not be used over this connection
    (None: it may). A node's credential counts only over a connection that presented that
    node's certificate (its common name is the node's name; the TLS handshake checked
    that the cluster CA signed it): a node token stolen from a node's host, used from
    anywhere else or by another node, acts as nobody. Operators' and viewers' credentials
    need no certificate (the CLI, the console and monitoring present none)."""
    if principal.role is not Role.PEER:
        return None
    if certificate_name is None:
        return f"the node credential {principal.name!r} came without a client certificate"
    if certificate_name != principal.name:
        return (
            f"the node credential {principal.name!r} came with the certificate of "
            f"{certificate_name!r}"
        )
    return None


def well_formed(token: bytes) -> bool:
    """1 to 512 characters of RFC 6750's b64token alphabet: anything else (a blank, a
    non-ASCII byte, a space) is refused before any comparison."""
    if not 0 < len(token) <= MAX_TOKEN_CHARS:
        return False
    return all(_B64TOKEN[b] for b in token)


_B64TOKEN = [chr(i).isascii() and (chr(i).isalnum() or chr(i) in "-._~+/=") for i in range(256)]


def bearer(header: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (scheme case-insensitive);
    None when there is no header; ``b""`` for a header that is not a bearer token."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return b""
    return token.strip()


# ---- the grants file --------------------------------------------------------------------
# JSON, as `pgherd secrets init|rotate` and `lab up` write it beside the token files:
#   {"grants": [{"name": "operator", "role": "operator", "sha256": "…", "not_after": null}]}


def grants_json(grants: Grants) -> dict[str, list[dict[str, object]]]:
    return {
        "grants": [
            {
                "name": g.name,
                "role": str(g.role),
                "sha256": g.token_digest,
                "not_after": g.not_after,
            }
            for g in grants.grants
        ]
    }


class BadGrants(ValueError):
    """A grants file that is not what ``pgherd secrets`` writes."""


def parse_grants(data: object) -> Grants:
    """The grants of a parsed grants file; BadGrants naming what is wrong."""
    items = data.get("grants") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise BadGrants("expected an object with a list of grants")
    return Grants(tuple(_grant(i, item) for i, item in enumerate(items)))


def _grant(i: int, item: object) -> Grant:
    if not isinstance(item, dict):
        raise BadGrants(f"grant {i} is not an object")
    try:
        role = Role(item["role"])
        name, token_digest = str(item["name"]), str(item["sha256"])
    except (KeyError, ValueError):
        raise BadGrants(f"grant {i} needs a name, a role and a sha256") from None
    not_after = item.get("not_after")
    if len(token_digest) != 64 or not all(c in "0123456789abcdef" for c in token_digest):
        raise BadGrants(f"grant {i}: sha256 is not a hex SHA-256 digest")
    if not_after is not None and not isinstance(not_after, int | float):
        raise BadGrants(f"grant {i}: not_after is not a time")
    return Grant(name, role, token_digest, None if not_after is None else float(not_after))


def rotated(old: Grants, new: Grants, now: float, grace: float) -> Grants:
    """``new``, plus the grants of ``old`` still valid, each now ending ``grace`` seconds
    from ``now`` at the latest: clients that still hold an old token keep working while
    the new ones reach them."""
    ending = now + grace
    kept = [
        Grant(g.name, g.role, g.token_digest, min(g.not_after or ending, ending))
        for g in old.grants
        if g.valid_at(now) and grace > 0
    ]
    return Grants((*new.grants, *kept))
