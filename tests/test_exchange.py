"""The exchange's pure parts: bucket splitting, the plan and record fields that
carry it, bucket tickets, the result store, and a consumer recomputing a lost
partitioned producer. Cross-process behaviour: tests/test_joins_fleet.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from shuffle_plan import SHUFFLE_JOIN_SQL, shuffle_join_plan
from tpch_data import execute_plan, reference, tpch_catalog

from duckfleet.control.errors import QueryNotFound
from duckfleet.control.queries import StoredTask
from duckfleet.control.records import ResultInfo
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.planner.plan import InputBinding, TableBinding, TaskPlan
from duckfleet.verify import assert_same_result
from duckfleet.wire import tickets
from duckfleet.worker.buckets import split_buckets
from duckfleet.worker.errors import InputUnavailable
from duckfleet.worker.inputs import InputFetcher
from duckfleet.worker.results import ResultStore

Q = QueryId("0123456789abcdef")


def buckets_of(table: pa.Table, keys: tuple[str, ...], n: int) -> list[pa.Table]:
    with duckdb.connect() as con:
        return split_buckets(con, table, keys, n)


def test_every_row_lands_in_exactly_one_bucket():
    table = pa.table({"k": list(range(1000)) + [None] * 5, "v": list(range(1005))})
    parts = buckets_of(table, ("k",), 7)
    assert len(parts) == 7
    assert all(p.schema == table.schema for p in parts)
    assert sorted(v for p in parts for v in p.column("v").to_pylist()) == list(range(1005))
    assert sum(p.num_rows > 0 for p in parts) == 7  # 1000 keys spread over all of them
    # NULL keys, like any key, all in one bucket
    assert sum(any(k is None for k in p.column("k").to_pylist()) for p in parts) == 1


def test_equal_keys_meet_in_the_same_bucket_across_producers():
    left = pa.table({"a": pa.array([5, 17, 99, 3, 42], pa.int64()), "x": list("abcde")})
    right = pa.table({"b": pa.array([42, 5, 5, 1000], pa.int64()), "y": [1, 2, 3, 4]})
    lb, rb = buckets_of(left, ("a",), 4), buckets_of(right, ("b",), 4)
    joined = {
        (x, y)
        for b in range(4)
        for a, x in zip(lb[b].column("a").to_pylist(), lb[b].column("x").to_pylist(), strict=True)
        for k, y in zip(rb[b].column("b").to_pylist(), rb[b].column("y").to_pylist(), strict=True)
        if a == k
    }
    assert joined == {("a", 2), ("a", 3), ("e", 1)}  # what the join over the whole gives


def test_several_key_columns_and_an_empty_result():
    table = pa.table({"a": [1, 1, 2, 2], "b": ["x", "x", "x", "y"], "v": [1, 2, 3, 4]})
    parts = buckets_of(table, ("a", "b"), 3)
    for p in parts:  # the two (1, 'x') rows are together
        if 1 in p.column("v").to_pylist():
            assert 2 in p.column("v").to_pylist()
    empty = buckets_of(table.slice(0, 0), ("a",), 3)
    assert [p.num_rows for p in empty] == [0, 0, 0] and empty[0].schema == table.schema


def test_a_missing_key_column_is_an_error():
    with pytest.raises(ValueError, match="not columns of the result"):
        buckets_of(pa.table({"a": [1]}), ("z",), 2)


def test_task_plan_json_carries_the_exchange_and_reads_older_json():
    producer = TaskPlan(
        TaskId("t0"),
        0,
        "SELECT k FROM t",
        tables=(TableBinding("t", ("/d/t.parquet",)),),
        partition_by=("k",),
        buckets=4,
    )
    consumer = TaskPlan(
        TaskId("t1"),
        1,
        "SELECT * FROM t",
        inputs=(InputBinding("t", (TaskId("t0"),), bucket=2), InputBinding("u", (TaskId("t9"),))),
    )
    for task in (producer, consumer):
        assert TaskPlan.from_json(task.to_json()) == task
    assert "buckets" not in json.loads(consumer.to_json())  # absent unless partitioned
    older = '{"id": "t1", "stage": 1, "sql": "x", "tables": [], "inputs": [["r", ["t0"]]]}'
    parsed = TaskPlan.from_json(older)
    assert parsed.inputs == (InputBinding("r", (TaskId("t0"),), -1),)
    assert not parsed.partitioned and parsed.partition_by == ()


def test_result_info_lists_the_buckets_in_one_entry():
    schema = pa.schema([("k", pa.int64())])
    info = ResultInfo(MemberId("w"), "grpc://h:1", 10, 80, schema, (3, 0, 7))
    assert ResultInfo.from_json(info.to_json()) == info
    plain = ResultInfo(MemberId("w"), "grpc://h:1", 10, 80, schema)
    assert "bucket_rows" not in json.loads(plain.to_json())
    assert ResultInfo.from_json(plain.to_json()).bucket_rows == ()


def test_bucket_tickets_round_trip_and_bad_buckets_are_refused():
    ticket = tickets.result_ticket(Q, TaskId("t3"), 5)
    parsed = tickets.parse_result_ticket_bucket(ticket)
    assert (parsed.query_id, parsed.task_id, parsed.bucket) == (Q, "t3", 5)
    assert tickets.parse_result_ticket(ticket) == (Q, "t3")  # readers of (q, t) still work
    assert tickets.parse_result_ticket_bucket(tickets.result_ticket(Q, TaskId("t3"))).bucket is None
    for bad in (-1, "2", 1.5, True):
        handle = json.dumps({"q": Q, "t": "t1", "b": bad}).encode()
        data = tickets.commands.pack(tickets.sql.TicketStatementQuery(statement_handle=handle))
        with pytest.raises(tickets.InvalidTicket, match="bucket"):
            tickets.parse_result_ticket_bucket(data)


def test_result_store_serves_a_bucket_only_of_a_partitioned_result():
    store = ResultStore()
    whole = pa.table({"k": [1, 2, 3]})
    parts = [whole.slice(0, 1), whole.slice(1, 2)]
    store.put(Q, TaskId("t0"), whole)
    store.put_buckets(Q, TaskId("t1"), parts)
    assert store.get(Q, TaskId("t0")) == whole
    assert store.get(Q, TaskId("t0"), 0) is None
    assert store.get(Q, TaskId("t1"), 1) == parts[1]
    assert store.get(Q, TaskId("t1")) is None and store.get(Q, TaskId("t1"), 2) is None
    assert store.nbytes == whole.nbytes + sum(p.nbytes for p in parts)
    assert store.drop_query(Q) == 2


class FakeQueries:
    """The two QueryStore reads the fetcher makes: the results index and the lineage."""

    def __init__(self, tasks: Mapping[TaskId, TaskPlan]) -> None:
        self.tasks = tasks

    def results(self, q: QueryId, wanted: object) -> dict[TaskId, ResultInfo]:
        return {}  # every producer's worker is gone

    def stored_task(self, q: QueryId, t: TaskId) -> StoredTask:
        if t not in self.tasks:
            raise QueryNotFound(f"task {t} unknown")
        return StoredTask(self.tasks[t], ())


def test_a_lost_partitioned_producer_is_recomputed_once_and_serves_every_bucket():
    producer = TaskPlan(TaskId("t0"), 0, "p", partition_by=("k",), buckets=2)
    runs: list[TaskId] = []
    parts = [pa.table({"k": [2, 4]}), pa.table({"k": [1]})]

    def run(task: TaskPlan, inputs: Mapping[str, pa.Table]) -> list[pa.Table]:
        runs.append(task.id)
        return parts

    fetcher = InputFetcher(FakeQueries({TaskId("t0"): producer}), ResultStore(), None, run)  # type: ignore[arg-type]
    got = {}
    for b in (0, 1):
        consumer = TaskPlan(TaskId(f"t{b + 1}"), 1, "c", inputs=(InputBinding("r", ("t0",), b),))  # type: ignore[arg-type]
        recomputed: list[TaskId] = []
        got[b] = fetcher.inputs(Q, consumer, recomputed)["r"]
        assert recomputed == (["t0"] if b == 0 else [])
    assert got == {0: parts[0], 1: parts[1]}
    assert runs == ["t0"]  # the second bucket came from the kept buckets


def test_a_lost_producer_without_lineage_is_input_unavailable():
    fetcher = InputFetcher(FakeQueries({}), ResultStore(), None, lambda t, i: pa.table({}))  # type: ignore[arg-type]
    consumer = TaskPlan(TaskId("t1"), 1, "c", inputs=(InputBinding("r", (TaskId("t0"),), 0),))
    with pytest.raises(InputUnavailable, match="lineage"):
        fetcher.inputs(Q, consumer, [])


def test_a_hand_built_shuffle_join_gives_duckdbs_answer(tpch_dir: Path):
    catalog = tpch_catalog(tpch_dir)
    for buckets in (1, 3, 8):
        plan = shuffle_join_plan(catalog, buckets)
        assert_same_result(execute_plan(plan), reference(catalog, SHUFFLE_JOIN_SQL), ordered=False)
