"""Which plans may take the fast path (planner/fast_path.py), and the offer's wire
form (control/offers.py): pure, no network."""

from __future__ import annotations

import pyarrow as pa

from duckfleet.catalog import Catalog, Column, DataFile, Table
from duckfleet.control.offers import Offer, OfferAnswer
from duckfleet.control.queries import new_record
from duckfleet.control.records import EndReason, MemberInfo, QueryState, QueryStatus, ResultInfo
from duckfleet.ids import MemberId, QueryId, TaskId
from duckfleet.planner import PlannerSettings, plan_query
from duckfleet.planner.fast_path import binding_bytes, choose_path
from duckfleet.planner.plan import (
    InputBinding,
    Plan,
    RowRange,
    Stage,
    StageKind,
    TableBinding,
    TaskPlan,
)
from duckfleet.planner.splits import splits_of

MiB = 1 << 20


def table(name: str, *sizes: int) -> Table:
    files = tuple(DataFile(f"/data/{name}/{i}.parquet", 1000, size) for i, size in enumerate(sizes))
    return Table(name, (Column("k", "BIGINT"), Column("v", "VARCHAR")), files)


CATALOG = Catalog(tables={"small": table("small", MiB, MiB), "big": table("big", *[40 * MiB] * 4)})


SETTINGS = PlannerSettings(split_bytes=32 * MiB, pack_bytes=32 * MiB, parallelism=4)


def plan(sql: str) -> Plan:
    return plan_query(sql, CATALOG, SETTINGS)


def test_small_files_are_packed_into_one_split_and_large_ones_stand_alone():
    small, big = CATALOG.tables["small"], CATALOG.tables["big"]
    (packed,) = splits_of(small, SETTINGS)
    assert packed.files == tuple(f.path for f in small.files) and packed.ranges == ()
    assert [b.files for b in splits_of(big, SETTINGS)] == [(f.path,) for f in big.files]
    unpacked = splits_of(small, PlannerSettings(split_bytes=32 * MiB, pack_bytes=0))
    assert [b.files for b in unpacked] == [(f.path,) for f in small.files]
    mixed = Table("mixed", small.columns, (*small.files, *big.files[:1], *small.files))
    assert [len(b.files) for b in splits_of(mixed, SETTINGS)] == [2, 1, 2]


def single(task: TaskPlan) -> Plan:
    return Plan("x", (Stage(0, StageKind.SINGLE, (task,)),), "test")


def test_a_one_task_query_over_small_tables_takes_the_fast_path():
    choice = choose_path(plan("select v, count(*) as n from small group by 1"), CATALOG, 32 * MiB)
    assert choice.fast and choice.bytes == 2 * MiB
    assert choice.reason == f"fast path: one task over {2 * MiB:,} bytes"
    assert choose_path(plan("select 1"), CATALOG, 32 * MiB).fast


def test_what_does_not_qualify_says_why():
    many = plan("select v, count(*) as n from big group by 1")
    assert len(many.tasks) > 1
    assert choose_path(many, CATALOG, 32 * MiB).reason == f"queue: {len(many.tasks)} tasks"
    off = choose_path(plan("select 1"), CATALOG, 0)
    assert not off.fast and "DUCKFLEET_FAST_PATH_BYTES=0" in off.reason
    over = choose_path(plan("select count(*) as n from small"), CATALOG, MiB)
    assert not over.fast and over.reason.startswith(f"queue: one task over {2 * MiB:,} bytes")
    write = single(TaskPlan(TaskId("t0"), 0, "select 1", output_file="/data/out/0.parquet"))
    assert choose_path(write, CATALOG, 32 * MiB).reason == "queue: the statement writes a table"
    reads = single(TaskPlan(TaskId("t1"), 1, "select 1", inputs=(InputBinding("s", ("t0",)),)))
    assert not choose_path(reads, CATALOG, 32 * MiB).fast


def test_a_row_range_counts_its_share_and_an_unknown_file_is_never_small():
    path = "/data/big/0.parquet"
    half = TableBinding("big", (path,), (RowRange(0, 1, 0, 500),))
    assert binding_bytes(half, CATALOG) == 20 * MiB
    assert binding_bytes(TableBinding("big", (path,)), CATALOG) == 40 * MiB
    assert binding_bytes(TableBinding("big", ("/elsewhere.parquet",)), CATALOG) > 1 << 60


def test_an_offer_and_its_answers_survive_the_wire():
    p = plan("select v from small")
    record = new_record(QueryId("q1"), p, frontdoor=MemberId("frontdoor-1"), lease=7, timeout=5)
    offer = Offer.from_json(Offer(record, p.tasks[0]).to_json())
    assert offer.record == record and offer.task == p.tasks[0]
    assert offer.plan().tasks == p.tasks and offer.plan().sql == p.sql
    info = ResultInfo(MemberId("worker-1"), "grpc://h:1", 3, 24, pa.schema([("v", pa.string())]))
    done = OfferAnswer.from_json(OfferAnswer(True, result=info).to_json())
    assert done.accepted and done.result == info and done.status is None
    failed = QueryStatus(QueryState.FAILED, error="boom", task="t0", reason=EndReason.NONE)
    assert OfferAnswer.from_json(OfferAnswer(True, status=failed).to_json()).status == failed
    lost = OfferAnswer.from_json(OfferAnswer(False, "stopped", recorded=True).to_json())
    assert (lost.accepted, lost.reason, lost.recorded) == (False, "stopped", True)
    assert MemberInfo(MemberId("worker-1"), "worker", "grpc://h:1", 2).slots == 2
