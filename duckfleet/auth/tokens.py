"""Signed bearer tokens: who the caller is, what role they have, until when.

A token is ``v1.<payload>.<signature>``: the payload is base64url (no padding) of
compact JSON ``{"u": user, "r": role, "e": expiry (Unix seconds), "i": issued}``;
the signature is base64url of HMAC-SHA256 over ``v1.<payload>`` with the fleet's
shared key (DUCKFLEET_TOKEN_KEY). Any front door or worker holding the key verifies
a token with no state and no call to anyone, so a client that logged in at one front
door fetches its results straight from the workers with the same header. Unknown
payload keys are ignored, so later versions may carry more (a session, say).

Pure: hmac, hashlib, json, base64, time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from duckfleet.auth.errors import AuthConfigError, Unauthenticated

ADMIN = "admin"  # DDL, ingest, table management, and everything a user may do
USER = "user"  # read: queries and metadata
ROLES = (ADMIN, USER)  # what a person may have
# a fleet member's own calls to workers: reading results, offering fast-path work;
# issued to processes (wire/auth.py ServiceToken), never to a login
SERVICE = "service"
TOKEN_ROLES = (*ROLES, SERVICE)

VERSION = "v1"
MIN_KEY_BYTES = 16
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True)
class Identity:
    user: str
    role: str
    expires: float  # Unix seconds; float("inf") for the anonymous identity

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


ANONYMOUS = Identity(user="", role=ADMIN, expires=float("inf"))
"""Everyone, when auth is off (DUCKFLEET_AUTH=none): local use, every right."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies tokens with one key; ``ttl`` seconds of validity."""

    def __init__(self, key: bytes, ttl: float, clock: Callable[[], float] = time.time) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise AuthConfigError(
                f"the token key is {len(key)} bytes; use at least {MIN_KEY_BYTES} random bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if ttl <= 0:
            raise AuthConfigError(f"DUCKFLEET_TOKEN_TTL must be positive, not {ttl}")
        self._key = key
        self.ttl = ttl
        self._clock = clock

    def issue(self, user: str, role: str, ttl: float | None = None) -> str:
        if role not in TOKEN_ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(TOKEN_ROLES)}")
        now = self._clock()
        claims = {"u": user, "r": role, "e": int(now + (ttl or self.ttl)), "i": int(now)}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{VERSION}.{payload}.{self._sign(payload)}"

    def verify(self, token: str) -> Identity:
        """The identity a token carries; Unauthenticated if forged, altered or expired."""
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("invalid bearer token: too long to be one duckfleet issued")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != VERSION:
            raise Unauthenticated("invalid bearer token: not one duckfleet issued; log in again")
        _, payload, signature = parts
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise Unauthenticated(
                "invalid bearer token: its signature does not match (altered, or issued by "
                "another fleet); log in again"
            )
        try:
            claims = json.loads(_unb64(payload))
            identity = Identity(str(claims["u"]), str(claims["r"]), float(claims["e"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise Unauthenticated("invalid bearer token: malformed payload") from None
        if identity.role not in TOKEN_ROLES:
            raise Unauthenticated(f"invalid bearer token: unknown role {identity.role!r}")
        if identity.expires <= self._clock():
            raise Unauthenticated("the bearer token has expired; log in again (Handshake)")
        return identity

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._key, f"{VERSION}.{payload}".encode(), hashlib.sha256)
        return _b64(mac.digest())
