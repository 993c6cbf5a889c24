"""The plan cache: the same SQL on the same catalog version is planned once.

Unit tests of the LRU, then a front door's backend on a real etcd: EXPLAIN plans
without workers, so the catalog's version can be moved under it (a table added,
one dropped) and the cache seen to follow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tpch_data import tpch_catalog

from duckfleet.catalog import Catalog
from duckfleet.config import FrontDoorConfig
from duckfleet.control import CatalogStore, Store
from duckfleet.flight.plan_cache import PlanCache
from duckfleet.flight.runner import FleetBackend
from duckfleet.ids import MemberId
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.errors import UnknownTableError
from duckfleet.planner.plan import Plan

SQL = "SELECT l_returnflag, COUNT(*) AS n FROM lineitem GROUP BY l_returnflag"


class CountingPlanner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, sql: str, catalog: Catalog, settings: PlannerSettings) -> Plan:
        self.calls.append(sql)
        return plan_query(sql, catalog, settings)


@pytest.fixture(scope="module")
def catalog(tpch_dir: Path) -> Catalog:
    return tpch_catalog(tpch_dir)


def test_the_same_sql_on_the_same_catalog_is_planned_once(catalog: Catalog) -> None:
    cache, planner = PlanCache(8), CountingPlanner()
    first = cache.plan(SQL, catalog, PlannerSettings(), planner)
    assert cache.plan(SQL, catalog, PlannerSettings(), planner) is first
    assert (planner.calls, cache.hits, cache.misses) == ([SQL], 1, 1)


def test_another_catalog_version_settings_or_text_plans_again(catalog: Catalog) -> None:
    cache, planner = PlanCache(8), CountingPlanner()
    cache.plan(SQL, catalog, PlannerSettings(), planner)
    newer = Catalog(tables=catalog.tables, version=catalog.version + 1)
    fewer = Catalog(tables={n: t for n, t in catalog.tables.items() if n != "region"})
    cache.plan(SQL, newer, PlannerSettings(), planner)
    cache.plan(SQL, fewer, PlannerSettings(), planner)
    cache.plan(SQL, catalog, PlannerSettings(split_bytes=1), planner)
    cache.plan(SQL + " ", catalog, PlannerSettings(), planner)
    assert len(planner.calls) == 5 and cache.hits == 0


def test_the_cache_is_bounded_least_recently_used_first_out(catalog: Catalog) -> None:
    cache, planner = PlanCache(2), CountingPlanner()
    a, b, c = (f"SELECT COUNT(*) AS n FROM {t}" for t in ("nation", "region", "part"))
    for sql in (a, b, a, c):  # c pushes out b, the least recently used
        cache.plan(sql, catalog, PlannerSettings(), planner)
    assert len(cache) == 2
    cache.plan(a, catalog, PlannerSettings(), planner)
    cache.plan(b, catalog, PlannerSettings(), planner)
    assert planner.calls == [a, b, c, b]


def test_statements_that_fail_to_plan_are_not_kept(catalog: Catalog) -> None:
    cache, planner = PlanCache(8), CountingPlanner()
    for _ in range(2):
        with pytest.raises(UnknownTableError):
            cache.plan("SELECT * FROM nope", catalog, PlannerSettings(), planner)
    assert len(planner.calls) == 2 and len(cache) == 0


@pytest.fixture
def backend(store: Store, catalog: Catalog) -> Iterator[FleetBackend]:
    tables = CatalogStore(store)
    for table in catalog.tables.values():
        tables.put_table(table)
    cfg = FrontDoorConfig(etcd="unused", namespace="unused")
    fleet_backend = FleetBackend(cfg, store, MemberId("frontdoor-test"), "grpc://127.0.0.1:1")
    try:
        yield fleet_backend
    finally:
        fleet_backend.close()


def test_a_front_door_plans_again_only_when_the_catalog_moves(
    backend: FleetBackend, store: Store, catalog: Catalog
) -> None:
    explain = f"EXPLAIN {SQL}"
    backend.run(explain)
    backend.run(explain)
    assert (backend.plans.misses, backend.plans.hits) == (1, 1)
    with told(backend):  # a change by another process: seen once the watch tells
        CatalogStore(store).put_table(catalog.tables["region"])  # a new revision
    backend.run(explain)
    assert (backend.plans.misses, backend.plans.hits) == (2, 1)
    with told(backend):
        CatalogStore(store).drop_table("nation")
    backend.run(explain)
    backend.run(explain)
    assert (backend.plans.misses, backend.plans.hits) == (3, 2)


@contextmanager
def told(backend: FleetBackend) -> Iterator[None]:
    """Until the front door's watch on the catalog has seen what the block changed."""
    freshness = backend.fleet.catalog_freshness
    before = freshness.token()
    yield
    deadline = time.monotonic() + 10
    while freshness.token() == before:
        assert time.monotonic() < deadline, "the catalog watch never told"
        time.sleep(0.005)


def test_a_catalog_changed_elsewhere_is_read_again_when_the_watch_tells(
    backend: FleetBackend, store: Store, catalog: Catalog
) -> None:
    # until the watch is up: before it, nothing vouches for a kept catalog
    assert backend.fleet.catalog_freshness.watch.connected.wait(10)
    first = backend.catalog()
    assert "nation" in first.tables
    assert backend.catalog() is first  # nothing changed: kept, not read again
    with told(backend):
        CatalogStore(store).drop_table("nation")
    assert "nation" not in backend.catalog().tables  # read again: the watch told
