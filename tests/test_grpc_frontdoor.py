"""The grpcio front door (DUCKFLEET_FRONTDOOR_SERVER=grpc) answers as the pyarrow one
does: a slice of the Flight SQL surface tests, run again here on fleets whose front
doors are the grpcio server.

The test functions are the existing modules' own, imported; this module's fixtures
(``secure_fleet``, ``fleet``, ``fleet2``), which start grpcio front doors, take the
place of theirs. So the same assertions prove, against the grpcio server:

* auth (tests/test_auth.py): ADBC logs in and fetches from workers with the token;
  wrong passwords, missing, forged and expired tokens are UNAUTHENTICATED; the user
  role is PERMISSION_DENIED for admin work;
* errors (tests/test_error_edge.py): every bad request over raw gRPC gets the
  protocol tests' status code and message, with no traceback, path or class name in
  the message or any trailer; SQL errors through pyarrow and ADBC are clean;
* metadata (tests/test_flight_metadata.py): GetTables and its filters, ADBC
  GetObjects;
* prepared statements and DoPut parameters (tests/test_flight_statements.py):
  parameters bound through ADBC and through DoPut on another front door, INSERT
  with executemany;
* cancel (tests/test_query_lifecycle.py): ADBC's cancel and CancelFlightInfo on
  another front door stop a running query;
* TLS (tests/test_tls.py): ADBC over TLS with the certificate trusted; plaintext and
  untrusting clients refused; the front door's own calls to workers over TLS.

tests/test_grpc_protocol.py runs the in-process protocol suite the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_fixture import start_fleet
from secure_fleet import ADMIN, ADMIN_PASSWORD, SecureFleet, started_secure_fleet
from test_auth import (  # noqa: F401
    test_a_wrong_password_or_no_login_is_unauthenticated,
    test_adbc_logs_in_and_fetches_results_from_the_workers_with_the_token,
    test_forged_or_expired_tokens_are_refused_by_workers_and_front_doors,
    test_the_user_role_reads_but_admin_only_work_is_permission_denied,
)
from test_error_edge import (  # noqa: F401
    admin_token,
    front_door,
    test_credentials_errors_are_clean_at_both,
    test_front_door_errors_are_the_message_and_the_code,
    test_sql_errors_through_pyarrow_and_adbc_are_clean,
    worker,
)
from test_flight_metadata import (  # noqa: F401  (before any test writes a table)
    client,
    test_adbc_get_objects_tables,
    test_catalogs_schemas_and_table_types,
    test_get_tables_filters,
)
from test_flight_statements import (  # noqa: F401
    conn,
    test_a_handle_with_bound_parameters_runs_on_another_front_door,
    test_execute_with_parameters_is_duckdbs_answer,
    test_insert_values_and_executemany_append_to_a_table,
    test_prepare_describes_parameters_and_get_schema_the_result,
    test_wrong_parameters_are_invalid_and_the_fleet_still_answers,
)
from test_query_lifecycle import (  # noqa: F401
    qs,
    test_adbc_cancel_stops_every_task_and_the_next_query_runs,
    test_cancel_flight_info_on_another_front_door_stops_a_running_query,
)
from test_tls import (  # noqa: F401
    test_adbc_over_tls_with_the_certificate_trusted,
    test_plaintext_and_untrusting_clients_are_refused,
    test_the_fleets_own_calls_use_tls_and_a_token,
)

from duckfleet.auth.local import FleetSecurity
from duckfleet.auth.tls import make_self_signed
from duckfleet.local_fleet import LocalFleet

pytestmark = pytest.mark.timeout(180)

GRPC = {"DUCKFLEET_FRONTDOOR_SERVER": "grpc"}


@pytest.fixture(scope="module")
def secure_fleet(tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureFleet]:
    base = tmp_path_factory.mktemp("secure-grpc-fleet")
    with started_secure_fleet(tpch_dir, base, GRPC) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    """Two grpcio front doors, two workers of one core each."""
    logs = str(tmp_path_factory.mktemp("grpc-fleet-logs"))
    f = start_fleet(etcd, str(tpch_dir), logs, frontdoors=2, extra_env=GRPC)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def fleet2(fleet: LocalFleet) -> LocalFleet:
    """test_query_lifecycle's name for a fleet of two front doors."""
    return fleet


@pytest.fixture(scope="module")
def tls_fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    """test_tls's fleet (auth on, TLS everywhere), with a grpcio front door."""
    base = tmp_path_factory.mktemp("grpc-tls-fleet")
    tls = make_self_signed(str(base / "tls"))
    security = FleetSecurity.basic(admin_password=ADMIN_PASSWORD, admin_user=ADMIN, tls=tls)
    f = start_fleet(
        etcd, str(tpch_dir), str(base), security=security, storage=str(tpch_dir), extra_env=GRPC
    )
    try:
        yield f
    finally:
        f.stop()


def test_the_fleets_front_doors_are_the_grpcio_server(fleet, secure_fleet):
    logs = sorted(Path(fleet.log_dir or "").glob("frontdoor-*.log"))
    assert len(logs) == 2
    for log in logs:
        assert "(grpc server;" in log.read_text(), log
    assert "(grpc server;" in secure_fleet.log("frontdoor-0")
