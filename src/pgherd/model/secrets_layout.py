"""Which secret files each host needs, for ``pgherd secrets init`` to say where to copy
what (docs/deploy.md: one member per host, the same paths everywhere).

A host runs one member's agent: a data node's needs the passfile (its PostgreSQL's
standbys, clones and rewinds log in with it), the grants file (the credentials its API
accepts), its own node token (its calls to the other agents) and, TLS on, the cluster's
``ca.crt`` with its own certificate and key; a witness the same without the passfile;
with etcd, what reaches the store (a client certificate) and, on a host that runs an etcd
member whose certificate pgherd issued, that member's certificate and key. The
operator's and viewer's tokens go only where people run the CLI or the console. The CA's
key stays where it was made: it issues certificates, no part of a running cluster reads
it. So a stolen host gives away its own node's token and key, not another node's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SECRET_MODE = 0o600  # every file: owner read/write only
DIRECTORY_MODE = 0o700


@dataclass(frozen=True)
class Member:
    name: str
    host: str  # the address its agent is reached at
    data: bool  # a data node (PostgreSQL), not a witness


@dataclass(frozen=True)
class SecretPaths:
    """Where pgherd.yaml puts each secret (the same path on every host)."""

    passfile: Path
    operator_token: Path
    viewer_token: Path
    grants: Path
    node_tokens: Mapping[str, Path]
    ca_cert: Path | None = None  # None: tls: off
    ca_key: Path | None = None
    member_certs: Mapping[str, tuple[Path, Path]] = field(default_factory=dict)
    # What the agents and the CLI read to reach the store (ha.dcs: its CA, a client
    # certificate and key, a password file): every agent's host and the people's.
    store_files: tuple[Path, ...] = ()
    # An etcd member's certificate and key, by the host (address) it runs on.
    store_members: Mapping[str, tuple[Path, Path]] = field(default_factory=dict)


@dataclass(frozen=True)
class HostFiles:
    member: str
    host: str
    paths: tuple[Path, ...]

    @property
    def directories(self) -> tuple[Path, ...]:
        """The directories that hold the files (pgherd made them 0700), outermost first."""
        return tuple(sorted({p.parent for p in self.paths}, key=lambda d: (len(d.parts), d)))

    def tar_pipe(self) -> str:
        """A root shell's command that copies them there with their modes and owner:
        ``--no-recursion`` takes each directory itself (its mode), none of its other
        files (pgherd.yaml, another node's token)."""
        entries = " ".join(str(p.relative_to(p.anchor)) for p in (*self.directories, *self.paths))
        return f"tar --no-recursion -C / -cpf - {entries} | ssh root@{self.host} tar -C / -xpf -"


@dataclass(frozen=True)
class Layout:
    hosts: tuple[HostFiles, ...]
    operators: tuple[Path, ...]  # where people run the CLI or the console
    stays: tuple[Path, ...]  # on the host that made them, nowhere else


def per_host(members: tuple[Member, ...], paths: SecretPaths) -> Layout:
    """What each member's host needs, what people's hosts need, what stays here."""
    hosts = []
    certs = dict(paths.member_certs)
    for member in members:
        wanted: list[Path] = [paths.passfile] if member.data else []
        wanted += [paths.grants, paths.node_tokens[member.name]]
        if paths.ca_cert is not None:
            wanted.append(paths.ca_cert)
            wanted.extend(certs[member.name])
        wanted += [p for p in paths.store_files if p not in wanted]
        wanted.extend(paths.store_members.get(member.host, ()))
        hosts.append(HostFiles(member.name, member.host, tuple(wanted)))
    operators = [paths.operator_token, paths.viewer_token]
    if paths.ca_cert is not None:
        operators.append(paths.ca_cert)  # the CLI verifies the agents against it
    operators += [p for p in paths.store_files if p not in operators]
    stays = (paths.ca_key,) if paths.ca_key is not None else ()
    return Layout(tuple(hosts), tuple(operators), stays)
