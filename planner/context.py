"""What every rule may read besides the tree: the catalog, the settings, the statement.

Rules are functions `rule(tree, ctx) -> tree`. They rewrite the tree only; the one
thing they write here is what EXPLAIN prints: `decide` records the strategy chosen
or, for the query's main block, why it runs as one task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlglot import exp

from duckfleet.catalog import Catalog
from duckfleet.planner.settings import PlannerSettings


@dataclass
class PlanContext:
    catalog: Catalog
    settings: PlannerSettings
    sql: str  # the statement as the client sent it
    text: str  # the statement's text as workers run it when it runs whole
    original: exp.Expression  # the parsed statement, table names made bare; never changed
    tables: tuple[str, ...] = ()  # catalog tables the statement reads
    reasons: list[str] = field(default_factory=list)  # strategy, or why one task
    notes: list[str] = field(default_factory=list)  # more lines for EXPLAIN
    # why SQL written from the tree would not name the outputs as DuckDB does
    unnamed: str | None = None

    @cached_property
    def schema(self) -> dict[str, dict[str, str]]:
        return self.catalog.schema_mapping()

    def decide(self, reason: str) -> None:
        """Record how the statement's own block runs (a rule that splits it says so);
        the first one recorded heads EXPLAIN. Without one, the planner asks `shape`
        why the block runs as one task."""
        if reason not in self.reasons:
            self.reasons.append(reason)

    def note(self, line: str) -> None:
        """Record how a part of the statement runs (a subquery, a CTE), for EXPLAIN."""
        if line not in self.notes:
            self.notes.append(line)

    @property
    def reason(self) -> str:
        return self.reasons[0] if self.reasons else "one task: nothing to split"
