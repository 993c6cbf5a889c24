"""Random queries over the TPC-H schema, with deterministic answers, for differential tests.

`QueryGenerator(seed).query()` writes one DuckDB SQL statement: aggregates (merged
ones and not), filters, GROUP BY with HAVING, grouping sets, DISTINCT, ORDER BY with
LIMIT/OFFSET, NULLs (NULLIF, CASE without ELSE, outer joins), CASE, joins to small
tables, subqueries (IN, scalar, EXISTS, correlated), derived tables, CTEs, set
operations and window functions. Answers stay deterministic: an ORDER BY orders by
every output column, LIMIT comes only with ORDER BY, ANY_VALUE takes a group key.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Col:
    name: str
    kind: str  # "key" (integer), "int", "num" (decimal), "str" (few values), "text", "date"


TABLES: dict[str, tuple[Col, ...]] = {
    "lineitem": (
        Col("l_orderkey", "key"),
        Col("l_partkey", "key"),
        Col("l_suppkey", "key"),
        Col("l_linenumber", "int"),
        Col("l_quantity", "num"),
        Col("l_extendedprice", "num"),
        Col("l_discount", "num"),
        Col("l_tax", "num"),
        Col("l_returnflag", "str"),
        Col("l_linestatus", "str"),
        Col("l_shipinstruct", "str"),
        Col("l_shipmode", "str"),
        Col("l_shipdate", "date"),
        Col("l_commitdate", "date"),
        Col("l_receiptdate", "date"),
        Col("l_comment", "text"),
    ),
    "orders": (
        Col("o_orderkey", "key"),
        Col("o_custkey", "key"),
        Col("o_orderstatus", "str"),
        Col("o_totalprice", "num"),
        Col("o_orderdate", "date"),
        Col("o_orderpriority", "str"),
        Col("o_shippriority", "int"),
        Col("o_clerk", "text"),
    ),
    "partsupp": (
        Col("ps_partkey", "key"),
        Col("ps_suppkey", "key"),
        Col("ps_availqty", "int"),
        Col("ps_supplycost", "num"),
    ),
    "customer": (
        Col("c_custkey", "key"),
        Col("c_nationkey", "key"),
        Col("c_acctbal", "num"),
        Col("c_mktsegment", "str"),
        Col("c_name", "text"),
    ),
    "part": (
        Col("p_partkey", "key"),
        Col("p_size", "int"),
        Col("p_retailprice", "num"),
        Col("p_brand", "str"),
        Col("p_container", "str"),
        Col("p_mfgr", "str"),
    ),
    "supplier": (
        Col("s_suppkey", "key"),
        Col("s_nationkey", "key"),
        Col("s_acctbal", "num"),
        Col("s_name", "text"),
    ),
    "nation": (Col("n_nationkey", "key"), Col("n_regionkey", "key"), Col("n_name", "str")),
    "region": (Col("r_regionkey", "key"), Col("r_name", "str")),
}
FACTS = ("lineitem", "lineitem", "lineitem", "orders", "partsupp", "customer", "part")
# (table, small table joined to it, join condition)
JOINS: dict[str, list[tuple[str, str]]] = {
    "lineitem": [
        ("part", "l_partkey = p_partkey"),
        ("supplier", "l_suppkey = s_suppkey"),
        ("orders", "l_orderkey = o_orderkey"),
    ],
    "orders": [("customer", "o_custkey = c_custkey")],
    "partsupp": [("part", "ps_partkey = p_partkey"), ("supplier", "ps_suppkey = s_suppkey")],
    "customer": [("nation", "c_nationkey = n_nationkey")],
    "supplier": [("nation", "s_nationkey = n_nationkey")],
    "part": [],
    "nation": [("region", "n_regionkey = r_regionkey")],
}
VALUES: dict[str, list[str]] = {
    "l_returnflag": ["'R'", "'A'", "'N'"],
    "l_linestatus": ["'O'", "'F'"],
    "l_shipinstruct": ["'DELIVER IN PERSON'", "'NONE'", "'TAKE BACK RETURN'"],
    "l_shipmode": ["'AIR'", "'MAIL'", "'SHIP'", "'TRUCK'", "'RAIL'"],
    "o_orderstatus": ["'O'", "'F'", "'P'"],
    "o_orderpriority": ["'1-URGENT'", "'2-HIGH'", "'5-LOW'"],
    "c_mktsegment": ["'BUILDING'", "'MACHINERY'", "'HOUSEHOLD'"],
    "p_brand": ["'Brand#12'", "'Brand#23'", "'Brand#34'"],
    "p_container": ["'SM BOX'", "'MED BAG'", "'LG CASE'", "'JUMBO PKG'"],
    "p_mfgr": ["'Manufacturer#1'", "'Manufacturer#3'"],
    "n_name": ["'FRANCE'", "'GERMANY'", "'CHINA'", "'BRAZIL'"],
    "r_name": ["'ASIA'", "'EUROPE'", "'AMERICA'"],
}
NUMBERS: dict[str, tuple[int, int]] = {
    "l_orderkey": (1, 60000),
    "l_partkey": (1, 2000),
    "l_suppkey": (1, 100),
    "l_linenumber": (1, 7),
    "l_quantity": (1, 50),
    "l_extendedprice": (900, 100000),
    "l_discount": (0, 10),  # hundredths
    "l_tax": (0, 8),  # hundredths
    "o_orderkey": (1, 60000),
    "o_custkey": (1, 1500),
    "o_totalprice": (1000, 400000),
    "o_shippriority": (0, 0),
    "ps_partkey": (1, 2000),
    "ps_suppkey": (1, 100),
    "ps_availqty": (1, 9999),
    "ps_supplycost": (1, 1000),
    "c_custkey": (1, 1500),
    "c_nationkey": (0, 24),
    "c_acctbal": (-999, 9999),
    "p_partkey": (1, 2000),
    "p_size": (1, 50),
    "p_retailprice": (900, 2000),
    "s_suppkey": (1, 100),
    "s_nationkey": (0, 24),
    "s_acctbal": (-999, 9999),
    "n_nationkey": (0, 24),
    "n_regionkey": (0, 4),
    "r_regionkey": (0, 4),
}
HUNDREDTHS = {"l_discount", "l_tax"}
# A column each table's rows spread over evenly, not in file order (so filtering on
# it keeps a few rows of every split, and prunes none)
NARROW = {
    "lineitem": "l_partkey",
    "orders": "o_custkey",
    "partsupp": "ps_suppkey",
    "customer": "c_nationkey",
    "part": "p_size",
    "supplier": "s_nationkey",
    "nation": "n_regionkey",
    "region": "r_regionkey",
}
MERGED = ("SUM", "MIN", "MAX", "AVG", "COUNT", "STDDEV", "VAR_POP", "VAR_SAMP", "STDDEV_POP")
EXACT_ONLY = ("MEDIAN", "QUANTILE_DISC")


class QueryGenerator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.names = 0

    # --- building blocks --------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, items: list[str] | tuple[str, ...]) -> str:
        return self.rng.choice(list(items))

    def columns(self, tables: list[str], *kinds: str) -> list[Col]:
        return [c for t in tables for c in TABLES[t] if not kinds or c.kind in kinds]

    def column(self, tables: list[str], *kinds: str) -> Col:
        return self.rng.choice(self.columns(tables, *kinds) or self.columns(tables))

    def constant(self, col: Col) -> str:
        if col.name in VALUES:
            return self.pick(VALUES[col.name])
        if col.kind == "date":
            year, month = self.rng.randint(1992, 1998), self.rng.randint(1, 12)
            day = self.rng.randint(1, 28)
            literal = f"DATE '{year}-{month:02d}-{day:02d}'"
            if self.chance(0.2):
                literal += f" + INTERVAL {self.rng.randint(1, 90)} DAY"
            return literal
        if col.kind == "text":
            return f"'%{self.pick(['the', 'ly', 'Customer#00000', 'furious', 'ironic'])}%'"
        low, high = NUMBERS.get(col.name, (0, 100))
        value = self.rng.randint(low, high)
        if col.name in HUNDREDTHS:
            return f"0.{value:02d}"
        return str(value)

    def predicate(self, tables: list[str], depth: int = 0) -> str:
        roll = self.rng.random()
        if depth < 2 and roll < 0.15:
            op = self.pick(["AND", "OR"])
            return f"({self.predicate(tables, depth + 1)} {op} {self.predicate(tables, depth + 1)})"
        if depth < 2 and roll < 0.2:
            return f"NOT ({self.predicate(tables, depth + 1)})"
        col = self.column(tables)
        if col.kind == "text":
            return f"{col.name} {'NOT ' if self.chance(0.2) else ''}LIKE {self.constant(col)}"
        if col.kind == "str":
            if self.chance(0.4):
                values = sorted({self.constant(col) for _ in range(2)})
                return f"{col.name} IN ({', '.join(values)})"
            return f"{col.name} {self.pick(['=', '<>', '<', '>='])} {self.constant(col)}"
        if self.chance(0.15):
            low, high = sorted([self.constant(col), self.constant(col)])
            if col.kind == "date":
                low, high = self.constant(col), self.constant(col)
            return f"{col.name} BETWEEN {low} AND {high}"
        if self.chance(0.1) and col.kind != "date":
            return f"NULLIF({col.name}, {self.constant(col)}) IS {'NOT ' * self.chance(0.5)}NULL"
        return f"{col.name} {self.pick(['=', '<', '<=', '>', '>=', '<>'])} {self.constant(col)}"

    def value(self, tables: list[str], kinds: tuple[str, ...] = ("num", "int", "key")) -> str:
        """A numeric expression, sometimes NULL."""
        col = self.column(tables, *kinds)
        roll = self.rng.random()
        if roll < 0.5:
            return col.name
        if roll < 0.65:
            return f"NULLIF({col.name}, {self.constant(col)})"
        if roll < 0.8:
            other = self.column(tables, *kinds)
            return f"{col.name} {self.pick(['+', '-', '*'])} {other.name}"
        if roll < 0.9:
            return f"CASE WHEN {self.predicate(tables, 2)} THEN {col.name} END"
        return f"CASE WHEN {self.predicate(tables, 2)} THEN {col.name} ELSE 0 END"

    def group_key(self, tables: list[str]) -> str:
        col = self.column(tables, "str", "int", "date")
        if col.kind == "date" and self.chance(0.7):
            return f"EXTRACT(YEAR FROM {col.name})"
        if col.kind == "int" and col.name not in ("l_linenumber", "p_size", "o_shippriority"):
            return f"{col.name} % 5"
        return col.name

    def aggregate(self, tables: list[str], keys: list[str]) -> str:
        roll = self.rng.random()
        if roll < 0.12:
            return "COUNT(*)"
        if roll < 0.2:
            return f"COUNT({self.value(tables)})"
        if roll < 0.27:
            col = self.column(tables, "key", "str", "int")
            return f"COUNT(DISTINCT {col.name})"
        if roll < 0.32:
            return f"COUNT_IF({self.predicate(tables, 2)})"
        if roll < 0.37:
            return f"BOOL_{self.pick(['AND', 'OR'])}({self.predicate(tables, 2)})"
        if roll < 0.4:
            return (
                f"BIT_{self.pick(['AND', 'OR', 'XOR'])}({self.column(tables, 'int', 'key').name})"
            )
        if roll < 0.43 and keys:
            return f"ANY_VALUE({self.rng.choice(keys)})"
        if roll < 0.48:
            col = self.column(tables, "str", "date", "text")
            return f"{self.pick(['MIN', 'MAX'])}({col.name})"
        if roll < 0.52:
            function = self.pick(EXACT_ONLY)
            argument = self.column(tables, "num", "int").name
            return f"{function}({argument}{', 0.25' * (function == 'QUANTILE_DISC')})"
        if roll < 0.54:
            col = self.column(tables, "str", "text")
            return f"STRING_AGG({col.name}, ',' ORDER BY {col.name})"
        function = self.pick(MERGED)
        if function == "COUNT":
            function = "SUM"
        text = f"{function}({self.value(tables)})"
        if self.chance(0.12):
            text += f" FILTER (WHERE {self.predicate(tables, 2)})"
        return text

    def name(self) -> str:
        self.names += 1
        return f"c{self.names}"

    def output(self, expression: str) -> str:
        """Most outputs get an alias; some keep DuckDB's own name for them."""
        return f"{expression} AS {self.name()}" if self.chance(0.8) else expression

    def sources(self, fact: str) -> tuple[list[str], str]:
        tables, text = [fact], fact
        for _ in range(self.rng.choice([0, 0, 1, 1, 2])):
            options = [
                (t, on) for base in tables for t, on in JOINS.get(base, []) if t not in tables
            ]
            if not options:
                break
            table, on = self.rng.choice(options)
            join = "LEFT JOIN" if self.chance(0.2) else "JOIN"
            text += f" {join} {table} ON {on}"
            if join == "LEFT JOIN" and self.chance(0.5):
                text += f" AND {self.predicate([table], 2)}"
            tables.append(table)
        return tables, text

    def where(self, tables: list[str], narrow: bool = False) -> str:
        """A WHERE clause, maybe none; `narrow` keeps about 3% of the first table's
        rows (on its first key), so that queries returning rows return few."""
        parts = [self.predicate(tables) for _ in range(self.rng.choice([0, 1, 1, 2]))]
        if narrow:
            key = NARROW[tables[0]]
            low, high = NUMBERS.get(key, (0, 100))
            start = self.rng.randint(low, high)
            parts.append(f"{key} BETWEEN {start} AND {start + (high - low) // 30}")
        return f" WHERE {' AND '.join(parts)}" if parts else ""

    def order_all(self, outputs: int, limit: bool = True) -> str:
        """ORDER BY every output, so ties are equal rows; sometimes LIMIT/OFFSET."""
        items = [
            f"{n}{self.pick(['', ' DESC', ' NULLS FIRST', ' DESC NULLS LAST'])}"
            for n in range(1, outputs + 1)
        ]
        text = f" ORDER BY {', '.join(items)}"
        if limit and self.chance(0.6):
            text += f" LIMIT {self.rng.randint(1, 30)}"
            if self.chance(0.3):
                text += f" OFFSET {self.rng.randint(1, 10)}"
        return text

    # --- whole statements ----------------------------------------------------------

    def query(self) -> str:
        kind = self.rng.choices(
            [
                *("aggregate", "scan", "distinct", "grouping", "subquery", "derived", "cte"),
                *("set", "window", "correlated"),
            ],
            weights=[30, 14, 6, 5, 12, 6, 6, 8, 4, 9],
        )[0]
        return getattr(self, f"_{kind}")()

    def _aggregate(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        keys = [self.group_key(tables) for _ in range(self.rng.choice([0, 1, 1, 2]))]
        keys = list(dict.fromkeys(keys))
        outputs = [self.output(k) for k in keys]
        outputs += [
            self.output(self.aggregate(tables, keys)) for _ in range(self.rng.randint(1, 3))
        ]
        sql = f"SELECT {', '.join(outputs)} FROM {source}{self.where(tables)}"
        if keys:
            sql += f" GROUP BY {', '.join(keys)}"
            if self.chance(0.25):
                sql += f" HAVING COUNT(*) > {self.rng.randint(0, 20)}"
        if self.chance(0.5):
            sql += self.order_all(len(outputs))
        return sql

    def _scan(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        picked = self.rng.sample(self.columns(tables), k=min(3, len(self.columns(tables))))
        outputs = [self.output(c.name) for c in picked]
        if self.chance(0.4):
            outputs.append(self.output(self.value(tables)))
        sql = f"SELECT {', '.join(outputs)} FROM {source}{self.where(tables, narrow=True)}"
        if self.chance(0.6):
            sql += self.order_all(len(outputs))
        return sql

    def _distinct(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        keys = list(dict.fromkeys(self.group_key(tables) for _ in range(self.rng.randint(1, 2))))
        sql = f"SELECT DISTINCT {', '.join(self.output(k) for k in keys)} FROM {source}"
        sql += self.where(tables)
        if self.chance(0.5):
            sql += self.order_all(len(keys))
        return sql

    def _grouping(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        keys = list(dict.fromkeys(self.group_key(tables) for _ in range(2)))
        how = self.pick(["ROLLUP", "CUBE", "GROUPING SETS"])
        if how == "GROUPING SETS":
            group = f"GROUPING SETS (({keys[0]}), ({', '.join(keys)}), ())"
        else:
            group = f"{how} ({', '.join(keys)})"
        aggs = [self.aggregate(tables, []) for _ in range(self.rng.randint(1, 2))]
        outputs = [self.output(k) for k in keys] + [self.output(a) for a in aggs]
        if self.chance(0.3):
            outputs.append(f"GROUPING({keys[0]}) AS {self.name()}")
        sql = f"SELECT {', '.join(outputs)} FROM {source}{self.where(tables)} GROUP BY {group}"
        return sql + (self.order_all(len(outputs)) if self.chance(0.4) else "")

    def _subquery(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        col = self.column(tables, "key", "num", "int")
        inner_table = self.pick((*FACTS, "supplier", "nation"))
        kinds = ("key",) if col.kind == "key" else ("num", "int")
        if not self.columns([inner_table], *kinds):
            inner_table = "lineitem"
        inner_col = self.column([inner_table], *kinds)
        roll = self.rng.random()
        if roll < 0.4:
            negated = "NOT " if self.chance(0.3) else ""
            inner = f"SELECT {inner_col.name} FROM {inner_table}{self.where([inner_table])}"
            condition = f"{col.name} {negated}IN ({inner})"
        elif roll < 0.8:
            function = self.pick(["AVG", "MIN", "MAX", "SUM"])
            inner = (
                f"SELECT {function}({inner_col.name}) FROM {inner_table}{self.where([inner_table])}"
            )
            condition = f"{col.name} {self.pick(['<', '>', '>='])} ({inner})"
        else:
            condition = f"EXISTS (SELECT 1 FROM {inner_table}{self.where([inner_table])})"
        if self.chance(0.5):
            outputs = [self.output(self.aggregate(tables, [])) for _ in range(2)]
            return f"SELECT {', '.join(outputs)} FROM {source} WHERE {condition}"
        picked = self.rng.sample(self.columns(tables), k=2)
        outputs = [self.output(c.name) for c in picked]
        narrow = self.where(tables, narrow=True).replace(" WHERE ", " AND ", 1)
        return (
            f"SELECT {', '.join(outputs)} FROM {source} WHERE {condition}{narrow}"
            + self.order_all(2)
        )

    def _correlated(self) -> str:
        pairs = [
            ("orders", "lineitem", "l_orderkey = o_orderkey"),
            ("part", "lineitem", "l_partkey = p_partkey"),
            ("supplier", "lineitem", "l_suppkey = s_suppkey"),
            ("customer", "orders", "o_custkey = c_custkey"),
            ("part", "partsupp", "ps_partkey = p_partkey"),
        ]
        outer, inner, on = self.rng.choice(pairs)
        extra = f" AND {self.predicate([inner], 2)}" if self.chance(0.6) else ""
        if self.chance(0.15):  # a correlation sqlglot cannot unnest: it stays correlated
            extra = f" OR {self.predicate([inner], 2)}"
        roll = self.rng.random()
        if roll < 0.5:
            negated = "NOT " if self.chance(0.4) else ""
            condition = f"{negated}EXISTS (SELECT 1 FROM {inner} WHERE {on}{extra})"
        else:
            value = self.column([inner], "num").name
            function = self.pick(["AVG", "MAX", "SUM", "MIN"])
            outer_value = self.column([outer], "num", "int", "key").name
            condition = (
                f"{outer_value} {self.pick(['<', '>'])} "
                f"(SELECT {function}({value}) FROM {inner} WHERE {on}{extra})"
            )
        if self.chance(0.6):
            key = self.group_key([outer])
            agg = self.aggregate([outer], [key])
            return (
                f"SELECT {self.output(key)}, {self.output(agg)} FROM {outer} WHERE {condition} "
                f"GROUP BY {key}" + self.order_all(2)
            )
        picked = self.rng.sample(self.columns([outer]), k=2)
        narrow = self.where([outer], narrow=True).replace(" WHERE ", " AND ", 1)
        return (
            f"SELECT {', '.join(c.name for c in picked)} FROM {outer} WHERE {condition}{narrow}"
            + self.order_all(2)
        )

    def exact_aggregate(self, tables: list[str], keys: list[str]) -> str:
        """An aggregate whose value is exact (no DOUBLE): the derived tables' `v`, which
        the outer query compares, counts DISTINCT and joins on. A DOUBLE computed in
        parts differs from DuckDB's in its last bits, as DuckDB's own does between
        thread counts, and exact tests on it would flip."""
        while True:
            text = self.aggregate(tables, keys)
            if not text.startswith(("AVG", "STDDEV", "VAR_")):
                return text

    def _derived(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        key = self.group_key(tables)
        inner = (
            f"SELECT {key} AS k, {self.exact_aggregate(tables, [key])} AS v FROM {source}"
            f"{self.where(tables)} GROUP BY {key}"
        )
        outer = self.pick(["COUNT(*)", "SUM(v)", "MAX(v)", "MIN(k)", "COUNT(DISTINCT v)"])
        if self.chance(0.5):
            return f"SELECT {outer} AS total FROM ({inner}) AS d"
        return f"SELECT k, v FROM ({inner}) AS d WHERE v IS NOT NULL" + self.order_all(2)

    def _cte(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        key = self.group_key(tables)
        body = (
            f"SELECT {key} AS k, {self.exact_aggregate(tables, [key])} AS v FROM {source}"
            f"{self.where(tables)} GROUP BY {key}"
        )
        if self.chance(0.5):
            query = "SELECT k, v FROM t WHERE v = (SELECT MAX(v) FROM t)"
        else:
            query = "SELECT a.k, a.v, b.v AS w FROM t AS a JOIN t AS b ON a.k = b.k"
        columns = 2 if query.startswith("SELECT k") else 3
        return f"WITH t AS ({body}) {query}" + self.order_all(columns)

    def _set(self) -> str:
        fact = self.pick(FACTS)
        tables = [fact]
        col = self.column(tables, "key", "str", "int")
        left = f"SELECT {col.name} AS x FROM {fact}{self.where(tables)}"
        right = f"SELECT {col.name} FROM {fact}{self.where(tables)}"
        if self.chance(0.3):
            right = f"SELECT {col.name} FROM {fact}{self.where(tables)} GROUP BY {col.name}"
        op = self.pick(["UNION ALL", "UNION", "INTERSECT", "EXCEPT", "UNION ALL"])
        return f"{left} {op} {right}" + self.order_all(1)

    def _window(self) -> str:
        tables, source = self.sources(self.pick(FACTS))
        key = self.group_key(tables)
        value = self.value(tables)
        function = self.pick(["SUM", "COUNT", "MAX", "MIN"])
        window = f"{function}({value}) OVER (PARTITION BY {key})"
        picked = self.column(tables, "key").name
        outputs = [f"{key} AS k", f"{picked} AS id", f"{window} AS w"]
        where = self.where(tables, narrow=True)
        return f"SELECT {', '.join(outputs)} FROM {source}{where}" + self.order_all(3)
