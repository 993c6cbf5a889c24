"""Knobs of the planner: how it tells small tables from large ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlannerSettings:
    # A table of at most this many bytes is small: every task reads it whole
    # (broadcast). A query distributes over the splits of its one large table.
    broadcast_max_bytes: int = 64 * 1024 * 1024
