"""Query priority on real processes: with one worker slot busy, a high-priority
query queued after a low-priority one has all its tasks claimed first.

The queries go through FleetBackend — the front door's own code behind the Flight
SQL protocol — in this process, because no Flight SQL message carries a priority
yet (a session option will); the worker and etcd are real processes.
"""

from __future__ import annotations

import threading
import time

import pyarrow as pa
from fleet_fixture import reference, start_fleet
from test_query_lifecycle import LONG, records_since, running_record, wait_until

from duckfleet.config import FrontDoorConfig
from duckfleet.control import QueryStore
from duckfleet.flight.backend import QueryOutcome
from duckfleet.flight.runner import FleetBackend
from duckfleet.ids import MemberId
from duckfleet.verify import assert_same_result

LOW = "select l_returnflag, count(*) as n, sum(l_tax) as tax from lineitem group by 1"
HIGH = "select l_linestatus, count(*) as n, sum(l_discount) as d from lineitem group by 1"


def test_a_high_priority_query_is_claimed_before_an_older_low_priority_one(
    etcd, tpch_dir, tmp_path
):
    fleet = start_fleet(etcd, str(tpch_dir), str(tmp_path), workers=1)  # one slot
    store = fleet.store()
    cfg = FrontDoorConfig(etcd=etcd.url, namespace=fleet.namespace)
    backend = FleetBackend(cfg, store, MemberId("frontdoor-test"), fleet.uri)
    qs = QueryStore(store)
    outcomes: dict[str, QueryOutcome | BaseException] = {}

    def submit(sql_text: str, priority: int) -> threading.Thread:
        def go() -> None:
            try:
                outcomes[sql_text] = backend.run(sql_text, priority=priority)
            except BaseException as exc:  # reported by the asserts below
                outcomes[sql_text] = exc

        t = threading.Thread(target=go)
        t.start()
        return t

    def queued(sql_text: str) -> bool:
        records = records_since(qs, sql_text, 0)
        return bool(records) and bool(
            list(store.client.get_prefix(store.keys.runnable_of(records[0].id), keys_only=True))
        )

    threads = []
    try:
        threads.append(submit(LONG, 0))
        blocker = running_record(qs, LONG)  # the only slot is taken
        threads.append(submit(LOW, 0))
        wait_until(lambda: queued(LOW), "the low-priority query is queued")
        time.sleep(0.05)  # the high-priority one is strictly younger
        threads.append(submit(HIGH, 5))
        wait_until(lambda: queued(HIGH), "the high-priority query is queued")
        assert not qs.first_claims(records_since(qs, LOW, 0)[0].id)  # nothing started yet
        backend.cancel(blocker.id)  # frees the slot
        for t in threads:
            t.join(60)
        for sql_text in (LOW, HIGH):
            outcome = outcomes[sql_text]
            assert isinstance(outcome, QueryOutcome), outcome
            table = fetch(backend, outcome)
            assert_same_result(table, reference(tpch_dir, sql_text), ordered=False)
        (low,) = records_since(qs, LOW, 0)
        (high,) = records_since(qs, HIGH, 0)
        assert (low.priority, high.priority) == (0, 5) and low.created < high.created
        low_claims, high_claims = qs.first_claims(low.id), qs.first_claims(high.id)
        assert len(low_claims) == low.ntasks and len(high_claims) == high.ntasks
        # every task of the high-priority query, merge included, started first
        assert max(high_claims.values()) < min(low_claims.values()), (high_claims, low_claims)
    finally:
        for t in threads:
            t.join(30)
        backend.close()
        store.close()
        fleet.stop()


def fetch(backend: FleetBackend, outcome: QueryOutcome) -> pa.Table:
    return pa.concat_tables(backend.open_partition(p.ticket).read_all() for p in outcome.partitions)
