"""The cluster's TLS files: its CA and a certificate per member, written as the PostgreSQL
OS user (0600 in a 0700 directory: PostgreSQL refuses a key that others can read).

``ensure`` is idempotent: it makes the CA when there is none, and a member's certificate
when it is missing, was signed by another CA, does not name every address the member is
reached at, or expires within ``RENEW_DAYS``. ``lab up`` and ``pgherd secrets init``
call it; ``pgherd secrets rotate --tls`` calls it with ``renew=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pgherd.config import ClusterConfig, EtcdDcs
from pgherd.config_lite import ClusterFiles
from pgherd.errors import ConfigError
from pgherd.model.server_tls import TlsFiles
from pgherd.pg.osuser import OsUser
from pgherd.tls import certs

RENEW_DAYS = 30


@dataclass(frozen=True)
class Member:
    """Who gets a certificate, and the addresses clients dial it at."""

    name: str
    addresses: tuple[str, ...]


def members(config: ClusterConfig, extra: Iterable[Member] = ()) -> list[Member]:
    """Every node (its PostgreSQL and API addresses) and witness, and ``extra`` (etcd
    members, the store's client)."""
    found = [Member(n.name, (n.host, n.api_host)) for n in config.nodes]
    found += [Member(w.name, (w.api_host,)) for w in config.witnesses]
    return [*found, *extra]


# The certificate the agents and the CLI present to an etcd that asks for one
# (``--client-cert-auth``): ``ha.dcs.cert``/``key`` name its files.
DCS_CLIENT = "dcs-client"


def store_members(config: ClusterConfig) -> list[Member]:
    """With TLS on and an etcd store that the cluster CA vouches for (no ``ha.dcs.ca`` of
    its own): a certificate per etcd member, ``etcd1``… in the order of ``ha.dcs.etcd``,
    each for its endpoint's host, and the store's client certificate. Where etcd has a CA
    of its own, its operator issues its certificates: none here."""
    if not config.tls_on or config.ha is None or not isinstance(config.ha.dcs, EtcdDcs):
        return []
    if config.ha.dcs.ca is not None:
        return []
    found = [
        Member(f"etcd{i}", (urlsplit(url).hostname or "",))
        for i, url in enumerate(config.ha.dcs.etcd, start=1)
    ]
    # A client's certificate names no address a server is dialled at; one is required.
    return [*found, Member(DCS_CLIENT, ("127.0.0.1",))]


@dataclass(frozen=True)
class Made:
    ca_created: bool
    issued: tuple[str, ...]  # member names whose certificate was (re)issued


def ensure(
    config: ClusterConfig, user: OsUser, wanted: Sequence[Member], renew: bool = False
) -> Made:
    directory = config.tls_dir
    user.make_dir(directory)
    ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
    ca_created = False
    if ca_cert.exists() != ca_key.exists():
        raise ConfigError(
            f"{directory} holds only one of ca.crt and ca.key",
            "restore the missing file, or remove both to make a new CA "
            "(every certificate is then issued again)",
        )
    if not ca_cert.exists():
        ca = certs.new_ca(config.cluster)
        user.write_file(ca_key, ca.key_pem.decode())
        user.write_file(ca_cert, ca.cert_pem.decode(), mode=0o644)
        ca_created = True
    else:
        ca = certs.Issued(ca_cert.read_bytes(), ca_key.read_bytes())
    issued = []
    for member in wanted:
        cert, key = config.cert_files(member.name)
        if not (renew or ca_created) and _current(cert, key, ca.cert_pem, member.addresses):
            continue
        made = certs.issue(ca, member.name, member.addresses)
        user.write_file(key, made.key_pem.decode())
        user.write_file(cert, made.cert_pem.decode(), mode=0o644)
        issued.append(member.name)
    return Made(ca_created, tuple(issued))


def _current(cert: Path, key: Path, ca_pem: bytes, addresses: Sequence[str]) -> bool:
    if not cert.exists() or not key.exists():
        return False
    facts = certs.facts(cert.read_bytes(), ca_pem)
    named = set(facts.addresses)
    wanted = {a.strip("[]") for a in addresses if a}
    return facts.signed_by_ca and wanted <= named and facts.days_left() > RENEW_DAYS


def node_files(config: ClusterFiles, member: str) -> TlsFiles:
    """The node's certificate, key and the cluster CA as its PostgreSQL reads them: which
    are missing, and when the newest changed (a renewal or rotation since PostgreSQL last
    read them calls for a reload: model/server_tls.py). The inode's change time, not the
    modification time: a copy that keeps the original's times (``tar -p``, ``cp -p``,
    ``rsync -t``) still counts from when it landed on this host."""
    if config.ca_file is None:
        return TlsFiles(wanted=False)
    paths = (config.ca_file, *config.cert_files(member))
    missing = tuple(str(p) for p in paths if not p.is_file())
    times = [p.stat().st_ctime for p in paths if p.is_file()]
    return TlsFiles(wanted=True, missing=missing, changed_at=max(times, default=None))
