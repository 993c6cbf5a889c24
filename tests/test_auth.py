"""Auth end to end: real front door and worker processes, the real ADBC driver, raw
pyarrow.flight calls with hand-made headers (tests/secure_fleet.py starts the fleet).

* ADBC logs in with username/password (Handshake, Basic) and gets its results from
  the workers' locations with the front door's bearer token.
* A wrong password, or no login, is UNAUTHENTICATED.
* A forged, altered, expired or missing token is UNAUTHENTICATED at the front door
  and at a worker's DoGet alike.
* The role `user` reads; admin-only work (ingest, updates) is PERMISSION_DENIED.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_manager import DatabaseError, ProgrammingError
from fleet_fixture import records_for, reference
from secure_fleet import (
    ADMIN,
    ADMIN_PASSWORD,
    READER,
    READER_PASSWORD,
    SecureFleet,
    connect,
    login,
    run_as,
)

from duckfleet.auth import ADMIN as ADMIN_ROLE
from duckfleet.auth import USER, TokenSigner
from duckfleet.client import statement_descriptor
from duckfleet.verify import assert_same_result
from duckfleet.wire import commands
from duckfleet.wire import sql_messages as sql

pytestmark = pytest.mark.timeout(120)

SCAN = "SELECT l_orderkey, l_linenumber, l_quantity FROM lineitem WHERE l_quantity > 45"


def bearer(token: str) -> fl.FlightCallOptions:
    return fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def test_adbc_logs_in_and_fetches_results_from_the_workers_with_the_token(
    secure_fleet: SecureFleet,
):
    sql_text = SCAN + " /* adbc-login */"
    table = run_as(secure_fleet.uri, sql_text)
    assert_same_result(table, reference(secure_fleet.data_root, sql_text), ordered=False)
    (record,) = records_for(secure_fleet.fleet, sql_text)
    assert record.ntasks == 4  # one partition per lineitem file, each on a worker
    workers = "".join(secure_fleet.log(f"worker-{i}") for i in range(2))
    fetched = re.findall(rf"DoGet query={record.id} OK .* user=(\S+)", workers)
    assert fetched == [ADMIN] * 4  # every partition straight from its worker, as admin
    fallback = rf"DoGet task=\S+ query={record.id}"  # the front door's fallback path
    assert not re.search(fallback, secure_fleet.log("frontdoor-0"))


def test_a_wrong_password_or_no_login_is_unauthenticated(secure_fleet: SecureFleet):
    for user, password in [(ADMIN, "wrong"), (READER, ADMIN_PASSWORD), ("nobody", "x")]:
        with pytest.raises(ProgrammingError, match=r"UNAUTHENTICATED.*wrong user name or password"):
            with connect(secure_fleet.uri, user, password) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
    with fl.connect(secure_fleet.uri) as client:
        with pytest.raises(fl.FlightUnauthenticatedError, match="wrong user name or password"):
            client.authenticate_basic_token(ADMIN, "wrong")
        with pytest.raises(fl.FlightUnauthenticatedError, match="authentication required"):
            client.get_flight_info(statement_descriptor("SELECT 1"))
        # Basic credentials are for Handshake only, not on every call
        basic = fl.FlightCallOptions(headers=[(b"authorization", b"Basic YWRtaW46eA==")])
        with pytest.raises(fl.FlightUnauthenticatedError, match="Handshake only"):
            client.get_flight_info(statement_descriptor("SELECT 1"), options=basic)
        # and the front door still answers the right password
        options = login(client)
        info = client.get_flight_info(statement_descriptor("SELECT 41 + 1 AS x"), options=options)
        assert info.total_records == 1


def _bad_tokens(secure_fleet: SecureFleet) -> dict[str, fl.FlightCallOptions]:
    good = TokenSigner(secure_fleet.token_key, 3600).issue(ADMIN, ADMIN_ROLE)
    version, payload, signature = good.split(".")
    reader = TokenSigner(secure_fleet.token_key, 3600).issue(READER, USER)
    altered = f"{version}.{reader.split('.')[1]}.{signature}"  # reader's claims, admin's MAC
    return {
        "none": fl.FlightCallOptions(),
        "garbage": bearer("not-a-token"),
        "forged with another key": bearer(TokenSigner(b"k" * 32, 3600).issue(ADMIN, ADMIN_ROLE)),
        "altered payload": bearer(altered),
        "expired": bearer(TokenSigner(secure_fleet.token_key, 60, clock=lambda: 1e9).issue(
            ADMIN, ADMIN_ROLE
        )),
        "truncated signature": bearer(f"{version}.{payload}.{signature[:-2]}"),
    }  # fmt: skip


def test_forged_or_expired_tokens_are_refused_by_workers_and_front_doors(
    secure_fleet: SecureFleet,
):
    with fl.connect(secure_fleet.uri) as door:
        options = login(door)
        info = door.get_flight_info(statement_descriptor(SCAN), options=options)
        endpoint = info.endpoints[0]
        worker_uri = endpoint.locations[0].uri.decode()
        assert worker_uri in secure_fleet.worker_locations()
        expected = door.do_get(endpoint.ticket, options=options).read_all()
        bad = _bad_tokens(secure_fleet)
        for bad_options in bad.values():
            with pytest.raises(fl.FlightUnauthenticatedError):
                door.get_flight_info(statement_descriptor("SELECT 1"), options=bad_options)
            with pytest.raises(fl.FlightUnauthenticatedError):
                door.do_get(endpoint.ticket, options=bad_options).read_all()
    with fl.connect(worker_uri) as worker:
        for name, bad_options in bad.items():
            with pytest.raises(fl.FlightUnauthenticatedError) as refused:
                worker.do_get(endpoint.ticket, options=bad_options).read_all()
            message = str(refused.value)
            if name == "expired":
                assert "expired" in message
            elif name == "none":
                assert "authentication required" in message
            else:
                assert "invalid bearer token" in message, (name, message)
        # Basic credentials mean nothing to a worker
        with pytest.raises(fl.FlightUnauthenticatedError, match="log in at a front door"):
            worker.authenticate_basic_token(ADMIN, ADMIN_PASSWORD)
        # the front door's own token, sent by hand, works, and the worker keeps serving
        got = worker.do_get(endpoint.ticket, options=options).read_all()
        assert got.equals(expected)
        # a token that was minted by the fleet's key for any user reads results too
        reader = bearer(TokenSigner(secure_fleet.token_key, 60).issue(READER, USER))
        assert worker.do_get(endpoint.ticket, options=reader).read_all().equals(expected)


def _ingest(client: fl.FlightClient, options: fl.FlightCallOptions) -> None:
    command = sql.CommandStatementIngest(table="t", temporary=False)  # type: ignore[attr-defined]
    descriptor = fl.FlightDescriptor.for_command(commands.pack(command))
    data = pa.table({"a": [1, 2]})
    writer, _ = client.do_put(descriptor, data.schema, options=options)
    writer.write_table(data)
    writer.close()


def test_the_user_role_reads_but_admin_only_work_is_permission_denied(
    secure_fleet: SecureFleet,
):
    sql_text = "SELECT count(*) AS n FROM nation /* reader */"
    table = run_as(secure_fleet.uri, sql_text, READER, READER_PASSWORD)
    assert table.column("n").to_pylist() == [25]
    with fl.connect(secure_fleet.uri) as client:
        reader = login(client, READER, READER_PASSWORD)
        with pytest.raises(fl.FlightUnauthorizedError, match="needs the admin role"):
            _ingest(client, reader)
        _ingest(client, login(client))  # the admin may write
        assert client.get_flight_info(statement_descriptor("SELECT 1"), options=reader)
    # and the reader reads what the admin wrote
    ingested = run_as(secure_fleet.uri, "SELECT sum(a) AS s FROM t", READER, READER_PASSWORD)
    assert ingested.column("s").to_pylist() == [3]
    with connect(secure_fleet.uri) as conn, conn.cursor() as cur:  # the fixture is shared
        cur.execute("DROP TABLE t")
    with connect(secure_fleet.uri, READER, READER_PASSWORD) as conn, conn.cursor() as cur:
        with pytest.raises(DatabaseError, match="admin role"):
            cur.adbc_ingest("t", pa.table({"a": [1]}), mode="create")


def _start(role: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DUCKFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "duckfleet", role, "--etcd", "http://127.0.0.1:9", "--port", "0"],
        env={**clean, "DUCKFLEET_HEALTH_PORT": "-1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("role", ["frontdoor", "worker"])
def test_auth_is_on_unless_turned_off_explicitly(role: str):
    """Started with no auth settings, a front door or worker refuses to run open."""
    done = _start(role)
    assert done.returncode == 1 and "DUCKFLEET_TOKEN_KEY" in done.stderr, done.stderr
    if role == "frontdoor":
        keyed = _start(role, DUCKFLEET_TOKEN_KEY="k" * 32)
        assert keyed.returncode == 1 and "nobody can log in" in keyed.stderr, keyed.stderr
    typo = _start(role, DUCKFLEET_AUTH="off")
    assert typo.returncode == 1 and "DUCKFLEET_AUTH must be one of basic, none" in typo.stderr


def test_with_auth_off_a_client_that_logs_in_anyway_still_works():
    """DUCKFLEET_AUTH=none: drivers given a user name expect a bearer back; they get
    a placeholder, and every call is the anonymous admin's."""
    from test_flight_protocol import DuckDBBackend

    from duckfleet.flight.server import FrontDoorServer
    from duckfleet.wire.auth import ProcessSecurity

    security = ProcessSecurity(signer=None, tls=None)
    server = FrontDoorServer("grpc://127.0.0.1:0", DuckDBBackend(), **security.server_kwargs())
    try:
        uri = f"grpc://127.0.0.1:{server.port}"
        assert run_as(uri, "SELECT 42 AS x", "anyone", "anything").to_pylist() == [{"x": 42}]
        with fl.connect(uri) as client:
            header = client.authenticate_basic_token("a", "b")
            assert header == (b"authorization", b"Bearer anonymous")
            assert client.get_flight_info(statement_descriptor("SELECT 1")).total_records == 1
    finally:
        server.shutdown()
