"""A cluster CA and the certificates it signs. Pure: PEM bytes in, PEM bytes out.

Keys are ECDSA P-256: every part speaks it (OpenSSL in PostgreSQL and libpq, Go's TLS in
etcd, Python's ssl), and a key takes a millisecond to make where RSA-3072 takes a
second. A member's certificate serves both ends: the server (its agent's HTTPS API, its
PostgreSQL, an etcd member) and the client (its calls to other agents when
``tls.client_certs`` asks for them), so it carries both extended key usages and a
subject alternative name for each address the member is reached at.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgherd.errors import PgherdError

CA_DAYS = 3650
CERT_DAYS = 825  # what browsers and most tools accept as the longest life of a leaf


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_ca(cluster: str, days: int = CA_DAYS) -> Issued:
    """A self-signed CA for ``cluster``, allowed to sign end certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgherd"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"pgherd cluster {cluster} CA"),
        ]
    )
    start = _now() - dt.timedelta(minutes=5)  # a clock a little behind still accepts it
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def subject_names(addresses: Iterable[str]) -> list[x509.GeneralName]:
    """An IP address SAN for each address that is one, a DNS SAN for each host name."""
    names: list[x509.GeneralName] = []
    for address in dict.fromkeys(a.strip("[]") for a in addresses if a):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    return names


def issue(ca: Issued, name: str, addresses: Iterable[str], days: int = CERT_DAYS) -> Issued:
    """A certificate for member ``name`` reached at ``addresses``, signed by ``ca``."""
    ca_cert = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise PgherdError(
            "the cluster CA's key is not an EC key made by pgherd",
            "make a new CA with pgherd secrets init --force",
        )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = subject_names(addresses)
    if not sans:
        raise ValueError(f"{name}: a certificate needs at least one address")
    start = _now() - dt.timedelta(minutes=5)
    not_after = min(start + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pgherd"),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class CertFacts:
    """What ``doctor`` and ``secrets`` say about a certificate."""

    subject: str
    issuer: str
    not_after: dt.datetime
    addresses: tuple[str, ...]
    signed_by_ca: bool

    def days_left(self, now: dt.datetime | None = None) -> float:
        return (self.not_after - (now or _now())).total_seconds() / 86400


def facts(cert_pem: bytes, ca_pem: bytes) -> CertFacts:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        addresses = tuple(str(v) for v in sans.get_values_for_type(x509.IPAddress)) + tuple(
            sans.get_values_for_type(x509.DNSName)
        )
    except x509.ExtensionNotFound:
        addresses = ()
    try:
        cert.verify_directly_issued_by(ca)
        signed = True
    except (ValueError, TypeError, InvalidSignature):
        signed = False
    return CertFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        addresses=addresses,
        signed_by_ca=signed,
    )


def common_name(cert_pem: bytes) -> str | None:
    """The subject's common name: the member's name, as :func:`issue` writes it."""
    found = x509.load_pem_x509_certificate(cert_pem).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    return str(found[0].value) if found else None
