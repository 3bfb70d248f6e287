"""SCRAM-SHA-256 verifiers: PostgreSQL's format, and correct by the RFC 7677 example."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest

from pgherd.pg import scram

# RFC 7677, section 3: user "user", password "pencil".
RFC_SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_CLIENT_FIRST_BARE = "n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL_WITHOUT_PROOF = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

_VERIFIER = re.compile(
    r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$"
)


def _parts(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    match = _VERIFIER.match(verifier)
    assert match is not None, verifier
    iterations, salt, stored, server = match.groups()
    return (
        int(iterations),
        base64.b64decode(salt),
        base64.b64decode(stored),
        base64.b64decode(server),
    )


def test_verifier_has_postgresqls_format() -> None:
    iterations, salt, stored_key, server_key = _parts(scram.verifier("s3cret"))
    assert iterations == 4096
    assert len(salt) == 16
    assert len(stored_key) == len(server_key) == 32


def test_verifier_is_deterministic_for_a_fixed_salt_and_salted_otherwise() -> None:
    salt = base64.b64decode(RFC_SALT)
    assert scram.verifier("pencil", salt) == scram.verifier("pencil", salt)
    assert scram.verifier("pencil") != scram.verifier("pencil")
    assert scram.verifier("pencil", salt) != scram.verifier("pencil2", salt)


def test_verifier_matches_an_independent_rfc_5802_computation() -> None:
    salt = b"0123456789abcdef"
    salted = hashlib.pbkdf2_hmac("sha256", b"correct horse", salt, 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    expected = "SCRAM-SHA-256$4096:{}${}:{}".format(
        base64.b64encode(salt).decode(),
        base64.b64encode(hashlib.sha256(client_key).digest()).decode(),
        base64.b64encode(hmac.digest(salted, b"Server Key", "sha256")).decode(),
    )
    assert scram.verifier("correct horse", salt) == expected


def test_verifier_reproduces_the_rfc_7677_exchange() -> None:
    """A server holding only this verifier accepts the RFC's client proof and answers with
    the RFC's server signature: the verifier is right, not merely well-formed."""
    verifier = scram.verifier("pencil", base64.b64decode(RFC_SALT), 4096)
    iterations, salt, stored_key, server_key = _parts(verifier)
    assert (iterations, base64.b64encode(salt).decode()) == (4096, RFC_SALT)
    auth_message = ",".join(
        [RFC_CLIENT_FIRST_BARE, RFC_SERVER_FIRST, RFC_CLIENT_FINAL_WITHOUT_PROOF]
    ).encode()

    server_signature = hmac.digest(server_key, auth_message, "sha256")
    assert base64.b64encode(server_signature).decode() == RFC_SERVER_SIGNATURE

    client_signature = hmac.digest(stored_key, auth_message, "sha256")
    proof = base64.b64decode(RFC_CLIENT_PROOF)
    client_key = bytes(p ^ s for p, s in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_verifier_with_other_iterations() -> None:
    assert scram.verifier("x", b"salt", 10000).startswith("SCRAM-SHA-256$10000:c2FsdA==$")


@pytest.mark.parametrize("password", ["pässword", "пароль", "emoji\N{SNOWMAN}"])
def test_non_ascii_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValueError, match="only ASCII passwords"):
        scram.verifier(password)
