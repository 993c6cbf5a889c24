"""Shared query leases (control/lease_pool.py) against a real etcd server."""

from __future__ import annotations

import time

from duckfleet.control.lease_pool import SPARE_SECONDS, LeasePool


def wait_for_lease(pool: LeasePool, other_than: int | None = None) -> int:
    deadline = time.monotonic() + 10
    while pool._spare is None or int(pool._spare.id) == other_than:
        assert time.monotonic() < deadline, "no lease was granted ahead"
        time.sleep(0.01)
    return int(pool._spare.id)


def test_queries_started_together_share_the_lease_granted_ahead(store):
    pool = LeasePool(store, ttl=60).start()
    try:
        ahead = wait_for_lease(pool)
        first, second = pool.take(), pool.take()
        assert int(first.id) == int(second.id) == ahead
        remaining = store.client.get_lease_info(first.id).TTL
        assert 60 <= remaining <= 60 + SPARE_SECONDS
    finally:
        pool.stop()


def test_the_next_lease_is_granted_in_the_background_before_this_one_is_stale(store):
    pool = LeasePool(store, ttl=60).start()
    try:
        old = wait_for_lease(pool)
        pool._granted -= SPARE_SECONDS / 2 + 0.1  # half its freshness gone
        assert int(pool.take().id) == old  # still fresh enough for this query
        new = wait_for_lease(pool, other_than=old)
        assert int(pool.take().id) == new
    finally:
        pool.stop()


def test_a_stale_lease_is_not_taken(store):
    pool = LeasePool(store, ttl=60).start()
    try:
        stale = wait_for_lease(pool)
        pool._granted -= SPARE_SECONDS + 1  # as if nobody had asked for a while
        lease = pool.take()
        assert int(lease.id) != stale
        assert store.client.get_lease_info(lease.id).TTL >= 60
        assert int(pool.take().id) == int(lease.id)  # the new one is shared in turn
    finally:
        pool.stop()
