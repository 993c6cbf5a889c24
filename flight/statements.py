"""A client's statement as the front door sees it: a query or a write, its
parameters, and the SQL of each execution once parameters are bound.

    parse_statement_text(sql)      -> ClientStatement (placeholders numbered)
    executions(statement, rows)    -> the SQL to run, one per parameter row
                                      (INSERT ... VALUES (?, ...): one for all rows)

The bound SQL is generated from the tree (planner/parameters.py), never spliced.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from duckfleet.planner.errors import SqlSyntaxError
from duckfleet.planner.grant_statements import GrantChange, parse_grant
from duckfleet.planner.parameters import (
    ParameterValue,
    bind,
    bind_rows,
    is_single_row_insert,
    number_placeholders,
    number_question_marks,
)
from duckfleet.planner.parse import DIALECT
from duckfleet.planner.write_statements import WriteStatement, parse_tree, parse_write
from duckfleet.wire.commands import MalformedRequest

STATEMENTS_KEPT = 256  # statement texts whose parse is kept
_MAY_GRANT = re.compile(r"\s*(grant|revoke)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ClientStatement:
    sql: str  # as the client sent it
    tree: exp.Expression | None  # placeholders numbered; None: left to the planner
    parameters: int
    write: WriteStatement | GrantChange | None  # None: a query

    @property
    def is_update(self) -> bool:
        return self.write is not None

    @property
    def action(self) -> str:
        """What an admin-only refusal names: "GRANT", "REVOKE", or "" (the command)."""
        return self.write.verb if isinstance(self.write, GrantChange) else ""


@functools.lru_cache(maxsize=STATEMENTS_KEPT)
def parse_statement_text(sql: str) -> ClientStatement:
    """Classify ``sql``. Text that sqlglot cannot parse as one statement is passed on
    as a query, for the planner to refuse with its own, precise, error.

    Kept per text (a prepared statement runs again and again): the tree is shared,
    so its users copy it before changing it (planner/parameters.py does)."""
    if not sql.strip():
        raise SqlSyntaxError("the SQL statement is empty")
    if _MAY_GRANT.match(sql):
        grant = parse_grant(sql)
        if grant is not None:  # GRANT / REVOKE: carried out like a write, by admins
            return ClientStatement(sql, None, 0, grant)
    tree = parse_tree(number_question_marks(sql))  # ? numbered in the text's order
    if tree is None:
        return ClientStatement(sql, None, 0, None)
    numbered, count = number_placeholders(tree)
    return ClientStatement(sql, numbered, count, parse_write(numbered))


def executions(
    statement: ClientStatement, rows: Sequence[Sequence[ParameterValue]] | None
) -> list[str]:
    """The SQL text of each execution: the statement itself when it takes no
    parameters, else one per bound row."""
    if statement.tree is None or statement.parameters == 0:
        if rows and any(rows):
            raise MalformedRequest(
                f"the statement takes no parameters but {len(rows[0])} were bound"
            )
        return [statement.sql]
    if not rows:
        raise MalformedRequest(
            f"the statement takes {statement.parameters} parameter(s); bind them before "
            "executing it"
        )
    if is_single_row_insert(statement.tree):
        return [bind_rows(statement.tree, rows).sql(dialect=DIALECT)]
    return [bind(statement.tree, row).sql(dialect=DIALECT) for row in rows]
