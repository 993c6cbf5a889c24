"""Auth errors (duckfleet.wire.status maps them to Flight statuses).

AuthError
├── Unauthenticated   no, wrong, forged or expired credentials   UNAUTHENTICATED
├── PermissionDenied  a valid user whose role may not do this    PERMISSION_DENIED
└── AuthConfigError   the process cannot start: a missing key, an unreadable
                      users file or certificate (raised at startup)
"""

from __future__ import annotations

from duckfleet.errors import DuckfleetError


class AuthError(DuckfleetError):
    pass


class Unauthenticated(AuthError):
    pass


class PermissionDenied(AuthError):
    pass


class AuthConfigError(AuthError):
    pass
