"""The root of duckfleet's error tree.

    DuckfleetError
    ├── duckfleet.planner.errors.PlanError        (bad or unsupported SQL)
    ├── duckfleet.control.errors.ControlError     (etcd unreachable, lost lease, ...)
    └── duckfleet.worker.errors.WorkerError       (a fragment failed, an input is gone)

Each package raises its own subclasses; the Flight edge (duckfleet.wire.status)
translates them to Flight status codes.
"""

from __future__ import annotations


class DuckfleetError(Exception):
    """Base of every error duckfleet raises on purpose."""
