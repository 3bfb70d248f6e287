"""Console passwords: scrypt from the standard library (hashlib.scrypt), no extra package.

The stored form is ``scrypt$N$r$p$salt$hash`` (base64), so the cost can be raised later
without invalidating the hashes already written. N=2**15, r=8, p=1 costs 32 MB and
about 0.3 s per check on these machines: slow for a guesser, fine for a login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from pgherd.errors import InvalidInput

N, R, P = 2**15, 8, 1
KEY_BYTES = 32
MIN_LENGTH = 8


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=KEY_BYTES
    )


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"the password is shorter than {MIN_LENGTH} characters", "choose a longer one"
        )
    salt = os.urandom(16)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(_derive(password, salt, N, R, P))}"


def verify(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False for a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


# A hash to check against when the user does not exist, so that a wrong name costs as
# long as a wrong password (no user enumeration by timing).
DUMMY_HASH = f"scrypt${N}${R}${P}${_b64(b'0' * 16)}${_b64(b'0' * KEY_BYTES)}"
