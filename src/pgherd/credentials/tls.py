"""The cluster CA and a certificate per node and witness (pgherd.tls.certs: ECDSA P-256,
made with the ``cryptography`` package), when the cluster's TLS is on; with an etcd store
that the cluster CA vouches for, a certificate per etcd member and the store's client
certificate too (pg/tlsfiles.py ``store_members``; docs/deploy.md gives them to etcd)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pgherd.config import ClusterConfig
from pgherd.pg import tlsfiles
from pgherd.tls import certs


class _Tls:
    name = "TLS (cluster CA and member certificates)"

    def paths(self, config: ClusterConfig) -> tuple[Path, ...]:
        if not config.tls_on:
            return ()
        found = [config.tls_dir / "ca.crt", config.tls_dir / "ca.key"]
        for member in tlsfiles.members(config, tlsfiles.store_members(config)):
            found.extend(config.cert_files(member.name))
        return tuple(found)

    def generate(self, config: ClusterConfig) -> Mapping[Path, str]:
        if not config.tls_on:
            return {}
        ca = certs.new_ca(config.cluster)
        files = {
            config.tls_dir / "ca.crt": ca.cert_pem.decode(),
            config.tls_dir / "ca.key": ca.key_pem.decode(),
        }
        for member in tlsfiles.members(config, tlsfiles.store_members(config)):
            made = certs.issue(ca, member.name, member.addresses)
            cert, key = config.cert_files(member.name)
            files |= {cert: made.cert_pem.decode(), key: made.key_pem.decode()}
        return files

    def extend(self, config: ClusterConfig, missing: Sequence[Path]) -> Mapping[Path, str] | None:
        """Members added since (a node, an etcd member): certificates from the CA there is."""
        wanted = {
            config.cert_files(m.name): m
            for m in tlsfiles.members(config, tlsfiles.store_members(config))
        }
        new = [pair for pair in wanted if pair[0] in missing and pair[1] in missing]
        if len(missing) != 2 * len(new):
            return None  # the CA, or half of a member's pair
        ca = certs.Issued(
            (config.tls_dir / "ca.crt").read_bytes(), (config.tls_dir / "ca.key").read_bytes()
        )
        files: dict[Path, str] = {}
        for cert, key in new:
            made = certs.issue(ca, wanted[(cert, key)].name, wanted[(cert, key)].addresses)
            files |= {cert: made.cert_pem.decode(), key: made.key_pem.decode()}
        return files


KIND = _Tls()
