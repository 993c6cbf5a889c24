"""How far a query has come, in one read: its status, how many of its tasks have
finished (the done keys system.queries counts too: flight/system_tables.py), and
which of its output partitions have a result so far. PollFlightInfo answers from it
(flight/poll.py), on whichever front door the client polls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from etcd3.utils import prefix_range_end  # type: ignore[import-untyped]

from duckfleet.control.records import QueryStatus, ResultInfo
from duckfleet.control.store import Store, translated
from duckfleet.ids import QueryId, TaskId


@dataclass(frozen=True)
class Progress:
    status: QueryStatus | None  # None: the query is unknown, or its keys expired
    done: int  # finished tasks
    results: dict[TaskId, ResultInfo]  # output partitions with a result, by task


class ProgressReader:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys

    @translated("reading a query's progress")
    def read(self, query_id: QueryId, outputs: Iterable[TaskId]) -> Progress:
        k, txn = self.keys, self.store.txn
        done_prefix, results_prefix = k.done_of(query_id), k.results_of(query_id)
        ops = [
            txn.get(k.status(query_id)),
            txn.get(done_prefix, range_end=prefix_range_end(done_prefix.encode())),
            txn.get(results_prefix, range_end=prefix_range_end(results_prefix.encode())),
        ]
        _, (status, done, results) = self.store.transaction(compare=[], success=ops, failure=[])
        wanted = set(outputs)
        found: dict[TaskId, ResultInfo] = {}
        for value, meta in results:
            _, t = k.split_task_key(meta.key, k.all_results())
            if t in wanted:
                found[t] = ResultInfo.from_json(value)
        current = QueryStatus.from_json(status[0][0]) if status else None
        return Progress(current, len(list(done)), found)
