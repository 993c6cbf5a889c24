"""Who may log in: the admin from the environment and the users file.

Users file (DUCKFLEET_USERS_FILE), one user a line, ``#`` starts a comment::

    <name>:<role>:<password hash>        e.g.  ana:user:scrypt$16384$8$1$...$...

Roles: ``admin`` (DDL, ingest, table management) and ``user`` (read). Write entries
with ``duckfleet user add NAME --role user``; passwords are never stored in clear.
The file is read again whenever it changes, so adding a user needs no restart.
The admin from the environment (DUCKFLEET_ADMIN_USER, DUCKFLEET_ADMIN_PASSWORD or
DUCKFLEET_ADMIN_PASSWORD_FILE) has the admin role; it wins over a file entry of the
same name.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass

from duckfleet.auth.errors import AuthConfigError, Unauthenticated
from duckfleet.auth.passwords import hash_password, is_password_hash, verify_password
from duckfleet.auth.tokens import ADMIN, ROLES

NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
WRONG = "wrong user name or password"


@dataclass(frozen=True)
class UserEntry:
    name: str
    role: str
    password_hash: str


def parse_users(text: str, origin: str = "users file") -> dict[str, UserEntry]:
    users: dict[str, UserEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise AuthConfigError(f"{origin}, line {number}: expected name:role:hash")
        name, role, hashed = parts
        if not NAME.fullmatch(name):
            raise AuthConfigError(f"{origin}, line {number}: invalid user name {name!r}")
        if role not in ROLES:
            raise AuthConfigError(
                f"{origin}, line {number}: unknown role {role!r}; roles: {', '.join(ROLES)}"
            )
        if not is_password_hash(hashed):
            raise AuthConfigError(
                f"{origin}, line {number}: the password of {name!r} is not a scrypt hash; "
                "write entries with `duckfleet user add`"
            )
        users[name] = UserEntry(name, role, hashed)
    return users


def format_users(users: dict[str, UserEntry]) -> str:
    lines = ["# duckfleet users: name:role:scrypt hash (write with `duckfleet user add`)"]
    for u in sorted(users.values(), key=lambda u: u.name):
        lines.append(f"{u.name}:{u.role}:{u.password_hash}")
    return "\n".join(lines) + "\n"


def read_users_file(path: str) -> dict[str, UserEntry]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_users(f.read(), path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AuthConfigError(f"cannot read the users file {path}: {exc}") from None


def write_users_file(path: str, users: dict[str, UserEntry]) -> None:
    """Replace the file atomically, readable by its owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(format_users(users))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def add_user(path: str, name: str, role: str, password: str) -> bool:
    """Add or replace ``name`` in the users file; True if it was new."""
    if not NAME.fullmatch(name):
        raise AuthConfigError(f"invalid user name {name!r}: use 1-64 of A-Z a-z 0-9 _ . @ -")
    if role not in ROLES:
        raise AuthConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not password:
        raise AuthConfigError("the password is empty")
    users = read_users_file(path)
    new = name not in users
    users[name] = UserEntry(name, role, hash_password(password))
    write_users_file(path, users)
    return new


def remove_user(path: str, name: str) -> bool:
    users = read_users_file(path)
    if users.pop(name, None) is None:
        return False
    write_users_file(path, users)
    return True


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


class UserDirectory:
    """Checks user names and passwords; ``authenticate`` returns the user's role."""

    def __init__(
        self,
        admin_user: str = "admin",
        admin_password: str | None = None,
        users_file: str | None = None,
    ) -> None:
        if admin_password is not None and not admin_password:
            raise AuthConfigError("the admin password is empty")
        self._admin_user = admin_user
        self._admin_hash = hash_password(admin_password) if admin_password else None
        self._users_file = users_file or None
        self._lock = threading.Lock()
        self._file_stamp: tuple[float, int] | None = None
        self._file_users: dict[str, UserEntry] = {}
        if self._users_file:
            self._reload()  # a broken file stops the process at startup
        if self._admin_hash is None and not self._users_file:
            raise AuthConfigError(
                "auth is on (DUCKFLEET_AUTH=basic) but nobody can log in: set "
                "DUCKFLEET_ADMIN_PASSWORD (or DUCKFLEET_ADMIN_PASSWORD_FILE) or "
                "DUCKFLEET_USERS_FILE; DUCKFLEET_AUTH=none turns auth off for local use"
            )

    def describe(self) -> str:
        parts = []
        if self._admin_hash is not None:
            parts.append(f"admin user {self._admin_user!r}")
        if self._users_file:
            parts.append(f"users file {self._users_file} ({len(self._users())} user(s))")
        return ", ".join(parts)

    def authenticate(self, name: str, password: str) -> str:
        """The role of ``name``; Unauthenticated if the name or password is wrong."""
        if self._admin_hash is not None and name == self._admin_user:
            if verify_password(password, self._admin_hash):
                return ADMIN
            raise Unauthenticated(WRONG)
        entry = self._users().get(name)
        # an unknown name costs the same hash as a known one: timing tells nothing
        stored = entry.password_hash if entry is not None else _dummy_hash()
        if not verify_password(password, stored) or entry is None:
            raise Unauthenticated(WRONG)
        return entry.role

    def _users(self) -> dict[str, UserEntry]:
        if self._users_file:
            try:
                self._reload()
            except AuthConfigError:
                pass  # keep the users read last time; the startup check read it fine
        return self._file_users

    def _reload(self) -> None:
        assert self._users_file is not None
        try:
            st = os.stat(self._users_file)
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._file_stamp and self._file_stamp is not None:
                return
            self._file_users = read_users_file(self._users_file) if stamp else {}
            self._file_stamp = stamp
