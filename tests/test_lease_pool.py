"""Spare query leases (control/lease_pool.py) against a real etcd server."""

from __future__ import annotations

import time

from duckfleet.control.lease_pool import SPARE_SECONDS, LeasePool


def wait_for_spare(pool: LeasePool) -> int:
    deadline = time.monotonic() + 10
    while pool._spare is None:
        assert time.monotonic() < deadline, "no spare lease was granted"
        time.sleep(0.01)
    return int(pool._spare.id)


def alive(store, lease_id: int) -> bool:
    return store.client.get_lease_info(lease_id).TTL > 0  # -1: revoked or expired


def test_a_query_takes_the_spare_granted_ahead_and_a_new_spare_follows(store):
    pool = LeasePool(store, ttl=60).start()
    try:
        spare = wait_for_spare(pool)
        lease = pool.take()
        assert int(lease.id) == spare
        remaining = store.client.get_lease_info(lease.id).TTL
        assert 60 <= remaining <= 60 + SPARE_SECONDS
        assert wait_for_spare(pool) != spare
    finally:
        pool.stop()


def test_a_stale_spare_is_not_used_and_is_revoked(store):
    pool = LeasePool(store, ttl=60).start()
    try:
        stale = wait_for_spare(pool)
        pool._granted -= SPARE_SECONDS + 1  # as if it had waited too long
        lease = pool.take()
        assert int(lease.id) != stale
        deadline = time.monotonic() + 10
        while alive(store, stale):
            assert time.monotonic() < deadline, "the stale spare was never revoked"
            time.sleep(0.01)
        assert alive(store, int(lease.id))
    finally:
        pool.stop()
