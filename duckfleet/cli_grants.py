"""`duckfleet grant`, `duckfleet revoke`, `duckfleet grants`: SELECT grants in etcd,
as the SQL statements GRANT and REVOKE set them (duckfleet/grants.py has the rules).

    duckfleet grant TABLE [TABLE ...] (--user NAME | --role user) ...
    duckfleet revoke TABLE [TABLE ...] (--user NAME | --role user) ...
    duckfleet grants [TABLE]                 list grants, and the ungranted setting
    duckfleet grants --ungranted public|admins
                                             who reads a table nobody was granted

They write etcd directly, as `duckfleet table` does: whoever reaches the fleet's
etcd administers it. Every front door sees the change at its next query.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from duckfleet.cli_errors import CommandFailed, UsageError
from duckfleet.grants import (
    ADMINS,
    ROLE_KIND,
    UNGRANTED_MODES,
    USER_KIND,
    GrantError,
    Principal,
    principal,
    table_key,
)

StoreOf = Callable[[argparse.Namespace], Any]  # opens the fleet's etcd (a control Store)


def add_parsers(
    sub: Any, common: Callable[[argparse.ArgumentParser], None], store: StoreOf
) -> None:
    """The three commands; ``common(parser)`` adds --etcd and --namespace, ``store(args)``
    opens the fleet's etcd."""
    for verb, help_text in (
        ("grant", "let users read tables and views (SELECT)"),
        ("revoke", "take a SELECT grant back"),
    ):
        p = sub.add_parser(verb, help=help_text)
        p.add_argument("tables", nargs="+", metavar="TABLE", help="tables or views")
        p.add_argument(
            "--user", action="append", default=[], help="a user name (repeat for several)"
        )
        p.add_argument(
            "--role",
            action="append",
            default=[],
            choices=["user"],
            help="every user of this role",
        )
        common(p)
        p.set_defaults(fn=lambda args, verb=verb: cmd_change(args, verb, store))
    ls = sub.add_parser("grants", help="list SELECT grants, or set who reads ungranted tables")
    ls.add_argument("table", nargs="?", help="only this table's or view's grants")
    ls.add_argument(
        "--ungranted",
        choices=UNGRANTED_MODES,
        help="tables nobody was granted: readable by every user (public, the default) "
        "or by admins only",
    )
    common(ls)
    ls.set_defaults(fn=lambda args: cmd_grants(args, store))


def _principals(args: argparse.Namespace) -> list[Principal]:
    try:
        found = [principal(USER_KIND, u) for u in args.user]
        found += [principal(ROLE_KIND, r) for r in args.role]
        if not found:
            raise UsageError("say to whom: --user NAME or --role user (see --help)")
        return found
    except GrantError as exc:
        raise UsageError(str(exc)) from None


def cmd_change(args: argparse.Namespace, verb: str, store_of: StoreOf) -> int:
    from duckfleet.control import CatalogStore
    from duckfleet.control.grants import GrantStore

    principals = _principals(args)
    try:
        names = list(dict.fromkeys(table_key(t) for t in args.tables))
    except GrantError as exc:
        raise UsageError(str(exc)) from None
    store = store_of(args)
    try:
        grants = GrantStore(store)
        if verb == "grant":
            catalog = CatalogStore(store).read()
            missing = [n for n in names if n not in catalog.tables and not catalog.view(n)]
            if missing:
                raise CommandFailed(f"no table or view {missing[0]!r} in the catalog")
            grants.grant(names, principals, by="cli")
        else:
            grants.revoke(names, principals)
    finally:
        store.close()
    to = "to" if verb == "grant" else "from"
    whom = ", ".join(str(p) for p in principals)
    print(f"{verb.upper()} SELECT ON {', '.join(names)} {to.upper()} {whom}")
    return 0


def cmd_grants(args: argparse.Namespace, store_of: StoreOf) -> int:
    from duckfleet.control.grants import GrantStore

    store = store_of(args)
    try:
        grants = GrantStore(store)
        if args.ungranted:
            if args.table:
                raise UsageError("--ungranted is fleet-wide: give it without a TABLE")
            grants.set_ungranted(args.ungranted)
        current = grants.read()
    finally:
        store.close()
    for g in current.for_name(args.table):
        print(f"{g.name}\t{g.principal.kind}\t{g.principal.name}")
    who = "admins only" if current.ungranted == ADMINS else "every user"
    print(f"# tables and views nobody was granted: readable by {who} ({current.ungranted})")
    return 0
