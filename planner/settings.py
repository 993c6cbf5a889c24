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
