"""A real fleet for end-to-end tests: etcd, front door and worker processes started
through LocalFleet (the code behind `duckfleet up`), TPC-H tables registered."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest
from tpch_data import reference as tpch_reference
from tpch_data import tpch_catalog

from duckfleet.control import QueryStore
from duckfleet.control.records import Claim, QueryRecord
from duckfleet.etcd_server import EtcdServer
from duckfleet.ids import QueryId, TaskId
from duckfleet.local_fleet import LocalFleet, register_tables


def start_fleet(
    etcd: EtcdServer, data_root: str, log_dir: str, etcd_urls: str | None = None, **kwargs: object
) -> LocalFleet:
    """A fleet on `etcd` (or on every endpoint in `etcd_urls`, for a cluster); tables
    written through Flight SQL go under `log_dir`/tables."""
    extra_env = dict(kwargs.pop("extra_env", None) or {})  # type: ignore[call-overload]
    extra_env.setdefault("DUCKFLEET_DATA_DIR", str(Path(log_dir) / "tables"))
    kwargs.setdefault("lease_ttl", 2)
    fleet = LocalFleet(
        etcd_url=etcd_urls or etcd.url,
        port=0,
        cores_per_worker=1,
        namespace=f"/fleet-{uuid.uuid4().hex[:8]}",
        log_dir=log_dir,
        extra_env=extra_env,
        **kwargs,  # type: ignore[arg-type]
    )
    fleet.start()
    store = fleet.store()
    try:
        register_tables(store, data_root)
    finally:
        store.close()
    return fleet


def reference(data_root: Path, sql: str) -> pa.Table:
    return tpch_reference(tpch_catalog(data_root), sql)


def run(uri: str, sql: str) -> pa.Table:
    with flightsql.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def run_in_thread(uri: str, sql: str) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}

    def client() -> None:
        try:
            out["table"] = run(uri, sql)
        except Exception as exc:  # reported by the test
            out["error"] = exc

    t = threading.Thread(target=client)
    t.start()
    return t, out


def first_claim(qs: QueryStore, timeout: float = 30) -> tuple[QueryId, TaskId, Claim]:
    """Wait until some worker holds a claim; return one (query, task, claim)."""
    deadline = time.monotonic() + timeout
    while not (claims := qs.claims()):
        assert time.monotonic() < deadline, "no task was ever claimed"
        time.sleep(0.005)
    return claims[0]


def records_for(fleet, sql: str) -> list[QueryRecord]:
    store = fleet.store()
    try:
        qs = QueryStore(store)
        return [r for r in qs.all_records() if r.sql.strip() == sql.strip()]
    finally:
        store.close()


SLOW = """
select l_returnflag, count(*) as n, sum(l_quantity) as qty, max(n1.n_name || n2.n_name) as m
from lineitem, nation n1, nation n2, region r1, region r2
where n1.n_regionkey = r1.r_regionkey or l_linenumber > 2
group by l_returnflag
"""


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    """Two workers (one core each) and one front door."""
    f = start_fleet(etcd, str(tpch_dir), str(tmp_path_factory.mktemp("fleet-logs")))
    try:
        yield f
    finally:
        f.stop()
