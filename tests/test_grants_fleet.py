"""SELECT grants on real processes: one etcd, TWO front doors (each asked directly),
two workers, auth on with an admin and the users ana and bob, the ADBC driver as the
client. A grant or revoke issued on one front door holds on the other without a
restart (each watches the grants in etcd); a user without a grant gets
PERMISSION_DENIED naming the table, directly and through a view, and does not see
the table in GetTables. The pure rules: tests/test_grants.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.flight as fl
import pytest
from adbc_driver_manager import Error as AdbcError
from fleet_fixture import reference
from secure_fleet import ADMIN, ADMIN_PASSWORD, add_user, connect, login, run_as

from duckfleet.auth.local import FleetSecurity
from duckfleet.client import statement_descriptor
from duckfleet.etcd_server import EtcdServer
from duckfleet.local_fleet import LocalFleet, register_tables
from duckfleet.verify import assert_same_result
from duckfleet.wire import commands
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(120)

ANA, ANA_PASSWORD = "ana", "ana-pw-" + uuid.uuid4().hex[:8]
BOB, BOB_PASSWORD = "bob", "bob-pw-" + uuid.uuid4().hex[:8]
PASSWORDS = {ADMIN: ADMIN_PASSWORD, ANA: ANA_PASSWORD, BOB: BOB_PASSWORD}
ORDERS = "SELECT o_orderstatus, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1"


@dataclass
class GrantFleet:
    fleet: LocalFleet
    data_root: Path
    etcd_url: str

    def door(self, index: int) -> str:
        return self.fleet.frontdoor_uri(index)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DUCKFLEET_ETCD": self.etcd_url,
            "DUCKFLEET_NAMESPACE": self.fleet.namespace,
        }
        return subprocess.run(
            [sys.executable, "-m", "duckfleet", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )


@pytest.fixture(scope="module")
def grant_fleet(
    etcd: EtcdServer, tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GrantFleet]:
    base = tmp_path_factory.mktemp("grant-fleet")
    (base / "logs").mkdir()
    users_file = base / "users"
    add_user(users_file, ANA, "user", ANA_PASSWORD)
    add_user(users_file, BOB, "user", BOB_PASSWORD)
    security = FleetSecurity.basic(
        admin_password=ADMIN_PASSWORD, admin_user=ADMIN, users_file=str(users_file)
    )
    fleet = LocalFleet(
        etcd_url=etcd.url,
        port=0,
        frontdoors=2,
        cores_per_worker=1,
        lease_ttl=2,
        namespace=f"/grants-{uuid.uuid4().hex[:8]}",
        log_dir=str(base / "logs"),
        security=security,
        extra_env={"DUCKFLEET_DATA_DIR": str(base / "tables")},
    )
    try:
        fleet.start()
        store = fleet.store()
        try:
            register_tables(store, str(tpch_dir))
        finally:
            store.close()
        yield GrantFleet(fleet, tpch_dir, etcd.url)
    finally:
        fleet.stop()


def execute(uri: str, user: str, statement: str) -> None:
    with connect(uri, user, PASSWORDS[user]) as conn, conn.cursor() as cur:
        cur.execute(statement)


def query(uri: str, user: str, text: str):
    return run_as(uri, text, user, PASSWORDS[user])


def denied(uri: str, user: str, text: str) -> str:
    """The PERMISSION_DENIED message ``user`` gets for ``text``."""
    with pytest.raises(AdbcError) as caught:
        query(uri, user, text)
    message = str(caught.value)
    assert "PERMISSION_DENIED" in message or "UNAUTHORIZED" in message, message
    return message


def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """A watch delivers a change within milliseconds; poll, never sleep a guess."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def is_denied(uri: str, user: str, text: str) -> bool:
    try:
        query(uri, user, text)
    except AdbcError as exc:
        if "PERMISSION_DENIED" in str(exc) or "UNAUTHORIZED" in str(exc):
            return True
        raise
    return False


def listed_tables(uri: str, user: str) -> set[str]:
    """GetTables through ADBC (adbc_get_objects): the main schema's (the system
    schema's tables are listed for everyone: tests/test_system_tables_fleet.py)."""
    with connect(uri, user, PASSWORDS[user]) as conn:
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    return {
        t["table_name"]
        for c in objects
        for s in c["catalog_db_schemas"] or []
        if s["db_schema_name"] == "main"
        for t in s["db_schema_tables"] or []
    }


def test_grants_and_revokes_on_one_front_door_hold_on_the_other(grant_fleet: GrantFleet):
    one, two = grant_fleet.door(0), grant_fleet.door(1)
    expected = reference(grant_fleet.data_root, ORDERS)
    # nobody was granted anything: every user reads every table, as before grants
    assert_same_result(query(two, BOB, ORDERS), expected, ordered=True)
    assert "orders" in listed_tables(two, BOB)

    execute(one, ADMIN, "GRANT SELECT ON orders TO USER ana")
    # the same text ana runs first is planned and cached on front door 2; bob gets no plan
    assert_same_result(query(two, ANA, ORDERS), expected, ordered=True)
    eventually(lambda: is_denied(two, BOB, ORDERS), "bob refused orders on front door 2")
    message = denied(two, BOB, ORDERS)
    assert "user 'bob' may not read table orders" in message
    assert "GRANT SELECT ON orders TO USER bob" in message
    assert_same_result(query(two, ANA, ORDERS), expected, ordered=True)  # still hers
    with fl.connect(two) as client:  # the Flight status itself: PERMISSION_DENIED
        with pytest.raises(fl.FlightUnauthorizedError, match="may not read table orders"):
            client.get_flight_info(
                statement_descriptor(ORDERS), options=login(client, BOB, BOB_PASSWORD)
            )
    # tables nobody was granted stay public; bob's metadata lacks orders, ana's has it
    nation = "SELECT count(*) AS n FROM nation"
    assert query(two, BOB, nation).column("n").to_pylist() == [25]
    assert "orders" not in listed_tables(two, BOB) and "nation" in listed_tables(two, BOB)
    assert "orders" in listed_tables(one, ANA)
    # EXPLAIN, a prepared statement, and orders inside a subquery are refused too
    assert "table orders" in denied(one, BOB, "EXPLAIN " + ORDERS)
    assert "table orders" in denied(
        one, BOB, "SELECT * FROM nation WHERE n_nationkey IN (SELECT o_custkey FROM orders)"
    )
    with connect(one, BOB, BOB_PASSWORD) as conn, conn.cursor() as cur:
        with pytest.raises(AdbcError, match="may not read table orders"):
            cur.execute("SELECT * FROM orders WHERE o_orderkey = ?", parameters=(1,))

    execute(two, ADMIN, "REVOKE SELECT ON orders FROM USER ana")
    # nobody holds a grant on orders now: public again, for ana and bob alike
    eventually(lambda: not is_denied(one, BOB, ORDERS), "orders public again on front door 1")
    assert_same_result(query(one, ANA, ORDERS), expected, ordered=True)


def test_a_view_needs_a_grant_on_itself_and_on_the_tables_it_reads(grant_fleet: GrantFleet):
    one, two = grant_fleet.door(0), grant_fleet.door(1)
    view_sql = "SELECT o_orderkey, o_totalprice FROM orders WHERE o_totalprice > 400000"
    execute(one, ADMIN, f"CREATE VIEW rich_orders AS {view_sql}")
    text = "SELECT count(*) AS n, sum(o_totalprice) AS s FROM rich_orders"
    expected = reference(
        grant_fleet.data_root, f"SELECT count(*) AS n, sum(o_totalprice) AS s FROM ({view_sql})"
    )
    try:
        execute(one, ADMIN, "GRANT SELECT ON rich_orders TO USER bob")
        execute(one, ADMIN, "GRANT SELECT ON orders TO USER ana")
        eventually(lambda: is_denied(two, BOB, text), "bob refused the view on front door 2")
        message = denied(two, BOB, text)
        assert "may not read table orders, which view rich_orders reads" in message
        assert "rich_orders" not in listed_tables(two, BOB)  # it reads what bob may not
        # ana may read orders, but nobody granted her the view
        assert "may not read view rich_orders" in denied(two, ANA, text)
        assert "rich_orders" not in listed_tables(two, ANA)

        execute(two, ADMIN, "GRANT SELECT ON orders, rich_orders TO USER bob, USER ana")
        eventually(lambda: not is_denied(one, BOB, text), "bob reads the view on front door 1")
        assert_same_result(query(one, BOB, text), expected, ordered=True)
        assert_same_result(query(one, ANA, text), expected, ordered=True)
        assert {"orders", "rich_orders"} <= listed_tables(one, BOB)
    finally:
        execute(one, ADMIN, "REVOKE SELECT ON orders, rich_orders FROM USER bob, USER ana")
        execute(one, ADMIN, "DROP VIEW rich_orders")


def test_only_admins_grant_and_revoke(grant_fleet: GrantFleet):
    for statement in (
        "GRANT SELECT ON orders TO USER bob",
        "REVOKE SELECT ON orders FROM ROLE user",
    ):
        with pytest.raises(AdbcError, match=f"{statement.split()[0]} needs the admin role"):
            execute(grant_fleet.door(1), BOB, statement)
    with fl.connect(grant_fleet.door(0)) as client:  # raw Flight: the status code itself
        options = login(client, BOB, BOB_PASSWORD)
        descriptor = statement_descriptor("GRANT SELECT ON orders TO USER bob")
        with pytest.raises(fl.FlightUnauthorizedError, match="GRANT needs the admin role"):
            client.get_flight_info(descriptor, options=options)
        update = commands.pack(
            sql.CommandStatementUpdate(query="REVOKE SELECT ON orders FROM USER ana")
        )
        with pytest.raises(fl.FlightUnauthorizedError, match="REVOKE needs the admin role"):
            writer, _ = client.do_put(
                fl.FlightDescriptor.for_command(update), _empty(), options=options
            )
            writer.close()
    with pytest.raises(AdbcError, match="no table or view 'nope'"):
        execute(grant_fleet.door(0), ADMIN, "GRANT SELECT ON nope TO USER bob")
    with pytest.raises(AdbcError, match="only SELECT"):
        execute(grant_fleet.door(0), ADMIN, "GRANT INSERT ON orders TO USER bob")


def _empty():
    import pyarrow as pa

    return pa.schema([])


def test_the_cli_grants_lists_revokes_and_closes_ungranted_tables(grant_fleet: GrantFleet):
    one, two = grant_fleet.door(0), grant_fleet.door(1)
    text = "SELECT count(*) AS n FROM region"
    done = grant_fleet.cli("grant", "region", "--user", ANA, "--role", "user")
    assert done.returncode == 0, done.stderr
    assert "GRANT SELECT ON region TO USER ana, ROLE user" in done.stdout
    listed = grant_fleet.cli("grants", "region")
    assert listed.returncode == 0, listed.stderr
    assert "region\tuser\tana" in listed.stdout and "region\trole\tuser" in listed.stdout
    assert "readable by every user (public)" in listed.stdout
    # a grant to the role user: every user reads it
    assert query(two, BOB, text).column("n").to_pylist() == [5]

    done = grant_fleet.cli("revoke", "region", "--role", "user")
    assert done.returncode == 0, done.stderr
    eventually(lambda: is_denied(two, BOB, text), "bob refused region once the role lost it")
    assert query(two, ANA, text).column("n").to_pylist() == [5]

    closed = grant_fleet.cli("grants", "--ungranted", "admins")
    assert closed.returncode == 0, closed.stderr
    assert "readable by admins only (admins)" in closed.stdout
    try:
        nation = "SELECT count(*) AS n FROM nation"
        eventually(lambda: is_denied(one, ANA, nation), "nation closed to users on front door 1")
        assert "ungranted: admins" in denied(one, ANA, nation)
        assert listed_tables(one, ANA) == {"region"}  # only what she was granted
        assert query(one, ADMIN, nation).column("n").to_pylist() == [25]
        assert "nation" in listed_tables(one, ADMIN)
    finally:
        assert grant_fleet.cli("grants", "--ungranted", "public").returncode == 0
        assert grant_fleet.cli("revoke", "region", "--user", ANA).returncode == 0
    eventually(lambda: not is_denied(two, BOB, text), "region public again on front door 2")
    wrong = grant_fleet.cli("grant", "nope", "--user", ANA)
    assert wrong.returncode == 1 and "no table or view 'nope'" in wrong.stderr
    nobody = grant_fleet.cli("grant", "region")
    assert nobody.returncode == 2 and "--user NAME or --role user" in nobody.stderr
