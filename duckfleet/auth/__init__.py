"""Who may talk to the fleet: users, passwords, bearer tokens, TLS material.

    tokens.py     Identity; TokenSigner: HMAC-SHA256 bearer tokens every front door
                  and every worker verifies with the shared DUCKFLEET_TOKEN_KEY
    passwords.py  salted scrypt password hashes
    users.py      UserDirectory: the admin from the environment and the users file
    tls.py        certificate files: loading them, a self-signed pair for local use
    setup.py      the signer, user directory and TLS files a process's config asks for
    errors.py     Unauthenticated, PermissionDenied, AuthConfigError

The Flight side (middleware that checks headers, the Handshake answer) lives in
duckfleet.wire.auth; nothing here imports pyarrow.
"""

from __future__ import annotations

from duckfleet.auth.errors import AuthConfigError, AuthError, PermissionDenied, Unauthenticated
from duckfleet.auth.tokens import (
    ADMIN,
    ANONYMOUS,
    ROLES,
    SERVICE,
    USER,
    Identity,
    TokenSigner,
)

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "ROLES",
    "SERVICE",
    "USER",
    "AuthConfigError",
    "AuthError",
    "Identity",
    "PermissionDenied",
    "TokenSigner",
    "Unauthenticated",
]
