"""Results a worker holds, by (query, task), until the query's keys expire."""

from __future__ import annotations

import threading

import pyarrow as pa

from duckfleet.ids import QueryId, TaskId


class ResultStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[QueryId, TaskId], pa.Table] = {}

    def put(self, q: QueryId, t: TaskId, table: pa.Table) -> None:
        with self._lock:
            self._tables[(q, t)] = table

    def get(self, q: QueryId, t: TaskId) -> pa.Table | None:
        with self._lock:
            return self._tables.get((q, t))

    def drop(self, q: QueryId, t: TaskId) -> None:
        with self._lock:
            self._tables.pop((q, t), None)

    def drop_query(self, q: QueryId, keep: set[str] | frozenset[str] = frozenset()) -> int:
        """Drop the query's results but those of the tasks in `keep`; how many went."""
        with self._lock:
            keys = [k for k in self._tables if k[0] == q and k[1] not in keep]
            for k in keys:
                del self._tables[k]
            return len(keys)

    def queries(self) -> set[QueryId]:
        with self._lock:
            return {q for q, _ in self._tables}

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(t.nbytes for t in self._tables.values())
