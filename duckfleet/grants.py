"""Who may read which table or view: SELECT grants, as pure values.

A grant lets one principal read one catalog name (a table or a view):

    Principal("user", "ana")    the user ana (a login of the users file)
    Principal("role", "user")   everyone with the role ``user``

The rules, in ``Grants.may_read``:

* an admin (and everyone, when auth is off) reads everything;
* a name someone was granted is readable by its grantees only;
* a name nobody was granted is readable by every user while the fleet-wide setting
  ``ungranted`` is ``public`` (the default: what duckfleet did before grants), by
  admins only while it is ``admins``.

Reading a view needs the view itself and every table and view it reads (checked by
the caller, which expands views: flight/access.py), so a grant on a view never
reveals a table its reader was not granted.

Pure: no I/O. The control plane keeps grants in etcd (control/grants.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from duckfleet.auth.tokens import ADMIN, ROLES, Identity

USER_KIND = "user"
ROLE_KIND = "role"
KINDS = (USER_KIND, ROLE_KIND)

PUBLIC = "public"  # a name nobody was granted: every user reads it
ADMINS = "admins"  # ... admins only
UNGRANTED_MODES = (PUBLIC, ADMINS)

_PRINCIPAL_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # user names (duckfleet/auth/users.py)
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # catalog names (planner/write_statements.py)


class GrantError(ValueError):
    """A grant that cannot be: an unknown kind, role or mode, a malformed name."""


@dataclass(frozen=True, order=True)
class Principal:
    kind: str  # "user" | "role"
    name: str

    def __str__(self) -> str:
        return f"{self.kind.upper()} {self.name}"


def principal(kind: str, name: str) -> Principal:
    """A principal a grant may go to, checked: GrantError says what is wrong."""
    kind = kind.lower()
    if kind not in KINDS:
        raise GrantError(f"grants go to a USER or a ROLE, not to {kind!r}")
    if not _PRINCIPAL_NAME.fullmatch(name):
        raise GrantError(f"invalid {kind} name {name!r}: use 1-64 of A-Z a-z 0-9 _ . @ -")
    if kind == ROLE_KIND:
        if name not in ROLES:
            raise GrantError(f"unknown role {name!r}; roles: {', '.join(ROLES)}")
        if name == ADMIN:
            raise GrantError(
                "admins read every table and view already; grant to ROLE user or to a USER"
            )
    return Principal(kind, name)


@dataclass(frozen=True, order=True)
class Grant:
    name: str  # a catalog table or view, lower case
    principal: Principal


def table_key(name: str) -> str:
    """A catalog name as grants store it: lower case, checked."""
    lowered = name.lower()
    if not _TABLE_NAME.fullmatch(lowered):
        raise GrantError(
            f"{name!r} is not a table name: letters, digits and _ (at most 63, not "
            "starting with a digit)"
        )
    return lowered


def check_mode(mode: str) -> str:
    if mode not in UNGRANTED_MODES:
        raise GrantError(
            f"unknown setting {mode!r} for tables nobody was granted: "
            f"{' or '.join(UNGRANTED_MODES)}"
        )
    return mode


@dataclass(frozen=True)
class Grants:
    """Every grant of the fleet and the ``ungranted`` setting, as read at ``version``
    (etcd's revision of what was read; 0: nothing stored)."""

    grants: frozenset[Grant] = frozenset()
    ungranted: str = PUBLIC
    version: int = 0
    _by_name: dict[str, frozenset[Principal]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        check_mode(self.ungranted)
        by_name: dict[str, set[Principal]] = {}
        for g in self.grants:
            by_name.setdefault(g.name, set()).add(g.principal)
        object.__setattr__(self, "_by_name", {k: frozenset(v) for k, v in by_name.items()})

    @property
    def open(self) -> bool:
        """Every user reads everything: no grant, ungranted names public."""
        return not self.grants and self.ungranted == PUBLIC

    def grantees(self, name: str) -> frozenset[Principal]:
        return self._by_name.get(name.lower(), frozenset())

    def may_read(self, who: Identity, name: str) -> bool:
        if who.is_admin:
            return True
        grantees = self.grantees(name)
        if not grantees:
            return self.ungranted == PUBLIC
        return (
            Principal(USER_KIND, who.user) in grantees or Principal(ROLE_KIND, who.role) in grantees
        )

    def denied(self, who: Identity, names: Iterable[str]) -> list[str]:
        """The names of ``names`` that ``who`` may not read, sorted."""
        if who.is_admin or self.open:
            return []
        return sorted({n.lower() for n in names if not self.may_read(who, n)})

    def for_name(self, name: str | None = None) -> list[Grant]:
        """The grants (of one name, or all), sorted."""
        if name is None:
            return sorted(self.grants)
        key = name.lower()
        return sorted(g for g in self.grants if g.name == key)
