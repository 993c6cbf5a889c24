"""Names and strings written into DuckDB SQL text: the fragments workers run, the
schema a front door describes statements against, the benchmarks' views."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
