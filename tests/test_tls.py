"""TLS end to end: a fleet whose front door and workers serve grpc+tls with a
self-signed certificate (what `duckfleet up --tls` makes), queried through ADBC with
the certificate trusted; plaintext and untrusting clients are refused; the fleet's
own calls (front door -> worker, worker -> worker) go over TLS with a token too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as fl
import pytest
from adbc_driver_manager import Error as AdbcError
from fleet_fixture import records_for, reference, start_fleet
from secure_fleet import ADMIN, ADMIN_PASSWORD

from duckfleet.auth.local import FleetSecurity
from duckfleet.auth.tls import make_self_signed
from duckfleet.client import statement_descriptor
from duckfleet.local_fleet import LocalFleet
from duckfleet.netutil import free_port
from duckfleet.verify import assert_same_result
from duckfleet.wire.auth import ClientSecurity

pytestmark = pytest.mark.timeout(180)

SCAN = "SELECT o_orderkey, o_totalprice FROM orders WHERE o_totalprice > 300000"
AGGREGATE = "SELECT l_returnflag, sum(l_quantity) AS q FROM lineitem GROUP BY 1"


@pytest.fixture(scope="module")
def tls_fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    base = tmp_path_factory.mktemp("tls-fleet")
    security = FleetSecurity.basic(
        admin_password=ADMIN_PASSWORD, admin_user=ADMIN, tls=make_self_signed(str(base / "tls"))
    )
    fleet = start_fleet(etcd, str(tpch_dir), str(base), security=security, storage=str(tpch_dir))
    try:
        yield fleet
    finally:
        fleet.stop()


def pem(fleet: LocalFleet) -> bytes:
    assert fleet.security.tls is not None
    return Path(fleet.security.tls.cert_file).read_bytes()


def adbc(uri: str, **options: str) -> flightsql.Connection:
    login = {"username": ADMIN, "password": ADMIN_PASSWORD}
    return flightsql.connect(uri, db_kwargs={**login, **options})


def log(fleet: LocalFleet, name: str) -> str:
    assert fleet.log_dir is not None
    return Path(fleet.log_dir, f"{name}.log").read_text(errors="replace")


def test_adbc_over_tls_with_the_certificate_trusted(tls_fleet: LocalFleet, tpch_dir: Path):
    assert tls_fleet.uri.startswith("grpc+tls://127.0.0.1:")
    roots = {"adbc.flight.sql.client_option.tls_root_certs": pem(tls_fleet).decode()}
    with adbc(tls_fleet.uri, **roots) as conn, conn.cursor() as cur:
        cur.execute(SCAN)
        table = cur.fetch_arrow_table()
    assert_same_result(table, reference(tpch_dir, SCAN), ordered=False)
    with fl.connect(tls_fleet.uri, tls_root_certs=pem(tls_fleet)) as client:
        options = fl.FlightCallOptions(
            headers=[client.authenticate_basic_token(ADMIN, ADMIN_PASSWORD)]
        )
        info = client.get_flight_info(statement_descriptor(SCAN), options=options)
    locations = [loc.uri.decode() for ep in info.endpoints for loc in ep.locations]
    assert len(info.endpoints) == 4 and locations
    assert all(loc.startswith("grpc+tls://") for loc in locations), locations


def test_plaintext_and_untrusting_clients_are_refused(tls_fleet: LocalFleet):
    port = tls_fleet.frontdoor_ports[0]
    worker = tls_fleet.members("worker")[0].location
    for uri in (f"grpc://127.0.0.1:{port}", worker.replace("grpc+tls://", "grpc://")):
        with fl.connect(uri) as client, pytest.raises(fl.FlightUnavailableError):
            client.get_flight_info(statement_descriptor("SELECT 1"))
    with fl.connect(tls_fleet.uri) as untrusting, pytest.raises(fl.FlightUnavailableError):
        untrusting.get_flight_info(statement_descriptor("SELECT 1"))  # no root: unknown CA
    with pytest.raises(AdbcError):
        with adbc(f"grpc://127.0.0.1:{port}") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    with pytest.raises(AdbcError):
        with adbc(tls_fleet.uri) as conn, conn.cursor() as cur:  # the system roots only
            cur.execute("SELECT 1")


def test_the_fleets_own_calls_use_tls_and_a_token(tls_fleet: LocalFleet, tpch_dir: Path):
    roots = {"adbc.flight.sql.client_option.tls_root_certs": pem(tls_fleet).decode()}
    expected = reference(tpch_dir, AGGREGATE)
    remote_input = None
    for attempt in range(10):  # until a merge task fetched a partial from the other worker
        sql_text = f"{AGGREGATE} /* {attempt} */"
        with adbc(tls_fleet.uri, **roots) as conn, conn.cursor() as cur:
            cur.execute(sql_text)
            assert_same_result(cur.fetch_arrow_table(), expected, ordered=False)
        (record,) = records_for(tls_fleet, sql_text)
        workers = log(tls_fleet, "worker-0") + log(tls_fleet, "worker-1")
        remote_input = re.search(rf"DoGet query={record.id} OK .* user=(worker-\w+)", workers)
        if remote_input:
            break
    assert remote_input, "no merge task ever read an input from the other worker"
    # a front door serves any partition by fetching it from its worker, over TLS too
    sql_text = SCAN + " /* via the front door */"
    with fl.connect(tls_fleet.uri, tls_root_certs=pem(tls_fleet)) as client:
        options = fl.FlightCallOptions(
            headers=[client.authenticate_basic_token(ADMIN, ADMIN_PASSWORD)]
        )
        info = client.get_flight_info(statement_descriptor(sql_text), options=options)
        endpoint = info.endpoints[0]
        via_door = client.do_get(endpoint.ticket, options=options).read_all()
    with fl.connect(endpoint.locations[0], tls_root_certs=pem(tls_fleet)) as worker:
        direct = worker.do_get(endpoint.ticket, options=options).read_all()
    assert via_door.equals(direct)
    (record,) = records_for(tls_fleet, sql_text)
    workers = log(tls_fleet, "worker-0") + log(tls_fleet, "worker-1")
    assert re.search(rf"DoGet query={record.id} OK .* user=frontdoor-\w+", workers)


def test_up_with_tls_prints_how_to_connect_and_serves_duckfleet_query(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "DUCKFLEET_ADMIN_PASSWORD": "up-tls-" + uuid.uuid4().hex[:6]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "duckfleet", "up", "--tls", "--demo", "tpch", "--scale", "0.01",
         "--data-dir", str(tmp_path / "data"), "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        said: list[str] = []
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.strip() == f"grpc+tls://127.0.0.1:{port}":
                break
            said.append(line.strip())
        (tls_line,) = [s for s in said if s.startswith("tls: on")]
        cert = re.search(r"certificate (\S+);", tls_line)
        assert cert and "tls_root_certs" in tls_line and "tlsRootCerts=" in tls_line
        done = subprocess.run(
            [sys.executable, "-m", "duckfleet", "query", "SELECT count(*) AS n FROM region",
             "--uri", f"grpc+tls://127.0.0.1:{port}", "--user", "admin",
             "--tls-ca", cert.group(1)],
            capture_output=True, text=True, timeout=60,
            env={**env, "DUCKFLEET_PASSWORD": env["DUCKFLEET_ADMIN_PASSWORD"]},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[2].strip() == "5"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_members_check_certificates_against_the_configured_server_name(tmp_path: Path):
    """Compose workers advertise container ids no certificate lists; with
    DUCKFLEET_TLS_SERVER_NAME the fleet's own clients verify the certificate's name
    instead of the location's host, and without it they refuse the connection."""
    files = make_self_signed(str(tmp_path), hosts=("members.duckfleet",), local_names=False)
    cert, key = files.server_pair()

    class Tiny(fl.FlightServerBase):
        def list_actions(self, context):
            return [("ping", "answers")]

    server = Tiny("grpc+tls://127.0.0.1:0", tls_certificates=[(cert, key)])
    try:
        location = f"grpc+tls://127.0.0.1:{server.port}"
        roots = files.root_certs()
        named = ClientSecurity(root_certs=roots, server_name="members.duckfleet")
        with named.connect(location) as client:
            assert [a.type for a in client.list_actions()] == ["ping"]
        with ClientSecurity(root_certs=roots).connect(location) as client:
            with pytest.raises(fl.FlightUnavailableError):
                client.list_actions()
    finally:
        server.shutdown()
