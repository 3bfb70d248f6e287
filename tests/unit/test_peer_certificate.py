"""A node's credential bound to its client certificate (model/access.py): table tests."""

from __future__ import annotations

import pytest

from pgherd.model.access import Grant, Role, peer_certificate_problem
from pgherd.tls import certs

NODE2 = Grant("node2", Role.PEER, "d")


@pytest.mark.parametrize(
    ("principal", "certificate", "problem"),
    [
        (NODE2, "node2", None),
        (NODE2, "node1", "the node credential 'node2' came with the certificate of 'node1'"),
        (NODE2, "etcd1", "the node credential 'node2' came with the certificate of 'etcd1'"),
        (NODE2, None, "the node credential 'node2' came without a client certificate"),
        (Grant("operator", Role.OPERATOR, "d"), None, None),
        (Grant("operator", Role.OPERATOR, "d"), "node1", None),
        (Grant("viewer", Role.VIEWER, "d"), None, None),
    ],
)
def test_a_node_credential_needs_that_nodes_certificate(
    principal: Grant, certificate: str | None, problem: str | None
) -> None:
    assert peer_certificate_problem(principal, certificate) == problem


def test_the_certificate_names_the_member_it_was_issued_to() -> None:
    ca = certs.new_ca("c")
    assert certs.common_name(certs.issue(ca, "node2", ["10.0.0.2"]).cert_pem) == "node2"
