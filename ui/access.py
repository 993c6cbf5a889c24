"""Who is looking at the query page, and what they may see and do.

Logins are HTTP Basic, checked against the same users as the front doors'
(duckfleet/auth/users.py: the admin from the environment and the users file). A
checked password is remembered for a minute (as a salted digest, never in clear),
so a page that refreshes costs no scrypt hash each time. The rules are the front
doors': an admin sees every query and may cancel it; a user sees their own; with
auth off (DUCKFLEET_AUTH=none) everyone is an admin.

The cancel button is a POST form carrying a token bound to the user and the query
(HMAC with a key this process draws at start), so another site cannot make a
logged-in browser cancel a query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from duckfleet.auth import ADMIN, Unauthenticated
from duckfleet.auth.users import UserDirectory
from duckfleet.control.records import QueryRecord

REMEMBER_SECONDS = 60.0


@dataclass(frozen=True)
class Viewer:
    user: str  # "" when auth is off
    is_admin: bool

    def sees(self, record: QueryRecord) -> bool:
        return self.is_admin or (bool(self.user) and record.user == self.user)

    @property
    def may_cancel(self) -> bool:
        return self.is_admin


NOBODY_CHECKS = Viewer(user="", is_admin=True)  # auth off: everyone sees all


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    if not sep or not user:
        return None
    return user, password


class Logins:
    """Checks Basic credentials against a UserDirectory (None: auth is off)."""

    def __init__(
        self, users: UserDirectory | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.users = users
        self._clock = clock
        self._salt = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._known: dict[str, tuple[bytes, str, float]] = {}  # user -> (digest, role, until)

    @property
    def enabled(self) -> bool:
        return self.users is not None

    def viewer(self, authorization: str | None) -> Viewer:
        """Who sent ``authorization``; Unauthenticated if nobody valid did."""
        if self.users is None:
            return NOBODY_CHECKS
        creds = basic_credentials(authorization)
        if creds is None:
            raise Unauthenticated("log in with a duckfleet user name and password")
        user, password = creds
        digest = hashlib.sha256(self._salt + password.encode()).digest()
        now = self._clock()
        with self._lock:
            known = self._known.get(user)
        if known is not None and known[2] > now and hmac.compare_digest(known[0], digest):
            role = known[1]
        else:
            role = self.users.authenticate(user, password)  # Unauthenticated if wrong
            with self._lock:
                self._known[user] = (digest, role, now + REMEMBER_SECONDS)
        return Viewer(user=user, is_admin=role == ADMIN)


class CancelTokens:
    """The token a cancel form carries: bound to the viewer and the query."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def token(self, viewer: Viewer, query_id: str) -> str:
        mac = hmac.new(self._key, f"{viewer.user}\0{query_id}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def valid(self, viewer: Viewer, query_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(viewer, query_id), token)
