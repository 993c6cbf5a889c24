"""The pure grant logic: who may read what (duckfleet/grants.py), what a query reads
with views expanded (planner/reads.py), and GRANT/REVOKE parsing
(planner/grant_statements.py). The fleet end to end: tests/test_grants_fleet.py."""

from __future__ import annotations

import math
import time

import pytest

from duckfleet.auth.tokens import Identity
from duckfleet.catalog import Catalog, Column, Table, View
from duckfleet.grants import (
    ADMINS,
    PUBLIC,
    Grant,
    GrantError,
    Grants,
    Principal,
    principal,
)
from duckfleet.planner.errors import SqlSyntaxError, UnknownTableError, UnsupportedStatementError
from duckfleet.planner.grant_statements import parse_grant
from duckfleet.planner.reads import names_read

ANA = Identity("ana", "user", math.inf)
BOB = Identity("bob", "user", math.inf)
BOSS = Identity("boss", "admin", math.inf)
SERVICE = Identity("frontdoor-1", "service", math.inf)


def grants(*pairs: tuple[str, str], ungranted: str = PUBLIC) -> Grants:
    """``("orders", "user:ana")``-style pairs."""
    out = set()
    for name, who in pairs:
        kind, _, person = who.partition(":")
        out.add(Grant(name, principal(kind, person)))
    return Grants(frozenset(out), ungranted)


def test_no_grants_and_public_ungranted_is_todays_behaviour():
    nothing = Grants()
    assert nothing.open
    assert all(nothing.may_read(who, "orders") for who in (ANA, BOB, BOSS))
    assert nothing.denied(ANA, ["orders", "lineitem"]) == []


def test_a_granted_name_is_readable_by_its_grantees_only():
    g = grants(("orders", "user:ana"))
    assert g.may_read(ANA, "orders") and g.may_read(ANA, "ORDERS")
    assert not g.may_read(BOB, "orders")
    assert not g.may_read(SERVICE, "orders")
    assert g.may_read(BOSS, "orders")  # admins read everything
    assert g.may_read(BOB, "lineitem")  # nobody was granted lineitem: public
    assert g.denied(BOB, ["orders", "lineitem", "Orders"]) == ["orders"]


def test_a_grant_to_a_role_covers_every_user_of_that_role():
    g = grants(("orders", "role:user"))
    assert g.may_read(ANA, "orders") and g.may_read(BOB, "orders")
    assert not g.may_read(SERVICE, "orders")


def test_ungranted_admins_closes_every_name_nobody_was_granted():
    g = grants(("orders", "user:ana"), ungranted=ADMINS)
    assert not g.open
    assert g.may_read(ANA, "orders")
    assert not g.may_read(ANA, "lineitem") and not g.may_read(BOB, "lineitem")
    assert g.may_read(BOSS, "lineitem")
    assert not Grants(ungranted=ADMINS).may_read(ANA, "anything")


def test_principals_are_checked():
    assert principal("USER", "a@b.example") == Principal("user", "a@b.example")
    with pytest.raises(GrantError, match="unknown role 'analyst'"):
        principal("role", "analyst")
    with pytest.raises(GrantError, match="admins read every table"):
        principal("role", "admin")
    with pytest.raises(GrantError, match="USER or a ROLE"):
        principal("group", "x")
    with pytest.raises(GrantError, match="invalid user name"):
        principal("user", "a/b")
    with pytest.raises(GrantError, match="public or admins"):
        Grants(ungranted="nobody")


# --- what a query reads -------------------------------------------------------------


def _table(name: str) -> Table:
    return Table(name, (Column("k", "BIGINT"),), ())


CATALOG = Catalog(
    tables={n: _table(n) for n in ("orders", "lineitem", "nation")},
    views={
        "big": View("big", "SELECT * FROM orders WHERE k > 1", (Column("k", "BIGINT"),)),
        "bigger": View("bigger", "SELECT b.k FROM big AS b JOIN nation USING (k)", ()),
    },
)


def test_names_read_include_what_views_read_transitively():
    assert names_read("SELECT * FROM lineitem", CATALOG) == {"lineitem": None}
    assert names_read("SELECT * FROM big", CATALOG) == {"big": None, "orders": "big"}
    assert names_read("select 1 from BIGGER, lineitem", CATALOG) == {
        "bigger": None,
        "big": "bigger",
        "orders": "bigger",
        "nation": "bigger",
        "lineitem": None,
    }


def test_names_read_in_subqueries_ctes_set_operations_and_explain():
    sql = (
        "WITH x AS (SELECT k FROM main.orders) SELECT * FROM x WHERE k IN "
        "(SELECT k FROM duckfleet.main.nation) UNION ALL SELECT k FROM big"
    )
    assert set(names_read(sql, CATALOG)) == {"orders", "nation", "big"}
    assert set(names_read("EXPLAIN ANALYZE SELECT * FROM big", CATALOG)) == {"big", "orders"}
    assert names_read("SELECT 1", CATALOG) == {}
    assert names_read("SELECT * FROM range(3)", CATALOG) == {}


def test_a_cte_named_like_a_table_counts_as_reading_it():
    # errs on the side of reading: the CTE's scope is not worked out
    sql = "SELECT * FROM lineitem UNION ALL (WITH lineitem AS (SELECT 1 AS k) SELECT * FROM x)"
    assert "lineitem" in names_read(sql, CATALOG)
    assert "orders" in names_read("WITH orders AS (SELECT 1 AS k) SELECT * FROM orders", CATALOG)


def test_names_read_refuses_what_the_planner_refuses():
    with pytest.raises(SqlSyntaxError):
        names_read("SELEC * FROM orders", CATALOG)
    with pytest.raises(UnsupportedStatementError):
        names_read("SELECT 1; SELECT * FROM orders", CATALOG)


def test_a_view_reading_itself_through_others_ends():
    loop = Catalog(
        tables={"orders": _table("orders")},
        views={
            "a": View("a", "SELECT * FROM b", ()),
            "b": View("b", "SELECT * FROM a JOIN orders USING (k)", ()),
        },
    )
    assert names_read("SELECT * FROM a", loop) == {"a": None, "b": "a", "orders": "a"}


# --- GRANT and REVOKE ---------------------------------------------------------------


def test_grant_and_revoke_parse():
    change = parse_grant('grant select on table main.orders, big TO USER "Ana", ROLE user;')
    assert change is not None and not change.revoke
    assert change.names == ("orders", "big")
    assert change.principals == (Principal("user", "Ana"), Principal("role", "user"))
    change = parse_grant("REVOKE SELECT ON VIEW duckfleet.main.Big FROM USER bob")
    assert change is not None and change.revoke
    assert change.names == ("big",) and change.principals == (Principal("user", "bob"),)
    assert parse_grant("SELECT 1") is None
    assert parse_grant("CREATE VIEW v AS SELECT 1") is None


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("GRANT INSERT ON orders TO USER ana", "only SELECT"),
        ("GRANT SELECT ON orders TO ana", "expected USER name or ROLE name"),
        ("GRANT SELECT ON orders FROM USER ana", "expected TO"),
        ("REVOKE SELECT ON orders TO USER ana", "expected FROM"),
        ("GRANT SELECT ON orders TO ROLE admin", "admins read every table"),
        ("GRANT SELECT ON orders TO ROLE analyst", "unknown role"),
        ("GRANT SELECT ON other.orders TO USER ana", "one schema, main"),
        ("GRANT SELECT ON orders TO USER ana bob", "unexpected 'bob'"),
        ("GRANT SELECT ON orders TO USER", "ends too early"),
        ("GRANT SELECT ON 1x TO USER ana", "not a table name"),
    ],
)
def test_a_wrong_grant_says_what_is_wrong(sql: str, message: str):
    with pytest.raises(UnsupportedStatementError, match=message):
        parse_grant(sql)


# --- grants in etcd, and the front door's check over them ---------------------------


def test_grants_round_trip_through_etcd_in_one_transaction(store):
    from duckfleet.control.grants import GrantStore

    grants = GrantStore(store)
    assert grants.read() == Grants()
    ana, users = principal("user", "ana"), principal("role", "user")
    grants.grant(["orders", "big"], [ana, users], by="boss")
    read = grants.read()
    assert read.for_name("orders") == [Grant("orders", users), Grant("orders", ana)]
    assert read.grantees("BIG") == {ana, users} and read.ungranted == PUBLIC
    grants.revoke(["orders", "nope"], [ana])  # a grant that is not there: no error
    assert set(grants.read().grants) == {
        Grant("orders", users),
        Grant("big", ana),
        Grant("big", users),
    }
    grants.set_ungranted(ADMINS)
    assert grants.read().ungranted == ADMINS
    with pytest.raises(GrantError):
        grants.set_ungranted("everyone")


def test_a_grant_made_through_one_front_door_holds_on_another_by_its_watch(store):
    from duckfleet.flight.access import AccessControl, TableAccessDenied

    one, two = AccessControl(store), AccessControl(store)
    try:
        for door in (one, two):  # a watch that has not connected yet vouches for nothing
            deadline = time.monotonic() + 10
            while door.freshness.token() is None and time.monotonic() < deadline:
                time.sleep(0.01)
        two.check("SELECT * FROM bigger", CATALOG, BOB)  # open: everyone reads
        assert two.readable(CATALOG, BOB) is CATALOG
        change = parse_grant("GRANT SELECT ON orders, big, bigger, nation TO USER ana")
        assert change is not None
        one.apply(change, CATALOG, BOSS)
        deadline = time.monotonic() + 10
        while two.grants().open and time.monotonic() < deadline:
            time.sleep(0.01)
        two.check("SELECT * FROM bigger", CATALOG, ANA)
        with pytest.raises(TableAccessDenied, match="may not read view bigger"):
            two.check("SELECT * FROM bigger", CATALOG, BOB)
        with pytest.raises(TableAccessDenied, match="may not read view bigger"):
            two.check("SELECT * FROM lineitem, bigger", CATALOG, BOB)  # lineitem: public
        bigger = parse_grant("GRANT SELECT ON bigger TO USER bob")
        assert bigger is not None
        one.apply(bigger, CATALOG, BOSS)  # read at once: its own write
        with pytest.raises(TableAccessDenied, match="view big, which view bigger reads"):
            one.check("SELECT * FROM lineitem, bigger", CATALOG, BOB)
        two.check("SELECT * FROM lineitem", CATALOG, BOB)
        deadline = time.monotonic() + 10
        while not two.grants().grantees("bigger") - {principal("user", "ana")}:
            assert time.monotonic() < deadline, "front door two never saw bob's grant"
            time.sleep(0.01)
        visible = two.readable(CATALOG, BOB)  # bigger reads what bob may not: hidden
        assert set(visible.tables) == {"lineitem"} and not visible.views
        assert set(two.readable(CATALOG, ANA).views) == {"big", "bigger"}
        # ana loses nation, which bigger reads (bob keeps it, so it is not public again):
        # bigger is hidden from her, big is not
        for statement in (
            "GRANT SELECT ON nation TO USER bob",
            "REVOKE SELECT ON nation FROM USER ana",
        ):
            change = parse_grant(statement)
            assert change is not None
            two.apply(change, CATALOG, BOSS)
        assert set(two.readable(CATALOG, ANA).views) == {"big"}
        with pytest.raises(UnknownTableError, match="no table or view 'nope'"):
            one.apply(parse_grant("GRANT SELECT ON nope TO USER ana"), CATALOG, BOSS)  # type: ignore[arg-type]
    finally:
        one.close()
        two.close()
