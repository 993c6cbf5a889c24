"""The front door's plan cache: the same SQL on the same catalog is planned once.

Planning is pure (planner/): a function of the statement, the catalog and the
settings, so a plan made once answers every later run of the same text while the
catalog has not changed. The text is the DuckDB SQL the planner reads: a statement
sent in another dialect is keyed on what it was transpiled to (planner/dialects.py),
so the same text in two dialects that mean different things is two entries. Bounded,
least recently used first out; thread-safe (the Flight server calls from many
threads). Statements that fail to plan are not kept: they raise again, each time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from duckfleet.catalog import Catalog
from duckfleet.planner import PlannerSettings
from duckfleet.planner.plan import Plan

CacheKey = tuple[str, int, int, PlannerSettings]


class PlanCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._plans: OrderedDict[CacheKey, Plan] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def plan(
        self,
        sql: str,
        catalog: Catalog,
        settings: PlannerSettings,
        planner: Callable[[str, Catalog, PlannerSettings], Plan],
    ) -> Plan:
        """The plan of `sql` on this catalog version: cached, or made by `planner`."""
        key = (sql, catalog.version, len(catalog.tables), settings)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                self.hits += 1
                return plan
            self.misses += 1
        plan = planner(sql, catalog, settings)  # outside the lock: planning takes ms
        if self.capacity > 0:
            with self._lock:
                self._plans[key] = plan
                self._plans.move_to_end(key)
                while len(self._plans) > self.capacity:
                    self._plans.popitem(last=False)
        return plan

    def __len__(self) -> int:
        with self._lock:
            return len(self._plans)
