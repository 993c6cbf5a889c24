"""A task's resource limits, and the message a client reads when one stops it.

Both limits travel with the query record, so every worker applies the ones the
accepting front door was configured with:

- ``memory_limit`` (DUCKFLEET_QUERY_MEMORY_LIMIT): the task's fragments run in a
  DuckDB database of their own with that memory limit; DuckDB's out-of-memory
  error fails the query, saying which limit was too small.
- ``max_result_bytes`` (DUCKFLEET_MAX_RESULT_BYTES): an output partition larger
  than the whole result may be fails the query before it is even kept. (The front
  door checks the sum of the partitions.)

Any other failure reports DuckDB's message (or duckfleet's) as it is; an unexpected
exception, a bug, reports only that the worker's log has it (with its traceback).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from duckfleet.control import ClaimedTask
from duckfleet.control.keys import QUERY_SINK
from duckfleet.control.records import EndReason
from duckfleet.errors import DuckfleetError
from duckfleet.worker.errors import ResourceLimitExceeded


def check_result_size(ct: ClaimedTask, table: pa.Table) -> None:
    cap = ct.record.max_result_bytes
    if cap and QUERY_SINK in ct.task.consumers and table.nbytes > cap:
        raise ResourceLimitExceeded(
            f"its result is larger than DUCKFLEET_MAX_RESULT_BYTES={cap}: partition "
            f"{ct.task_id} alone is {table.nbytes:,} bytes; select fewer rows or columns "
            "(LIMIT, an aggregate), or raise the cap"
        )


def failure(ct: ClaimedTask, exc: BaseException, worker_limit: str) -> tuple[str, EndReason]:
    """The error a failed task reports for its query, and why it failed."""
    if isinstance(exc, ResourceLimitExceeded):
        return str(exc), EndReason.LIMIT
    if isinstance(exc, duckdb.OutOfMemoryException):
        said = str(exc).splitlines()[0]
        if ct.record.memory_limit:
            limit = f"DUCKFLEET_QUERY_MEMORY_LIMIT={ct.record.memory_limit} (per task)"
        else:
            limit = f"the worker's DUCKFLEET_MEMORY_LIMIT={worker_limit or 'DuckDB default'}"
        return (
            f"task {ct.task_id} ran out of memory under {limit}: {said}; "
            "raise the limit or make the query need less (fewer groups, rows or columns)",
            EndReason.LIMIT,
        )
    if expected(exc):
        return str(exc), EndReason.NONE  # DuckDB's own words name the kind of error
    return (
        f"internal error in task {ct.task_id}: the worker's log has the details",
        EndReason.NONE,
    )


def expected(exc: BaseException) -> bool:
    """An error the task's SQL or its inputs caused (DuckDB's, or one duckfleet raises
    on purpose), not a bug: logged without its traceback, sent as it says."""
    return isinstance(exc, duckdb.Error | DuckfleetError)
