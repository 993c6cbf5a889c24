"""What the Flight SQL front door asks of the rest of the fleet.

The protocol layer (server.py) speaks Flight SQL and nothing else; everything about
planning, etcd and workers sits behind this interface, implemented by runner.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from duckfleet.auth.tokens import Identity
from duckfleet.catalog import Catalog
from duckfleet.control.records import QueryStatus
from duckfleet.ids import QueryId, TaskId

if TYPE_CHECKING:
    from duckfleet.flight.describe import Prepared
    from duckfleet.flight.writes import IngestRequest


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


@dataclass(frozen=True)
class Polled:
    """Where a query is (PollFlightInfo): the partitions known so far (every one once
    it finished), and finished tasks over all."""

    outcome: QueryOutcome
    progress: float
    finished: bool
    elapsed: float = 0.0  # seconds since the query was published (once finished)


class QueryBackend(Protocol):
    def run(
        self,
        sql: str,
        *,
        priority: int = 0,
        cancelled: Callable[[], bool] | None = None,
        user: str = "",
        role: str = "admin",
        dialect: str | None = None,
    ) -> QueryOutcome:
        """Plan, publish and wait for a query; raise PlanError, ControlError subclasses.
        ``cancelled`` is asked while waiting; once true the query is cancelled.
        ``user``/``role``: who asks (duckfleet.wire.auth); admin-only work checks the
        role with ``require_admin``. ``dialect``: the one the client wrote the query
        in, when the front door transpiled it to the DuckDB SQL given."""
        ...

    def start(
        self,
        sql: str,
        *,
        priority: int = 0,
        user: str = "",
        role: str = "admin",
        dialect: str | None = None,
    ) -> QueryId | QueryOutcome:
        """Plan and publish a query without waiting for it (PollFlightInfo): its id;
        or the outcome of one answered at once (EXPLAIN, the fast path)."""
        ...

    def poll(self, query_id: QueryId, who: Identity, given: Sequence[TaskId] = ()) -> Polled:
        """Where a published query is, its partitions `given` before first; raises
        its error if it failed."""
        ...

    def cancel(self, query_id: QueryId) -> QueryStatus:
        """Cancel a query fleet-wide; its status afterwards (CANCELLED, or the
        FAILED status it had already)."""
        ...

    def prepare(self, sql: str) -> Prepared:
        """The dataset and parameter schemas of a statement, without running it."""
        ...

    def update(self, sql: str, *, priority: int = 0) -> int:
        """Carry out a write statement (CREATE TABLE AS, INSERT, CREATE VIEW, DROP)
        now; the number of rows it wrote."""
        ...

    def ingest(self, request: IngestRequest, data: pa.Table) -> int:
        """Write ``data`` into a table (CommandStatementIngest); rows written."""
        ...

    def session(self, session_id: str) -> dict[str, Any] | None:
        """A client session's options, from wherever every front door sees them."""
        ...

    def save_session(self, session_id: str, options: dict[str, Any]) -> None: ...

    def close_session(self, session_id: str) -> bool: ...

    def open_partition(self, ticket: bytes) -> pa.RecordBatchReader:
        """Stream a result partition from wherever it lives (the DoGet fallback)."""
        ...

    def catalog(self) -> Catalog:
        """The tables clients may query, for the metadata commands; ControlError
        subclasses when it cannot be read."""
        ...

    def check_read(self, sql: str, who: Identity) -> None:
        """Raise PermissionDenied unless ``who`` may read every table and view ``sql``
        reads (SELECT grants: flight/access.py); ``run`` checks by itself."""
        ...

    def readable_catalog(self, who: Identity) -> Catalog:
        """The part of the catalog ``who`` may read, for the metadata commands."""
        ...
