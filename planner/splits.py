"""The splits of a table: what one task of a split stage reads of it."""

from __future__ import annotations

from duckfleet.catalog import Table
from duckfleet.planner.plan import TableBinding
from duckfleet.planner.settings import PlannerSettings


def splits_of(table: Table, settings: PlannerSettings) -> list[TableBinding]:
    """One binding per file of `table`."""
    return [TableBinding(table.name, (f.path,)) for f in table.files]
