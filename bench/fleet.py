"""The fleet a benchmark talks to: LocalFleet (etcd, front door and worker processes
started with the real CLI), on free loopback ports, always stopped."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import adbc_driver_flightsql.dbapi as flightsql

from bench.machine import cores
from bench.progress import say
from duckfleet.control import QueryStore
from duckfleet.local_fleet import LocalFleet


def cores_per_worker(workers: int) -> int:
    return max(1, cores() // max(1, workers))


@contextmanager
def running_fleet(workers: int, log_dir: str | None = None) -> Iterator[LocalFleet]:
    """One front door and `workers` workers sharing this machine's cores; logs kept
    under `log_dir` (a fresh /tmp/bench-logs-* directory if not given)."""
    log_dir = log_dir or tempfile.mkdtemp(prefix="bench-logs-")
    fleet = LocalFleet(
        frontdoors=1,
        workers=workers,
        port=0,
        cores_per_worker=cores_per_worker(workers),
        log_dir=log_dir,
    )
    say(
        f"starting a fleet: etcd, 1 front door, {workers} worker(s) x "
        f"{cores_per_worker(workers)} core(s); logs in {log_dir}"
    )
    try:
        fleet.start()
        say(f"fleet ready at {fleet.uri}")
        yield fleet
    finally:
        fleet.stop()
        say("fleet stopped")


def tasks_of(fleet: LocalFleet, sql: str) -> int | None:
    """The number of tasks the fleet planned for `sql` (its latest query record in etcd)."""
    store = fleet.store()
    try:
        records = [r for r in QueryStore(store).all_records() if r.sql.strip() == sql.strip()]
    finally:
        store.close()
    return max(records, key=lambda r: r.created).ntasks if records else None


def adbc_connect(uri: str) -> flightsql.Connection:
    """An ADBC Flight SQL connection (without the driver's autocommit warning)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot disable autocommit")
        return flightsql.connect(uri)
