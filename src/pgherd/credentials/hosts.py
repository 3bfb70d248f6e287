"""Which of the cluster's secret files each host needs (model/secrets_layout.py), from
pgherd.yaml's paths: what ``pgherd secrets init`` tells the operator to copy where."""

from __future__ import annotations

from pathlib import Path

from pgherd.config import ClusterConfig, EtcdDcs
from pgherd.model.secrets_layout import Layout, Member, SecretPaths, per_host
from pgherd.pg import tlsfiles


def layout(config: ClusterConfig) -> Layout:
    members = tuple(Member(n.name, n.host, data=True) for n in config.nodes) + tuple(
        Member(w.name, w.api_host, data=False) for w in config.witnesses
    )
    tls = config.tls_on
    paths = SecretPaths(
        passfile=config.passfile,
        operator_token=config.api_token_file,
        viewer_token=config.viewer_token_file,
        grants=config.grants_file,
        node_tokens={m.name: config.node_token_file(m.name) for m in members},
        ca_cert=config.tls_dir / "ca.crt" if tls else None,
        ca_key=config.tls_dir / "ca.key" if tls else None,
        member_certs={m.name: config.cert_files(m.name) for m in members} if tls else {},
        store_files=_store_files(config),
        store_members={
            m.addresses[0]: config.cert_files(m.name)
            for m in tlsfiles.store_members(config)
            if m.name != tlsfiles.DCS_CLIENT
        },
    )
    return per_host(members, paths)


def _store_files(config: ClusterConfig) -> tuple[Path, ...]:
    """What pgherd.yaml names for reaching etcd: its CA, client certificate, password."""
    dcs = config.ha.dcs if config.ha is not None else None
    if not isinstance(dcs, EtcdDcs):
        return ()
    named = (dcs.ca, dcs.cert, dcs.key, dcs.password_file)
    return tuple(p for p in named if p is not None)
