"""API credentials: roles, the grants file, rotation with a grace period, token files that
are read again when they change."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pgherd.api.credentials import GrantsFile, operator_only
from pgherd.clients.credential import TokenFile, token_of
from pgherd.config import ClusterConfig
from pgherd.errors import ConfigError
from pgherd.lab import layout
from pgherd.model.access import (
    Access,
    BadGrants,
    Grant,
    Grants,
    Role,
    digest,
    grants_json,
    parse_grants,
    permits,
    required_access,
    rotated,
)
from pgherd.pg import apitokens, osuser


@pytest.mark.parametrize(
    ("method", "path", "auth_reads", "access"),
    [
        ("GET", "/status", False, Access.OPEN),
        ("GET", "/status", True, Access.READ),
        ("HEAD", "/status", False, Access.OPEN),
        ("GET", "/health", True, Access.OPEN),
        ("GET", "/primary", True, Access.OPEN),
        ("GET", "/mesh", False, Access.READ),
        ("GET", "/mesh/shop/conflicts", False, Access.READ),
        ("GET", "/meshy", False, Access.OPEN),
        ("POST", "/health", False, Access.ACT),
        ("DELETE", "/ops/slots", False, Access.ACT),
        ("PATCH", "/anything", False, Access.ACT),
        ("TRACE", "/status", False, Access.ACT),
    ],
)
def test_what_a_request_needs(method: str, path: str, auth_reads: bool, access: Access) -> None:
    assert required_access(method, path, auth_reads) is access


def test_who_may_do_what() -> None:
    assert [permits(r, Access.ACT) for r in Role] == [False, True, True]
    assert all(permits(r, Access.READ) for r in Role)


def test_grants_round_trip_and_bad_files_are_refused() -> None:
    grants = Grants.of(
        [
            Grant("operator", Role.OPERATOR, digest("a")),
            Grant("node1", Role.PEER, digest("b"), not_after=1.5),
        ]
    )
    assert parse_grants(json.loads(json.dumps(grants_json(grants)))) == grants
    for bad in [[], {"grants": {}}, {"grants": [1]}, {"grants": [{"name": "x"}]}]:
        with pytest.raises(BadGrants):
            parse_grants(bad)
    wrong_role = {"grants": [{"name": "x", "role": "root", "sha256": digest("a")}]}
    with pytest.raises(BadGrants, match="a name, a role and a sha256"):
        parse_grants(wrong_role)


def test_a_rotation_keeps_the_old_grants_for_the_grace_only() -> None:
    old = Grants.of([Grant("operator", Role.OPERATOR, digest("old"))])
    new = Grants.of([Grant("operator", Role.OPERATOR, digest("new"))])
    both = rotated(old, new, now=1000, grace=60)
    assert both.check(b"old", 1000) is not None and both.check(b"new", 1000) is not None
    assert both.check(b"old", 1061) is None and both.check(b"new", 10**9) is not None
    assert rotated(old, new, now=1000, grace=0) == new
    # a second rotation inside the grace never lengthens an old grant's life
    again = rotated(both, new, now=1030, grace=600)
    assert again.check(b"old", 1061) is None


def test_expired_and_malformed_tokens_match_nothing() -> None:
    grants = Grants.of([Grant("v", Role.VIEWER, digest("tok"), not_after=100)])
    assert grants.check(b"tok", 99) is not None
    assert grants.check(b"tok", 101) is None
    assert grants.check(b"", 0) is None
    assert grants.check("tök".encode(), 0) is None
    assert operator_only("t").check(b"t", 0) == Grant("operator", Role.OPERATOR, digest("t"))


@pytest.fixture
def lab(tmp_path: Path) -> ClusterConfig:
    return layout.lab_config(tmp_path / "lab", layout.LabShape(2, 5440, "postgres", None))


def test_write_makes_a_token_per_role_and_node(lab: ClusterConfig) -> None:
    user = osuser.resolve("postgres")
    written = apitokens.write(lab, user)
    assert written.members == ("node1", "node2") and written.grace_until is None
    files = [lab.api_token_file, lab.viewer_token_file, lab.grants_file]
    files += [lab.node_token_file(n) for n in ("node1", "node2")]
    tokens = set()
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.stat().st_uid == user.uid
        tokens.add(path.read_text())
    assert len(tokens) == len(files)  # each its own
    grants = apitokens.previous(lab)
    operator = lab.api_token_file.read_text().strip().encode()
    viewer = lab.viewer_token_file.read_text().strip().encode()
    node1 = lab.node_token_file("node1").read_text().strip().encode()
    assert (grants.check(operator, time.time()) or Grant("", Role.VIEWER, "")).role is Role.OPERATOR
    assert (grants.check(viewer, time.time()) or Grant("", Role.OPERATOR, "")).role is Role.VIEWER
    found = grants.check(node1, time.time())
    assert found is not None and (found.name, found.role) == ("node1", Role.PEER)


def test_rotate_accepts_old_and_new_during_the_grace(lab: ClusterConfig) -> None:
    user = osuser.resolve("postgres")
    apitokens.write(lab, user)
    before = lab.api_token_file.read_text().strip().encode()
    written = apitokens.write(lab, user, grace=300)
    after = lab.api_token_file.read_text().strip().encode()
    grants = apitokens.previous(lab)
    now = time.time()
    assert before != after
    assert grants.check(before, now) is not None and grants.check(after, now) is not None
    assert written.grace_until is not None
    assert grants.check(before, written.grace_until + 1) is None
    apitokens.write(lab, user, grace=0)
    assert apitokens.previous(lab).check(after, time.time()) is None


def test_rotate_a_cluster_from_before_the_grants_file(lab: ClusterConfig) -> None:
    user = osuser.resolve("postgres")
    user.make_dir(lab.api_token_file.parent)
    user.write_file(lab.api_token_file, "the-one-old-token\n")
    apitokens.write(lab, user, grace=60)
    assert apitokens.previous(lab).check(b"the-one-old-token", time.time()) is not None


def test_the_grants_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "api-grants.json"
    fallback = operator_only("fallback")
    watcher = GrantsFile(path, fallback)
    assert watcher() is fallback  # no file yet: a cluster from before
    first = Grants.of([Grant("viewer", Role.VIEWER, digest("v1"))])
    path.write_text(json.dumps(grants_json(first)))
    assert watcher() == first
    second = Grants.of([Grant("viewer", Role.VIEWER, digest("v2"))])
    path.write_text(json.dumps(grants_json(second)))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert watcher() == second
    path.write_text("{not json")  # a broken file keeps the last good grants
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert watcher() == second


def test_a_broken_grants_file_at_start_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "api-grants.json"
    path.write_text('{"grants": [{"name": 1}]}')
    with pytest.raises(ConfigError, match="is not valid"):
        GrantsFile(path, operator_only("x"))


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "node1"
    path.write_text("one\n")
    token = TokenFile(path)
    assert token_of(token) == "one"
    path.write_text("two\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert token.value() == "two"
    path.write_text("  \n")
    os.utime(path, (time.time() + 10, time.time() + 10))
    with pytest.raises(ConfigError, match="is empty"):
        token.value()
    assert token_of(None) is None and token_of("plain") == "plain"


def test_with_auth_reads_the_cli_reads_as_the_viewer(
    lab: ClusterConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgherd.clients.agent import AgentClient, read_as_viewer
    from pgherd.config import parse

    monkeypatch.setattr(AgentClient, "default_token", None)
    monkeypatch.delenv("PGHERD_API_TOKEN", raising=False)

    def sent() -> object:
        return AgentClient.default_token

    read_as_viewer(lab)  # reads open: nothing to send
    assert sent() is None
    closed = parse(lab.model_dump(mode="json") | {"api": {"auth_reads": True}})
    user = osuser.resolve("postgres")
    apitokens.write(closed, user)
    read_as_viewer(closed)
    assert sent() == closed.viewer_token_file.read_text().strip()
    closed.viewer_token_file.unlink()  # a host without the viewer's file: the operator's
    read_as_viewer(closed)
    assert sent() == closed.api_token_file.read_text().strip()
