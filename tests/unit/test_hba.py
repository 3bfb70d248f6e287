"""pg_hba.conf and pg_ident.conf as pgherd writes them, and the trust check doctor runs."""

from __future__ import annotations

import pytest

from pgherd.pg import hba

USER_HBA = """\
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     peer
host    all             app             10.1.0.0/16             scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


def _fields(lines: list[str]) -> list[list[str]]:
    return [line.split() for line in lines]


def test_rules_require_tls_and_scram_on_tcp_and_map_local_superuser_to_peer() -> None:
    rules = hba.rules("postgres", "replicator", ["127.0.0.1"])
    assert _fields([r.line() for r in rules]) == [
        ["local", "all", "postgres", "peer", "map=pgherd"],
        ["local", "replication", "postgres", "peer", "map=pgherd"],
        ["hostssl", "replication", "replicator", "127.0.0.1/32", "scram-sha-256"],
        ["hostssl", "all", "all", "127.0.0.1/32", "scram-sha-256"],
        ["hostnossl", "replication", "all", "0.0.0.0/0", "reject"],
        ["hostnossl", "replication", "all", "::/0", "reject"],
        ["hostnossl", "all", "all", "0.0.0.0/0", "reject"],
        ["hostnossl", "all", "all", "::/0", "reject"],
    ]


def test_tls_off_writes_host_rules() -> None:
    rules = hba.rules("postgres", "replicator", ["127.0.0.1"], ssl=False)
    assert [r.kind for r in rules] == ["local", "local", "host", "host"]


def test_rules_never_trust_and_every_host_line_uses_scram() -> None:
    rules = hba.rules("postgres", "replicator", ["127.0.0.1", "::1", "db2.example"])
    for rule in rules:
        assert "trust" not in rule.line().split()
        if rule.kind == "hostnossl":
            assert rule.method == "reject"
        elif rule.kind.startswith("host"):
            assert rule.method == "scram-sha-256"
        else:
            assert (rule.method, rule.options) == ("peer", "map=pgherd")
    assert hba.trust_over_tcp("\n".join(r.line() for r in rules)) == []


def test_rules_have_one_address_per_distinct_host() -> None:
    hosts = ["127.0.0.1", "10.0.0.2", "127.0.0.1", "::1", "db3.example", "10.0.0.2"]
    rules = hba.rules("postgres", "replicator", hosts)
    replication = [r.address for r in rules if r.database == "replication" and r.kind == "hostssl"]
    everything = [r.address for r in rules if r.database == "all" and r.kind == "hostssl"]
    expected = ["127.0.0.1/32", "10.0.0.2/32", "::1/128", "db3.example"]
    assert replication == expected
    assert everything == expected


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1/32"),
        ("10.20.30.40", "10.20.30.40/32"),
        ("::1", "::1/128"),
        ("fe80:0:0:0:0:0:0:1", "fe80::1/128"),
        ("db1.example.com", "db1.example.com"),
        ("localhost", "localhost"),
    ],
)
def test_cidr_of_an_address_or_a_host_name(host: str, address: str) -> None:
    assert hba.cidr(host) == address


def test_ident_lines_map_each_os_user_once_to_the_superuser() -> None:
    lines = hba.ident_lines(["root", "postgres", "root"], "postgres")
    assert _fields(lines) == [["pgherd", "root", "postgres"], ["pgherd", "postgres", "postgres"]]


def _block(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index(hba.BEGIN) + 1 : lines.index(hba.END)]


def _outside_block(text: str) -> list[str]:
    lines = text.splitlines()
    kept = lines[: lines.index(hba.BEGIN)] + lines[lines.index(hba.END) + 1 :]
    return [line for line in kept if line.strip()]


def test_with_block_goes_first_and_keeps_the_users_rules_in_order() -> None:
    block = [r.line() for r in hba.rules("postgres", "replicator", ["127.0.0.1"])]
    text = hba.with_block(USER_HBA, block)
    lines = text.splitlines()
    assert lines[0] == hba.BEGIN
    assert _block(text) == block
    assert _outside_block(text) == [line for line in USER_HBA.splitlines() if line.strip()]
    assert text.endswith("\n")


def test_with_block_replaces_an_existing_block() -> None:
    old = hba.with_block(USER_HBA, ["host all all 10.0.0.1/32 scram-sha-256"])
    new = hba.with_block(old, ["host all all 10.0.0.2/32 scram-sha-256"])
    assert new.count(hba.BEGIN) == 1
    assert new.count(hba.END) == 1
    assert _block(new) == ["host all all 10.0.0.2/32 scram-sha-256"]
    assert "10.0.0.1/32" not in new
    assert _outside_block(new) == [line for line in USER_HBA.splitlines() if line.strip()]


def test_with_block_moves_a_block_found_lower_down_to_the_top() -> None:
    text = f"host all all 10.9.0.0/16 md5\n{hba.BEGIN}\nold rule\n{hba.END}\nlocal all all peer\n"
    new = hba.with_block(text, ["new rule"])
    assert new.splitlines()[0] == hba.BEGIN
    assert _block(new) == ["new rule"]
    assert _outside_block(new) == ["host all all 10.9.0.0/16 md5", "local all all peer"]


def test_with_block_into_an_empty_file() -> None:
    assert hba.with_block("", ["a rule"]) == f"{hba.BEGIN}\na rule\n{hba.END}\n"


def test_with_block_keeps_the_same_rules_when_run_again() -> None:
    block = ["host all all 127.0.0.1/32 scram-sha-256"]
    once = hba.with_block(USER_HBA, block)
    twice = hba.with_block(once, block)
    assert _block(twice) == block
    assert _outside_block(twice) == _outside_block(once)


def test_with_block_is_idempotent_byte_for_byte() -> None:
    block = ["host all all 127.0.0.1/32 scram-sha-256"]
    once = hba.with_block(USER_HBA, block)
    assert hba.with_block(once, block) == once


def test_with_block_never_drops_user_rules_after_an_unterminated_block() -> None:
    text = f"{hba.BEGIN}\nhost all all 10.0.0.1/32 scram-sha-256\nhost all app 10.1.0.0/16 md5\n"
    new = hba.with_block(text, ["new rule"])
    assert "host all app 10.1.0.0/16 md5" in new.splitlines()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("host all all 0.0.0.0/0 trust", ["host all all 0.0.0.0/0 trust"]),
        ("hostssl  all  all  10.0.0.0/8  trust", ["hostssl all all 10.0.0.0/8 trust"]),
        ("hostnossl all all ::1/128 trust", ["hostnossl all all ::1/128 trust"]),
        (
            "host all all 127.0.0.1 255.255.255.255 trust",  # address and mask columns
            ["host all all 127.0.0.1 255.255.255.255 trust"],
        ),
        (
            "host\treplication\tall\t127.0.0.1/32\ttrust  # for the old scripts",
            ["host replication all 127.0.0.1/32 trust"],
        ),
        ("local all all trust", []),  # Unix socket only: not a network exposure
        ("local replication all trust", []),
        ("# host all all 0.0.0.0/0 trust", []),
        ("#host all all 0.0.0.0/0 trust", []),
        ("host all all 127.0.0.1/32 scram-sha-256  # was trust", []),
        ("host all trust 127.0.0.1/32 scram-sha-256", []),  # a role named "trust"
        ("host all all 127.0.0.1/32 md5", []),
        ("", []),
    ],
)
def test_trust_over_tcp(text: str, found: list[str]) -> None:
    assert hba.trust_over_tcp(text) == found


def test_trust_over_tcp_reports_every_offending_line_of_a_file() -> None:
    text = (
        USER_HBA + "host all all 0.0.0.0/0 trust\nlocal all all trust\nhostssl all all ::/0 trust\n"
    )
    assert hba.trust_over_tcp(text) == [
        "host all all 0.0.0.0/0 trust",
        "hostssl all all ::/0 trust",
    ]


def test_an_adopted_server_gets_tcp_rules_for_pgherd_roles_only() -> None:
    """The operator's rules for their users, below pgherd's block, stay in force."""
    lines = [r.line() for r in hba.rules("postgres", "replicator", ["10.0.0.1"], only_own=True)]
    assert any("replication  replicator" in line for line in lines)
    assert any("all          postgres         10.0.0.1/32" in line for line in lines)
    assert not any(" all          all " in line for line in lines)
