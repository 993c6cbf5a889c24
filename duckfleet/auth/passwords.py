"""Salted password hashes with the standard library's scrypt.

Stored form: ``scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>``: the parameters
travel with the hash, so they can be raised later without breaking old entries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1  # about 16 MiB and a few tens of milliseconds per check
SALT_BYTES = 16
HASH_BYTES = 32
SCHEME = "scrypt"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P)
    encoded = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    return "$".join((SCHEME, str(N), str(R), str(P), *encoded))


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; False for a malformed entry too."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
        if not (2 <= n <= 2**17 and 1 <= r <= 16 and 1 <= p <= 4):
            return False
        return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)
    except (ValueError, binascii.Error):
        return False


def is_password_hash(text: str) -> bool:
    return text.startswith(SCHEME + "$") and text.count("$") == 5


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int = HASH_BYTES) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=size, maxmem=256 * n * r + 2**20
    )
