"""Knobs of the planner: how it tells small tables from large ones."""

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

    # -- joins (planner/joins): tables split by a join key --------------------------
    # Try splitting joins, subqueries, CTEs and windows by key when the query is not
    # a plain scan or aggregate over one large table.
    split_joins: bool = True
    # A split-aligned join (key ranges from Parquet statistics) only while no table
    # is read more than this many times over at file granularity; else a shuffle.
    aligned_max_overread: float = 2.0
    # Buckets of a shuffle; 0: as many as the split table with the most files has
    # files, at least 2.
    shuffle_buckets: int = 0
    # A byte through the exchange costs this many bytes read in place (producers
    # read, hash, hold and serve it; consumers fetch and concatenate it).
    shuffle_cost: float = 3.0
