"""A fleet with auth on, shared by the security tests (auth, sandbox, fuzz, JDBC
replay): one etcd, one front door, two workers, for the whole session.

Users: the admin from the environment (ADMIN / ADMIN_PASSWORD) and, in a users file
written with `duckfleet user add`, READER with the role `user`. Workers reach files
under the TPC-H directory and an empty `store_dir` only (DUCKFLEET_STORAGE).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from duckfleet.auth.local import FleetSecurity
from duckfleet.etcd_server import EtcdServer
from duckfleet.local_fleet import LocalFleet, register_tables

ADMIN = "admin"
ADMIN_PASSWORD = "admin-pw-" + uuid.uuid4().hex[:8]
READER = "reader"
READER_PASSWORD = "reader-pw-" + uuid.uuid4().hex[:8]


@dataclass
class SecureFleet:
    fleet: LocalFleet
    security: FleetSecurity
    data_root: Path
    store_dir: Path  # a second storage directory, for writes
    log_dir: Path

    @property
    def uri(self) -> str:
        return self.fleet.uri

    @property
    def token_key(self) -> bytes:
        return self.security.token_key.encode()

    def worker_locations(self) -> list[str]:
        return [m.location for m in self.fleet.members("worker")]

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


def add_user(users_file: Path, name: str, role: str, password: str) -> None:
    """Through the CLI, as an operator does."""
    done = subprocess.run(
        [sys.executable, "-m", "duckfleet", "user", "add", name, "--role", role,
         "--users-file", str(users_file), "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def connect(uri: str, user: str = ADMIN, password: str = ADMIN_PASSWORD, **kwargs: str):
    """An ADBC connection that logs in with ``user`` and ``password``."""
    return flightsql.connect(uri, db_kwargs={"username": user, "password": password, **kwargs})


def run_as(uri: str, sql: str, user: str = ADMIN, password: str = ADMIN_PASSWORD) -> pa.Table:
    with connect(uri, user, password) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def login(client: fl.FlightClient, user: str = ADMIN, password: str = ADMIN_PASSWORD):
    """pyarrow.flight: Handshake with Basic credentials; call options with the token."""
    return fl.FlightCallOptions(headers=[client.authenticate_basic_token(user, password)])


@contextlib.contextmanager
def started_secure_fleet(
    tpch_dir: Path, base: Path, extra_env: dict[str, str] | None = None, frontdoors: int = 1
) -> Iterator[SecureFleet]:
    """The secure fleet under `base`; `extra_env` for every process (e.g. the grpcio
    front door: tests/test_grpc_frontdoor.py); several front doors sit behind a
    balancer."""
    users_file = base / "users"
    add_user(users_file, READER, "user", READER_PASSWORD)
    security = FleetSecurity.basic(
        admin_password=ADMIN_PASSWORD, admin_user=ADMIN, users_file=str(users_file)
    )
    log_dir = base / "logs"
    log_dir.mkdir()
    store_dir = base / "store"
    store_dir.mkdir()
    etcd = EtcdServer(data_dir=str(base / "etcd"), log_path=str(base / "etcd.log")).start()
    fleet = LocalFleet(
        etcd_url=etcd.url,
        port=0,
        frontdoors=frontdoors,
        cores_per_worker=1,
        lease_ttl=2,
        namespace=f"/secure-{uuid.uuid4().hex[:8]}",
        log_dir=str(log_dir),
        security=security,
        storage=f"{tpch_dir},{store_dir}",
        # writes go to DUCKFLEET_DATA_DIR
        extra_env={"DUCKFLEET_DATA_DIR": str(store_dir / "tables"), **(extra_env or {})},
    )
    try:
        fleet.start()
        store = fleet.store()
        try:
            register_tables(store, str(tpch_dir))
        finally:
            store.close()
        yield SecureFleet(fleet, security, tpch_dir, store_dir, log_dir)
    finally:
        fleet.stop()
        etcd.close()


@pytest.fixture(scope="session")
def secure_fleet(tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureFleet]:
    with started_secure_fleet(tpch_dir, tmp_path_factory.mktemp("secure-fleet")) as fleet:
        yield fleet
