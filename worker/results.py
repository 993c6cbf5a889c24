"""Results a worker holds, by (query, task), until the query's keys expire.

A partitioned task (exchange producer) holds one table per bucket; `get` with a
bucket returns that one.
"""

from __future__ import annotations

import threading

import pyarrow as pa

from duckfleet.ids import QueryId, TaskId

Held = pa.Table | tuple[pa.Table, ...]  # a whole result, or its buckets


class ResultStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[QueryId, TaskId], Held] = {}

    def put(self, q: QueryId, t: TaskId, table: pa.Table) -> None:
        with self._lock:
            self._tables[(q, t)] = table

    def put_buckets(self, q: QueryId, t: TaskId, buckets: list[pa.Table]) -> None:
        with self._lock:
            self._tables[(q, t)] = tuple(buckets)

    def get(self, q: QueryId, t: TaskId, bucket: int | None = None) -> pa.Table | None:
        """The whole result (bucket None) or one bucket of a partitioned one.

        None if not held, or if the result is not of the kind asked for.
        """
        with self._lock:
            held = self._tables.get((q, t))
        if isinstance(held, tuple):
            return held[bucket] if bucket is not None and 0 <= bucket < len(held) else None
        return held if bucket is None else None

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
            held = list(self._tables.values())
        return sum(sum(b.nbytes for b in h) if isinstance(h, tuple) else h.nbytes for h in held)
