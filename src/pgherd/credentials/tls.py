"""The cluster CA and a certificate per node and witness (pgherd.tls.certs: ECDSA P-256,
made with the ``cryptography`` package), when the cluster's TLS is on."""

from __future__ import annotations

from collections.abc import Mapping
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
        for member in tlsfiles.members(config):
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
        for member in tlsfiles.members(config):
            made = certs.issue(ca, member.name, member.addresses)
            cert, key = config.cert_files(member.name)
            files |= {cert: made.cert_pem.decode(), key: made.key_pem.decode()}
        return files


KIND = _Tls()
