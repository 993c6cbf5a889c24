"""Planner errors: the statement is wrong, or names something that does not exist.

    PlanError
    ├── SqlSyntaxError            the text does not parse (line and column given)
    ├── UnknownTableError         a table that is not in the catalog
    ├── UnknownColumnError        a column no table in scope has
    └── UnsupportedStatementError not a query (DDL, SET, COPY, ...) or a feature refused

All of them mean "fix the SQL"; the Flight edge answers INVALID_ARGUMENT, except
UnsupportedStatementError, which answers INVALID_ARGUMENT too but names the feature.
"""

from __future__ import annotations

from duckfleet.errors import DuckfleetError


class PlanError(DuckfleetError):
    pass


class SqlSyntaxError(PlanError):
    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"SQL syntax error{where}: {message}")
        self.line = line
        self.column = column


class UnknownTableError(PlanError):
    pass


class UnknownColumnError(PlanError):
    pass


class UnsupportedStatementError(PlanError):
    pass
