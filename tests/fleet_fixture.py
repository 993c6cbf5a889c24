"""A real fleet for end-to-end tests: etcd, front door and worker processes started
through LocalFleet (the code behind `duckfleet up`), TPC-H tables registered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from duckfleet.etcd_server import EtcdServer
from duckfleet.local_fleet import LocalFleet, register_tables


def start_fleet(etcd: EtcdServer, data_root: str, log_dir: str, **kwargs: object) -> LocalFleet:
    fleet = LocalFleet(
        etcd_url=etcd.url,
        port=0,
        cores_per_worker=1,
        lease_ttl=2,
        namespace=f"/fleet-{uuid.uuid4().hex[:8]}",
        log_dir=log_dir,
        **kwargs,  # type: ignore[arg-type]
    )
    fleet.start()
    store = fleet.store()
    try:
        register_tables(store, data_root)
    finally:
        store.close()
    return fleet


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, tmp_path_factory) -> Iterator[LocalFleet]:
    """Two workers (one core each) and one front door."""
    f = start_fleet(etcd, str(tpch_dir), str(tmp_path_factory.mktemp("fleet-logs")))
    try:
        yield f
    finally:
        f.stop()
