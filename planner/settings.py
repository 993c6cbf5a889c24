"""Knobs of the planner: how it tells small tables from large ones, how big a split is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlannerSettings:
    # A table of at most this many bytes is small: every task reads it whole
    # (broadcast). A query distributes over the splits of its one large table.
    broadcast_max_bytes: int = 64 * 1024 * 1024
    # ... and only while all broadcast tables together are at most this multiple of
    # one task's own split of the large table: past it the fleet re-reads more than
    # it divides, and one task over all the data is faster.
    broadcast_max_share: float = 1.0
    # A split (one task's share of a large table) is about this many bytes of
    # Parquet: whole files up to it, larger files cut at row-group boundaries.
    # At TPC-H SF1, lineitem's 4 files of 58 MB become 8 splits: 4 per worker of a
    # 2-worker fleet. (16 MiB, 16 splits, measured slower on 2 cores: each task has
    # a fixed cost in etcd and DuckDB.)
    split_bytes: int = 32 * 1024 * 1024
    # Files (and pieces of files) smaller than a split are packed together, in file
    # order, while a split holds at most this many bytes; 0: never (one split per
    # file or piece). The front door packs up to a split (DUCKFLEET_PACK_BYTES); the
    # default here is 0 so the planner's tests, whose tables are a few small files,
    # still exercise one split per file.
    pack_bytes: int = 0

    # -- joins (planner/joins): tables split by a join key --------------------------
    # Try splitting joins, subqueries, CTEs and windows by key when the query is not
    # a plain scan or aggregate over one large table.
    split_joins: bool = True
    # A split-aligned join (key ranges from Parquet statistics) only while no table
    # is read more than this many times over at file granularity; else a shuffle.
    aligned_max_overread: float = 2.0
    # Buckets of a shuffle; 0: as many as the split table with the most files has
    # files.
    shuffle_buckets: int = 0
    # Tasks the fleet runs at once: the front door sets it from its workers' slots.
    parallelism: int = 2
    # Costs, relative to reading a table's bytes in place (planner/joins/choose.py):
    # a byte through the exchange costs this much more (producers read, hash, hold
    # and serve it; consumers fetch and concatenate it)...
    shuffle_cost: float = 2.0
    # ... a broadcast table, per task that reads it (each builds its join again)...
    broadcast_cost: float = 2.0
    # ... a task, whatever it reads, as bytes read: claim, inputs, completion cost a
    # worker about 12 ms of CPU per task, what reading ~4 MB of columns takes...
    task_cost: float = 4 * 1024 * 1024
    # ... and a split plan is taken only if its estimated time is at most this
    # share of one task's (inf: every split that keeps the answer right). 0.9: on a
    # quiet 2-core machine at SF1, the split-aligned Q5 and Q8 this admits ran as
    # fast as one task or faster (141 against 153 ms, 172 against 169), while Q10
    # and Q13, which it keeps whole, ran 20% and 53% slower split.
    max_cost_share: float = 0.9
