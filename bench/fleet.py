"""The fleet a benchmark talks to: LocalFleet (etcd, front door and worker processes
started with the real CLI), on free loopback ports, always stopped."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa

from bench.machine import cores
from bench.progress import say
from duckfleet.auth.local import FleetSecurity
from duckfleet.control import CatalogStore, QueryStore
from duckfleet.local_fleet import LocalFleet, register_tables
from duckfleet.table_files import describe_table

# Benchmarks measure queries, not logins: fleets built with authentication (issue 3)
# are started without it; the variable is ignored where authentication does not exist.
BENCH_ENV = {"DUCKFLEET_AUTH": "none"}


def cores_per_worker(workers: int) -> int:
    return max(1, cores() // max(1, workers))


def fleet_setup(fleet: LocalFleet) -> str:
    """One line saying what the fleet was, for report headers."""
    env = {k: v for k, v in fleet.extra_env.items() if k not in BENCH_ENV}
    return (
        f"{fleet.frontdoors} front door(s), {fleet.workers} worker(s) x "
        f"{fleet.cores_per_worker} core(s) (1 task slot per core), etcd, lease TTL "
        f"{fleet.lease_ttl} s, all on this machine over loopback"
        + (f"; {', '.join(f'{k}={v}' for k, v in env.items())}" if env else "")
    )


@contextmanager
def running_fleet(
    workers: int,
    log_dir: str | None = None,
    *,
    per_worker: int | None = None,
    frontdoors: int = 1,
    lease_ttl: int = 5,
    env: Mapping[str, str] | None = None,
    auth: bool = False,
    etcd_urls: str | None = None,
) -> Iterator[LocalFleet]:
    """`frontdoors` front doors and `workers` workers of `per_worker` cores each
    (default: this machine's cores shared out); logs kept under `log_dir` (a fresh
    /tmp/bench-logs-* directory if not given). `auth`: logins and bearer tokens on,
    as `duckfleet up` starts a fleet (connect with `adbc_connect(..., login=...)`).
    `etcd_urls`: an etcd cluster's client URLs, comma-separated (default: the fleet
    starts one etcd of its own)."""
    log_dir = log_dir or tempfile.mkdtemp(prefix="bench-logs-")
    os.makedirs(log_dir, exist_ok=True)
    fleet = LocalFleet(
        frontdoors=frontdoors,
        workers=workers,
        port=0,
        etcd_url=etcd_urls,
        cores_per_worker=per_worker or cores_per_worker(workers),
        lease_ttl=lease_ttl,
        log_dir=log_dir,
        extra_env={**({} if auth else BENCH_ENV), **(env or {})},
        security=FleetSecurity.basic() if auth else FleetSecurity(),
    )
    say(f"starting a fleet: {fleet_setup(fleet)}; logs in {log_dir}")
    try:
        fleet.start()
        say(f"fleet ready at {fleet.uri}")
        yield fleet
    finally:
        fleet.stop()
        say("fleet stopped")


def register(fleet: LocalFleet, root: str | None = None, **tables: str) -> None:
    """Register the TPC-H tables under `root`, and each name=path of `tables`."""
    store = fleet.store()
    try:
        if root is not None:
            register_tables(store, root)
        for name, path in tables.items():
            CatalogStore(store).put_table(describe_table(name, path))
    finally:
        store.close()


def tasks_of(fleet: LocalFleet, sql: str) -> int | None:
    """The number of tasks the fleet planned for `sql` (its latest query record in etcd)."""
    store = fleet.store()
    try:
        records = [r for r in QueryStore(store).all_records() if r.sql.strip() == sql.strip()]
    finally:
        store.close()
    return max(records, key=lambda r: r.created).ntasks if records else None


def adbc_connect(
    uri: str,
    timeout: float | None = None,
    max_message_bytes: int | None = None,
    login: LocalFleet | None = None,
) -> flightsql.Connection:
    """An ADBC Flight SQL connection (without the driver's autocommit warning);
    `timeout`: seconds each RPC may take before the driver gives up;
    `max_message_bytes`: the largest gRPC message it accepts (the driver's default
    is 16 MiB); `login`: a fleet with auth on, logged in to as its admin."""
    kwargs: dict[str, str] = {}
    if login is not None and login.security.auth:
        kwargs["username"] = login.security.admin_user
        kwargs["password"] = login.security.admin_password
    if max_message_bytes is not None:
        key = adbc_driver_flightsql.DatabaseOptions.WITH_MAX_MSG_SIZE.value
        kwargs[key] = str(max_message_bytes)
    if timeout is not None:
        for option in ("TIMEOUT_QUERY", "TIMEOUT_FETCH"):
            key = getattr(adbc_driver_flightsql.DatabaseOptions, option).value
            kwargs[key] = str(timeout)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot disable autocommit")
        return flightsql.connect(uri, db_kwargs=kwargs)


def fetch(cur: flightsql.Cursor, sql: str) -> pa.Table:
    cur.execute(sql)
    return cur.fetch_arrow_table()


def set_workers(fleet: LocalFleet, n: int, timeout: float = 60.0) -> None:
    """Stop (SIGTERM, drained) or start workers until exactly `n` are members."""
    live = [p for p in fleet.worker_procs if p.poll() is None]
    for p in live[n:]:
        p.terminate()
        p.wait(timeout)
    for _ in range(n - len(live)):
        fleet.start_worker()
    deadline = time.monotonic() + timeout
    while len(fleet.members("worker")) != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fleet did not settle at {n} worker(s)")
        time.sleep(0.05)
