"""Auth on the wire: the authorization header of every Flight call, on front doors
and workers alike, and the Handshake that turns a password into a bearer token.

What clients send (checked against their source, and with the real ADBC driver):

* ADBC Flight SQL driver (Go; ``username``/``password`` database options): Handshake
  with header ``authorization: Basic base64(user:password)`` (unpadded base64), no
  message; reads ``authorization`` from the response headers and sends it on every
  later call, including DoGet on the endpoint locations (workers).
* Arrow Flight SQL JDBC driver (``user``/``password`` properties; arrow-java
  ClientAuthenticationUtils, ClientIncomingAuthHeaderMiddleware): Handshake with
  ``Authorization: Basic ...`` (padded) and one empty message; keeps the ``Bearer``
  value of the response's ``authorization`` header and reuses it for the endpoint
  locations. With the ``token`` property it sends ``Bearer <token>`` on Handshake.
* pyarrow.flight ``authenticate_basic_token``: as the JDBC driver.

So: a front door answers Handshake with ``Basic`` by checking the password
(duckfleet.auth.users) and sending ``authorization: Bearer <token>`` back; a Handshake
with a valid ``Bearer`` gets it back. Every other call, on a front door or a worker,
needs ``authorization: Bearer <token>`` (duckfleet.auth.tokens); anything else is
UNAUTHENTICATED. Handlers learn who calls with ``identity_of(context)`` (or
``call.identity`` inside ``flight_call``) and guard admin-only work with
``require_admin``, which raises PermissionDenied (PERMISSION_DENIED).

The front door's and worker's own outgoing calls (a partition fetched from a worker,
an input from another worker) carry a token they mint for themselves with the shared
key, through ``ClientSecurity``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow.flight as fl

from duckfleet.auth import ANONYMOUS, SERVICE, Identity, TokenSigner, setup
from duckfleet.auth.errors import AuthError, PermissionDenied, Unauthenticated
from duckfleet.auth.tls import TlsFiles
from duckfleet.auth.users import UserDirectory
from duckfleet.config import CommonConfig, FrontDoorConfig
from duckfleet.wire.tracing import TraceHeaderFactory

log = logging.getLogger("duckfleet.auth")

MIDDLEWARE_KEY = "auth"
HEADER = "authorization"


class AuthenticatedCall(fl.ServerMiddleware):
    """Carries the caller's identity to the handler; on Handshake, sends the token."""

    def __init__(self, identity: Identity, token: str | None = None) -> None:
        self.identity = identity
        self._token = token

    def sending_headers(self) -> dict[str, str]:
        return {HEADER: f"Bearer {self._token}"} if self._token else {}


class ServerAuth(fl.ServerMiddlewareFactory):
    """Checks every call's authorization header.

    ``users``: the front door's user directory (Handshake with a password); None on a
    worker, which takes bearer tokens only.
    """

    def __init__(self, signer: TokenSigner, users: UserDirectory | None = None) -> None:
        self.signer = signer
        self.users = users

    def start_call(self, info: fl.CallInfo, headers: dict[str, list[Any]]) -> AuthenticatedCall:
        method = info.method.name
        try:
            return self._authenticate(info.method == fl.FlightMethod.HANDSHAKE, headers)
        except AuthError as exc:
            log.info("%s UNAUTHENTICATED: %s", method, exc)
            raise fl.FlightUnauthenticatedError(str(exc)) from None

    def _authenticate(self, handshake: bool, headers: dict[str, list[Any]]) -> AuthenticatedCall:
        scheme, value = _authorization(headers)
        if scheme == "bearer":
            identity = self.signer.verify(value)
            return AuthenticatedCall(identity, value if handshake else None)
        if scheme == "basic" and handshake:
            if self.users is None:
                raise Unauthenticated(
                    "this is a worker: log in at a front door and send its bearer token"
                )
            user, password = _basic_credentials(value)
            try:
                role = self.users.authenticate(user, password)
            except Unauthenticated:
                log.warning("Handshake user=%r: wrong user name or password", user)
                raise
            log.info("Handshake user=%s role=%s: bearer token issued", user, role)
            identity_token = self.signer.issue(user, role)
            return AuthenticatedCall(self.signer.verify(identity_token), identity_token)
        if scheme == "basic":
            raise Unauthenticated(
                "Basic credentials are taken by Handshake only: log in there and send the "
                "bearer token it answers with (authorization: Bearer <token>)"
            )
        if scheme:
            raise Unauthenticated(
                f"unsupported authorization scheme {scheme!r}: use Basic or Bearer"
            )
        if handshake:
            raise Unauthenticated(
                "authentication required: log in with a user name and password "
                "(Handshake with authorization: Basic)"
            )
        raise Unauthenticated(
            "authentication required: send the bearer token from Handshake "
            "(authorization: Bearer <token>); clients log in with a user name and password"
        )


class NoAuth(fl.ServerMiddlewareFactory):
    """DUCKFLEET_AUTH=none: everyone is ANONYMOUS (admin). A client that logs in anyway
    gets a placeholder bearer back, since drivers given a user name expect one (the
    ADBC driver fails with "no authorization header on the response")."""

    def start_call(self, info: fl.CallInfo, headers: dict[str, list[Any]]) -> AuthenticatedCall:
        logs_in = info.method == fl.FlightMethod.HANDSHAKE and bool(headers.get(HEADER))
        return AuthenticatedCall(ANONYMOUS, ANONYMOUS_TOKEN if logs_in else None)


ANONYMOUS_TOKEN = "anonymous"


def _authorization(headers: dict[str, list[Any]]) -> tuple[str, str]:
    """``(scheme in lower case, credentials)`` of the authorization header, or ``("", "")``."""
    values = headers.get(HEADER) or []
    if not values:
        return "", ""
    raw = values[0]
    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    scheme, _, credentials = text.strip().partition(" ")
    return scheme.lower(), credentials.strip()


def _basic_credentials(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, ValueError):
        raise Unauthenticated("malformed Basic credentials: not base64 of user:password") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise Unauthenticated("malformed Basic credentials: expected user:password")
    return user, password


def identity_of(context: Any) -> Identity:
    """Who makes the call: the token's identity, or ANONYMOUS (every right) when the
    server runs without auth (DUCKFLEET_AUTH=none)."""
    if context is None:
        return ANONYMOUS
    middleware = context.get_middleware(MIDDLEWARE_KEY)
    return middleware.identity if isinstance(middleware, AuthenticatedCall) else ANONYMOUS


def require_admin(who: Any, what: str) -> None:
    """Raise PermissionDenied unless ``who`` (an Identity, or a ``flight_call`` Call)
    has the admin role; ``what`` names the refused work in the message."""
    identity: Identity = who if isinstance(who, Identity) else who.identity
    if not identity.is_admin:
        raise PermissionDenied(
            f"{what} needs the admin role; user {identity.user!r} has the role "
            f"{identity.role!r} (read only)"
        )


def require_service(context: Any, what: str) -> None:
    """Raise PermissionDenied unless the call comes from a fleet member (a service
    token), or auth is off."""
    identity = identity_of(context)
    if identity is not ANONYMOUS and identity.role != SERVICE:
        raise PermissionDenied(
            f"{what} is for the fleet's own front doors; user {identity.user!r} may not "
            "call it (send queries to a front door)"
        )


class EmptyHandshake(fl.ServerAuthHandler):
    """A worker's Handshake body: an empty answer. The auth middleware has checked the
    caller's bearer token (the JDBC driver's ``token`` option shakes hands with every
    endpoint location) before this runs."""

    def authenticate(self, outgoing: fl.ServerAuthSender, incoming: fl.ServerAuthReader) -> None:
        outgoing.write(b"")

    def is_valid(self, token: bytes) -> bytes:
        return b""


# --- the fleet's own outgoing calls --------------------------------------------------


class ServiceToken:
    """Bearer header for this process's own calls to workers, renewed at half-life."""

    def __init__(self, signer: TokenSigner, user: str) -> None:
        self._signer = signer
        self._user = user
        self._lock = threading.Lock()
        self._header = ""
        self._renew_at = 0.0

    def header(self) -> str:
        with self._lock:
            now = time.monotonic()
            if now >= self._renew_at:
                self._header = f"Bearer {self._signer.issue(self._user, SERVICE)}"
                self._renew_at = now + self._signer.ttl / 2
            return self._header


class _BearerHeader(fl.ClientMiddleware):
    def __init__(self, value: str) -> None:
        self._value = value

    def sending_headers(self) -> dict[str, str]:
        return {HEADER: self._value}


class _BearerFactory(fl.ClientMiddlewareFactory):
    def __init__(self, token: ServiceToken) -> None:
        self._token = token

    def start_call(self, info: fl.CallInfo) -> fl.ClientMiddleware:
        return _BearerHeader(self._token.header())


@dataclass(frozen=True)
class ClientSecurity:
    """How this process connects to other fleet members: TLS roots, its own token."""

    root_certs: bytes | None = None
    token: ServiceToken | None = None
    server_name: str = ""  # checked against certificates instead of the location's host

    def connect(self, location: str) -> fl.FlightClient:
        kwargs: dict[str, Any] = {}
        if self.root_certs is not None:
            kwargs["tls_root_certs"] = self.root_certs
            if self.server_name:
                kwargs["override_hostname"] = self.server_name
        middleware: list[fl.ClientMiddlewareFactory] = [TraceHeaderFactory()]  # wire/tracing.py
        if self.token is not None:
            middleware.append(_BearerFactory(self.token))
        return fl.connect(location, middleware=middleware, **kwargs)


# --- what a front door or worker process sets up -------------------------------------


@dataclass(frozen=True)
class ProcessSecurity:
    """Auth and TLS of one front door or worker, from its configuration."""

    signer: TokenSigner | None  # None: auth off
    tls: TlsFiles | None  # None: plaintext
    users: UserDirectory | None = None  # front doors only
    tls_server_name: str = ""  # DUCKFLEET_TLS_SERVER_NAME

    @staticmethod
    def from_config(cfg: CommonConfig) -> ProcessSecurity:
        """A front door's (FrontDoorConfig: with its users) or a worker's."""
        signer = setup.token_signer(cfg)
        users = setup.user_directory(cfg) if isinstance(cfg, FrontDoorConfig) else None
        return ProcessSecurity(signer, setup.tls(cfg), users, cfg.tls_server_name)

    def server_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a pyarrow.flight server: TLS pair, auth middleware."""
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            kwargs["tls_certificates"] = [self.tls.server_pair()]
        auth = ServerAuth(self.signer, self.users) if self.signer is not None else NoAuth()
        kwargs["middleware"] = {MIDDLEWARE_KEY: auth}
        return kwargs

    def client(self, member: str) -> ClientSecurity:
        """How this process, named ``member`` in its tokens, calls other members."""
        return ClientSecurity(
            root_certs=self.tls.root_certs() if self.tls is not None else None,
            token=ServiceToken(self.signer, member) if self.signer is not None else None,
            server_name=self.tls_server_name,
        )

    def describe(self) -> str:
        auth = "auth off (DUCKFLEET_AUTH=none)" if self.signer is None else "bearer tokens"
        if self.users is not None:
            auth += f", logins: {self.users.describe()}"
        return f"{auth}; {'TLS' if self.tls is not None else 'plaintext (no TLS)'}"
