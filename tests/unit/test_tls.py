"""The cluster CA, the members' certificates and what TLS changes in the settings pgherd
writes: connection strings, pg_hba, PostgreSQL's ssl settings, the config's tls section."""

from __future__ import annotations

import datetime as dt
import getpass
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from pgherd import config as config_mod
from pgherd.errors import ConfigError
from pgherd.lab import layout
from pgherd.pg import conninfo, osuser, tlsfiles
from pgherd.pg.local_node import LocalNode
from pgherd.tls import certs
from pgherd.tls.context import client_context


def me() -> osuser.OsUser:
    return osuser.resolve("postgres" if getpass.getuser() == "root" else getpass.getuser())


def test_a_member_certificate_names_its_addresses_and_is_signed_by_the_ca() -> None:
    ca = certs.new_ca("c")
    made = certs.issue(ca, "node1", ["10.0.0.1", "db1.example", "::1", "10.0.0.1"])
    facts = certs.facts(made.cert_pem, ca.cert_pem)
    assert facts.signed_by_ca
    assert set(facts.addresses) == {"10.0.0.1", "::1", "db1.example"}
    assert "CN=node1" in facts.subject
    assert 800 < facts.days_left() <= 825
    usage = made.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usage} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
    other = certs.new_ca("c")
    assert not certs.facts(made.cert_pem, other.cert_pem).signed_by_ca


def test_the_ca_signs_only_end_certificates() -> None:
    ca = certs.new_ca("c").certificate
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0


def test_a_certificate_needs_an_address() -> None:
    with pytest.raises(ValueError, match="at least one address"):
        certs.issue(certs.new_ca("c"), "n", [])


@pytest.fixture
def lab(tmp_path: Path) -> config_mod.ClusterConfig:
    return layout.lab_config(tmp_path / "lab", layout.LabShape(2, 5440, me().name, None))


def test_ensure_makes_the_ca_and_certificates_once(lab: config_mod.ClusterConfig) -> None:
    user = me()
    first = tlsfiles.ensure(lab, user, tlsfiles.members(lab))
    assert first.ca_created and first.issued == ("node1", "node2")
    assert (lab.tls_dir.stat().st_mode & 0o777) == 0o700
    key = lab.cert_files("node1")[1]
    assert (key.stat().st_mode & 0o777) == 0o600
    again = tlsfiles.ensure(lab, user, tlsfiles.members(lab))
    assert not again.ca_created and again.issued == ()
    # a new address is a new certificate
    moved = tlsfiles.Member("node2", ("127.0.0.1", "10.9.9.9"))
    assert tlsfiles.ensure(lab, user, [moved]).issued == ("node2",)
    assert tlsfiles.ensure(lab, user, tlsfiles.members(lab), renew=True).issued == (
        "node1",
        "node2",
    )


def test_ensure_refuses_half_a_ca(lab: config_mod.ClusterConfig) -> None:
    tlsfiles.ensure(lab, me(), [])
    (lab.tls_dir / "ca.key").unlink()
    with pytest.raises(ConfigError, match=r"only one of ca\.crt and ca\.key"):
        tlsfiles.ensure(lab, me(), tlsfiles.members(lab))


def test_tls_is_on_by_default_and_off_only_when_said(lab: config_mod.ClusterConfig) -> None:
    assert lab.tls_on and lab.ca_file == lab.passfile.parent / "tls" / "ca.crt"
    assert lab.nodes[0].api_url.startswith("https://")
    raw = lab.model_dump(mode="json") | {"tls": False}
    plain = config_mod.parse(raw)
    assert not plain.tls_on and plain.ca_file is None
    assert plain.nodes[0].api_url.startswith("http://")
    # YAML's `tls: off` is false

    assert config_mod.parse(yaml.safe_load(config_mod.dump(lab) + "")) == lab
    text = config_mod.dump(plain).replace("tls: false", "tls: off")
    assert not config_mod.parse(yaml.safe_load(text)).tls_on


def test_etcd_over_http_needs_tls_off(lab: config_mod.ClusterConfig) -> None:
    raw = lab.model_dump(mode="json") | {
        "failover": "automatic",
        "ha": {"dcs": {"etcd": ["http://127.0.0.1:2379"]}},
    }
    with pytest.raises(ConfigError, match="plain http:// endpoints with TLS on"):
        config_mod.parse(raw)
    assert not config_mod.parse(raw | {"tls": False}).tls_on


def test_connection_strings_verify_the_server(lab: config_mod.ClusterConfig) -> None:
    ca = Path("/s/tls/ca.crt")
    text = conninfo.keyword("10.0.0.1", 5432, "replicator", Path("/s/pgpass"), sslrootcert=ca)
    assert text.endswith("sslmode=verify-full sslrootcert=/s/tls/ca.crt")
    uri = conninfo.uri("10.0.0.1", 5432, "u", Path("/s/pgpass"), sslrootcert=ca)
    assert uri.endswith("?passfile=/s/pgpass&sslmode=verify-full&sslrootcert=/s/tls/ca.crt")
    assert "sslmode" not in conninfo.keyword("h", 1, "u", Path("/p"))


def test_postgresql_gets_the_nodes_certificate(lab: config_mod.ClusterConfig) -> None:
    local = LocalNode.open(lab, "node2")
    settings = local.settings(lab.node("node1"))
    cert, key = lab.cert_files("node2")
    assert settings["ssl"] is True
    assert (settings["ssl_cert_file"], settings["ssl_key_file"]) == (str(cert), str(key))
    assert "sslmode=verify-full" in str(settings["primary_conninfo"])
    rules, _ = local.access_rules()
    assert {r.kind for r in rules} == {"local", "hostssl", "hostnossl"}
    plain = LocalNode.open(config_mod.parse(lab.model_dump(mode="json") | {"tls": False}), "node2")
    assert plain.settings(None)["ssl"] is False
    assert {r.kind for r in plain.access_rules()[0]} == {"local", "host"}


def test_the_hosts_of_mesh_peers_may_connect(lab: config_mod.ClusterConfig, tmp_path: Path) -> None:
    """A cluster a mesh names (``peers:``) reads this cluster's slots from its own hosts:
    they are in pgherd's block like the nodes'; a peer file that cannot be read is left
    out (and said), not a reason to refuse the node its access rules."""
    east = layout.lab_config(tmp_path / "east", layout.LabShape(1, 6440, me().name, None))
    raw = east.model_dump(mode="json")
    raw["cluster"] = "east"
    raw["nodes"][0]["host"] = "10.9.8.7"
    peer = tmp_path / "east.yaml"
    peer.write_text(config_mod.dump(config_mod.parse(raw)))
    missing = tmp_path / "gone.yaml"
    config = config_mod.parse(lab.model_dump(mode="json") | {"peers": [str(peer), str(missing)]})
    rules, _ = LocalNode.open(config, "node2").access_rules()
    lines = [r.line().split() for r in rules]
    assert ["hostssl", "replication", "replicator", "10.9.8.7/32", "scram-sha-256"] in lines


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def https_server(lab: config_mod.ClusterConfig) -> Iterator[int]:
    tlsfiles.ensure(lab, me(), tlsfiles.members(lab))
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*lab.cert_files("node1"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_the_client_context_trusts_the_cluster_ca_only(
    lab: config_mod.ClusterConfig, https_server: int, tmp_path: Path
) -> None:
    import http.client

    assert lab.ca_file is not None
    good = http.client.HTTPSConnection(
        "127.0.0.1", https_server, context=client_context(lab.ca_file), timeout=5
    )
    good.request("GET", "/")
    assert good.getresponse().read() == b"hello"
    stranger = tmp_path / "other-ca.crt"
    stranger.write_bytes(certs.new_ca("other").cert_pem)
    bad = http.client.HTTPSConnection(
        "127.0.0.1", https_server, context=client_context(stranger), timeout=5
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        bad.request("GET", "/")


def test_threads_asking_at_once_share_one_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cluster show asks every agent at once, a thread each: they must not each build
    their own context (each build of a process's first one pays OpenSSL's start-up)."""
    from pgherd.tls import context as context_mod

    ca = tmp_path / "ca.crt"
    ca.write_bytes(certs.new_ca("c").cert_pem)
    built: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def slow_create(*args: object, **kw: object) -> ssl.SSLContext:
        made = create(*args, **kw)  # type: ignore[arg-type]
        built.append(made)
        threading.Event().wait(0.05)  # widen the window in which the others would miss
        return made

    monkeypatch.setattr(ssl, "create_default_context", slow_create)
    context_mod._cached.cache_clear()
    start = threading.Barrier(4)
    got: list[ssl.SSLContext] = []

    def ask() -> None:
        start.wait()
        got.append(client_context(ca))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    context_mod._cached.cache_clear()
    assert len(built) == 1
    assert len(got) == 4 and all(c is built[0] for c in got)
    assert built[0].verify_mode == ssl.CERT_REQUIRED and built[0].check_hostname


def test_a_certificate_lives_no_longer_than_its_ca() -> None:
    ca = certs.new_ca("c", days=10)
    made = certs.issue(ca, "n", ["127.0.0.1"], days=400)
    assert made.certificate.not_valid_after_utc <= ca.certificate.not_valid_after_utc
    assert made.certificate.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(11)


def test_a_server_built_without_ssl_is_refused_with_tls_on(
    lab: config_mod.ClusterConfig, tmp_path: Path
) -> None:
    from pgherd.pg import binaries

    found = binaries.pgserver_bindir()  # PostgreSQL 16 from PyPI: built without OpenSSL
    if found is None:
        pytest.skip("the dev dependency pgserver is not installed")
    pgbin = binaries.inspect(found)
    assert not pgbin.supports_ssl
    lite = lab.lite()
    local = LocalNode(lite, lite.node("node1"), pgbin, me())
    with pytest.raises(ConfigError, match="built without OpenSSL"):
        local.settings(None)
    assert binaries.find(None).supports_ssl  # Debian's build has it


def test_doctor_flags_tls_off_and_a_server_without_ssl() -> None:
    from pgherd.model import doctor

    assert doctor.check_tls(True) == []
    (finding,) = doctor.check_tls(False)
    assert (finding.severity, finding.check) == (doctor.Severity.WARNING, "tls")
    facts = doctor.NodeFacts(
        name="node1",
        os_user="postgres",
        data_dir="/d",
        data_dir_exists=True,
        data_dir_owner="postgres",
        data_dir_mode=0o700,
        settings={"ssl": "off"},
    )
    assert [f.check for f in doctor.check_node(facts, 2, False, tls=True)] == ["tls"]
    assert doctor.check_node(facts, 2, False, tls=False) == []


@pytest.mark.parametrize("entry", ["quick", "typer"])
def test_cluster_show_says_when_tls_is_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, entry: str
) -> None:
    """Through the program's dispatcher (the quick command) and through the Typer CLI."""
    import json
    import sys

    from pgherd.cli import entry as quick_entry
    from pgherd.cli import main as full_cli

    main = quick_entry.main if entry == "quick" else full_cli.main
    lab = layout.lab_config(tmp_path / "lab", layout.LabShape(1, 5440, "postgres", None, tls=False))
    path = tmp_path / "pgherd.yaml"
    path.write_text(config_mod.dump(lab))
    for args in (["cluster", "show"], ["cluster", "show", "--json"]):
        monkeypatch.setattr(sys, "argv", ["pgherd", *args, "-c", str(path)])
        with pytest.raises(SystemExit):
            main()
        out = capsys.readouterr().out
        if "--json" in args:
            assert json.loads(out)["tls"] is False
        else:
            assert "TLS is off (tls: off in pgherd.yaml)" in " ".join(out.split())
