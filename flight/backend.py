"""What the Flight SQL front door asks of the rest of the fleet.

The protocol layer (server.py) speaks Flight SQL and nothing else; everything about
planning, etcd and workers sits behind this interface, implemented by runner.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from duckfleet.catalog import Catalog
from duckfleet.ids import QueryId


@dataclass(frozen=True)
class Partition:
    """One result partition: one FlightEndpoint."""

    ticket: bytes  # accepted by the worker holding it and by every front door
    locations: tuple[str, ...]  # the worker holding it first, then front doors
    rows: int
    bytes: int


@dataclass(frozen=True)
class QueryOutcome:
    query_id: QueryId
    schema: pa.Schema
    partitions: tuple[Partition, ...]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)


class QueryBackend(Protocol):
    def run(self, sql: str, *, user: str = "", role: str = "admin") -> QueryOutcome:
        """Plan, publish and wait for a query; raise PlanError, ControlError subclasses.

        ``user``/``role``: who asks (duckfleet.flight.auth); admin-only work checks the
        role with ``require_admin``."""
        ...

    def open_partition(self, ticket: bytes) -> pa.RecordBatchReader:
        """Stream a result partition from wherever it lives (the DoGet fallback)."""
        ...

    def catalog(self) -> Catalog:
        """The tables clients may query, for the metadata commands; ControlError
        subclasses when it cannot be read."""
        ...
