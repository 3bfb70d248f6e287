"""SCRAM-SHA-256 password verifiers, computed here so a plain password never reaches SQL.

``CREATE ROLE … PASSWORD 'SCRAM-SHA-256$…'`` stores the verifier as given, so the clear
password cannot show up in the server's log, pg_stat_activity or an error message; this is
what psql's ``\\password`` does (RFC 5802, RFC 7677; PostgreSQL's scram_build_secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 4096


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    if not password.isascii():
        raise ValueError("only ASCII passwords are supported here (no SASLprep)")
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def matches(stored: str, password: str) -> bool:
    """Whether ``password`` is the one behind a role's stored secret (a SCRAM verifier, or
    an old ``md5`` hash, which is md5(password + role name) and cannot be checked without
    the name: False)."""
    try:
        method, rest = stored.split("$", 1)
        iterations_salt, keys = rest.split("$", 1)
        iterations, salt = iterations_salt.split(":", 1)
    except ValueError:
        return False
    if method != "SCRAM-SHA-256" or not password.isascii():
        return False
    rebuilt = verifier(password, base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(rebuilt.rsplit("$", 1)[1], keys)
