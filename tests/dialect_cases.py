"""Queries written with dialect-specific constructs, each beside a hand-written
DuckDB query that means the same, over the TPC-H tables of tests/tpch_data.py.

Every case: (dialect, the query in that dialect, the DuckDB equivalent). The
dialect's text goes through the fleet with the dialect set; the equivalent runs in
DuckDB in-process on the same files; the answers must be equal.
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    dialect: str
    sql: str
    duckdb: str

    @property
    def id(self) -> str:
        return f"{self.dialect}-{self.sql.split()[1][:24]}"


CASES: list[Case] = [
    # --- Trino ------------------------------------------------------------------------
    Case(
        "trino",
        "SELECT o_orderkey, date_add('day', 7, o_orderdate) AS due FROM orders "
        "WHERE o_orderkey < 200",
        "SELECT o_orderkey, o_orderdate + INTERVAL 7 DAY AS due FROM orders WHERE o_orderkey < 200",
    ),
    Case(
        "trino",
        "SELECT o_orderstatus, approx_distinct(o_custkey) AS n FROM orders GROUP BY o_orderstatus",
        "SELECT o_orderstatus, approx_count_distinct(o_custkey) AS n FROM orders "
        "GROUP BY o_orderstatus",
    ),
    Case(
        "trino",
        "SELECT max(date_diff('day', o_orderdate, DATE '1998-12-31')) AS days FROM orders",
        "SELECT max(DATE '1998-12-31' - o_orderdate) AS days FROM orders",
    ),
    Case(
        "trino",
        "SELECT l_returnflag, count_if(l_quantity > 30) AS big FROM lineitem GROUP BY 1",
        "SELECT l_returnflag, sum(CASE WHEN l_quantity > 30 THEN 1 ELSE 0 END) AS big "
        "FROM lineitem GROUP BY 1",
    ),
    Case(
        "trino",
        "SELECT count(*) AS n FROM part WHERE regexp_like(p_name, '^forest')",
        "SELECT count(*) AS n FROM part WHERE p_name LIKE 'forest%'",
    ),
    Case(
        "trino",
        "SELECT if(o_totalprice > 100000, 'big', 'small') AS size, count(*) AS n "
        "FROM orders GROUP BY 1",
        "SELECT CASE WHEN o_totalprice > 100000 THEN 'big' ELSE 'small' END AS size, "
        "count(*) AS n FROM orders GROUP BY 1",
    ),
    Case(
        "trino",
        "SELECT year(o_orderdate) AS y, date_trunc('month', o_orderdate) AS m, count(*) AS n "
        "FROM orders GROUP BY 1, 2",
        "SELECT extract(year FROM o_orderdate) AS y, date_trunc('month', o_orderdate) AS m, "
        "count(*) AS n FROM orders GROUP BY 1, 2",
    ),
    Case(
        "trino",
        "SELECT day_of_week(o_orderdate) AS dow, count(*) AS n FROM orders GROUP BY 1",
        "SELECT isodow(o_orderdate) AS dow, count(*) AS n FROM orders GROUP BY 1",
    ),
    Case(
        "trino",
        "SELECT o_orderstatus, count(*) / 7 AS weeks, sum(o_custkey) / count(*) AS mean, "
        "7 / 2 AS half FROM orders GROUP BY 1",
        "SELECT o_orderstatus, count(*) // 7 AS weeks, CAST(sum(o_custkey) // count(*) AS BIGINT) "
        "AS mean, CAST(3 AS BIGINT) AS half FROM orders GROUP BY 1",
    ),
    # --- Snowflake --------------------------------------------------------------------
    Case(
        "snowflake",
        "SELECT IFF(c_acctbal < 0, 'debt', 'credit') AS kind, COUNT(*) AS n FROM customer "
        "GROUP BY 1",
        "SELECT CASE WHEN c_acctbal < 0 THEN 'debt' ELSE 'credit' END AS kind, count(*) AS n "
        "FROM customer GROUP BY 1",
    ),
    Case(
        "snowflake",
        "SELECT o_orderkey, DATEADD(day, 30, o_orderdate) AS due FROM orders "
        "WHERE o_orderkey < 200",
        "SELECT o_orderkey, o_orderdate + INTERVAL 30 DAY AS due FROM orders "
        "WHERE o_orderkey < 200",
    ),
    Case(
        "snowflake",
        "SELECT SUM(o_totalprice::INT) AS total, MAX(o_orderdate::VARCHAR) AS last FROM orders",
        "SELECT sum(CAST(o_totalprice AS INTEGER)) AS total, "
        "max(CAST(o_orderdate AS VARCHAR)) AS last FROM orders",
    ),
    Case(
        "snowflake",
        "SELECT NVL(NULLIF(n_regionkey, 0), -1) AS r, COUNT(*) AS n FROM nation GROUP BY 1",
        "SELECT coalesce(nullif(n_regionkey, 0), -1) AS r, count(*) AS n FROM nation GROUP BY 1",
    ),
    Case(
        "snowflake",
        "SELECT MIN(DATEDIFF(day, o_orderdate, l_shipdate)) AS lo, "
        "MAX(DATEDIFF(day, o_orderdate, l_shipdate)) AS hi "
        "FROM orders JOIN lineitem ON l_orderkey = o_orderkey",
        "SELECT min(l_shipdate - o_orderdate) AS lo, max(l_shipdate - o_orderdate) AS hi "
        "FROM orders JOIN lineitem ON l_orderkey = o_orderkey",
    ),
    Case(
        "snowflake",
        "SELECT ZEROIFNULL(SUM(CASE WHEN n_nationkey > 100 THEN n_nationkey END)) AS z, "
        "DIV0(COUNT(*), 0) AS d FROM nation",
        "SELECT coalesce(sum(CASE WHEN n_nationkey > 100 THEN n_nationkey END), 0) AS z, "
        "CASE WHEN 0 = 0 THEN 0 ELSE count(*) / 0 END AS d FROM nation",
    ),
    Case(
        "snowflake",
        "SELECT DECODE(n_regionkey, 0, 'zero', 1, 'one', 'many') AS r, COUNT(*) AS n "
        "FROM nation GROUP BY 1",
        "SELECT CASE n_regionkey WHEN 0 THEN 'zero' WHEN 1 THEN 'one' ELSE 'many' END AS r, "
        "count(*) AS n FROM nation GROUP BY 1",
    ),
    # --- Spark ------------------------------------------------------------------------
    Case(
        "spark",
        "SELECT `n_name`, `n_nationkey` FROM `nation` WHERE `n_regionkey` = 1",
        'SELECT "n_name", "n_nationkey" FROM "nation" WHERE "n_regionkey" = 1',
    ),
    Case(
        "spark",
        "SELECT o_orderkey, date_sub(o_orderdate, 3) AS before FROM orders WHERE o_orderkey < 200",
        # Spark answers a DATE; sqlglot's DuckDB form a TIMESTAMP (README: dialects)
        "SELECT o_orderkey, o_orderdate - INTERVAL 3 DAY AS before FROM orders "
        "WHERE o_orderkey < 200",
    ),
    Case(
        "spark",
        "SELECT nvl(CAST(NULL AS STRING), r_name) AS name, nvl2(r_comment, 1, 0) AS has "
        "FROM region",
        "SELECT coalesce(NULL, r_name) AS name, CASE WHEN r_comment IS NOT NULL THEN 1 ELSE 0 "
        "END AS has FROM region",
    ),
    Case(
        "spark",
        "SELECT max(datediff(l_receiptdate, l_shipdate)) AS days FROM lineitem",
        "SELECT max(l_receiptdate - l_shipdate) AS days FROM lineitem",
    ),
    Case(
        "spark",
        "SELECT concat_ws('-', n_name, r_name) AS label FROM nation JOIN region "
        "ON n_regionkey = r_regionkey",
        "SELECT n_name || '-' || r_name AS label FROM nation JOIN region "
        "ON n_regionkey = r_regionkey",
    ),
    Case(
        "spark",
        'SELECT "spark string" AS s, count(*) AS n FROM region',
        "SELECT 'spark string' AS s, count(*) AS n FROM region",
    ),
    # --- BigQuery ---------------------------------------------------------------------
    Case(
        "bigquery",
        "SELECT SAFE_CAST(SUBSTR(c_phone, 1, 2) AS INT64) AS code, SAFE_CAST(c_name AS INT64) "
        "AS bad FROM customer WHERE c_custkey < 50",
        "SELECT TRY_CAST(substr(c_phone, 1, 2) AS BIGINT) AS code, TRY_CAST(c_name AS BIGINT) "
        "AS bad FROM customer WHERE c_custkey < 50",
    ),
    Case(
        "bigquery",
        "SELECT DATE_TRUNC(o_orderdate, MONTH) AS m, COUNT(*) AS n FROM orders GROUP BY 1",
        "SELECT date_trunc('month', o_orderdate) AS m, count(*) AS n FROM orders GROUP BY 1",
    ),
    Case(
        "bigquery",
        "SELECT `n`.`n_name` AS name FROM `nation` AS `n` WHERE `n`.`n_nationkey` < 5",
        "SELECT n.n_name AS name FROM nation AS n WHERE n.n_nationkey < 5",
    ),
    Case(
        "bigquery",
        "SELECT MAX(DATE_DIFF(l_receiptdate, l_commitdate, DAY)) AS late FROM lineitem",
        "SELECT max(l_receiptdate - l_commitdate) AS late FROM lineitem",
    ),
    Case(
        "bigquery",
        "SELECT COUNTIF(l_discount > 0.05) AS n, LOGICAL_OR(l_tax > 0.07) AS any_tax FROM lineitem",
        "SELECT sum(CASE WHEN l_discount > 0.05 THEN 1 ELSE 0 END) AS n, "
        "bool_or(l_tax > 0.07) AS any_tax FROM lineitem",
    ),
    Case(
        "bigquery",
        "SELECT FORMAT_DATE('%Y-%m', o_orderdate) AS ym, COUNT(*) AS n FROM orders GROUP BY 1",
        "SELECT strftime(o_orderdate, '%Y-%m') AS ym, count(*) AS n FROM orders GROUP BY 1",
    ),
    # --- Postgres ---------------------------------------------------------------------
    Case(
        "postgres",
        "SELECT count(*) AS n FROM part WHERE p_name ILIKE '%GREEN%'",
        "SELECT count(*) AS n FROM part WHERE lower(p_name) LIKE '%green%'",
    ),
    Case(
        "postgres",
        "SELECT date_part('year', o_orderdate)::int AS y, count(*) AS n FROM orders GROUP BY 1",
        "SELECT CAST(extract(year FROM o_orderdate) AS INTEGER) AS y, count(*) AS n FROM orders "
        "GROUP BY 1",
    ),
    Case(
        "postgres",
        "SELECT r_regionkey, string_agg(n_name, ',' ORDER BY n_name) AS names FROM region "
        "JOIN nation ON n_regionkey = r_regionkey GROUP BY r_regionkey",
        "SELECT r_regionkey, string_agg(n_name, ',' ORDER BY n_name) AS names FROM region "
        "JOIN nation ON n_regionkey = r_regionkey GROUP BY r_regionkey",
    ),
    Case(
        "postgres",
        "SELECT p_size / 10 AS decade, count(*) AS n FROM part GROUP BY 1",
        "SELECT CAST(p_size // 10 AS BIGINT) AS decade, count(*) AS n FROM part GROUP BY 1",
    ),
    # --- MySQL ------------------------------------------------------------------------
    Case(
        "mysql",
        "SELECT `n_name` FROM `nation` ORDER BY `n_name` LIMIT 2, 3",
        "SELECT n_name FROM nation ORDER BY n_name LIMIT 3 OFFSET 2",
    ),
    Case(
        "mysql",
        "SELECT IFNULL(NULL, s_name) AS name, DATE_FORMAT(DATE '1995-03-15', '%Y/%m') AS ym "
        "FROM supplier WHERE s_suppkey < 10",
        "SELECT s_name AS name, '1995/03' AS ym FROM supplier WHERE s_suppkey < 10",
    ),
    Case(
        "mysql",
        "SELECT MAX(DATEDIFF(l_receiptdate, l_shipdate)) AS days FROM lineitem",
        "SELECT max(l_receiptdate - l_shipdate) AS days FROM lineitem",
    ),
    # --- T-SQL ------------------------------------------------------------------------
    Case(
        "tsql",
        "SELECT TOP 5 o_orderkey, o_totalprice FROM orders ORDER BY o_totalprice DESC",
        "SELECT o_orderkey, o_totalprice FROM orders ORDER BY o_totalprice DESC LIMIT 5",
    ),
    Case(
        "tsql",
        "SELECT ISNULL(NULL, [c_name]) AS name, LEN([c_name]) AS len, "
        "IIF([c_acctbal] > 0, 1, 0) AS pos FROM [customer] WHERE [c_custkey] < 30",
        "SELECT c_name AS name, length(c_name) AS len, CASE WHEN c_acctbal > 0 THEN 1 ELSE 0 "
        "END AS pos FROM customer WHERE c_custkey < 30",
    ),
    Case(
        "tsql",
        "SELECT MAX(DATEDIFF(day, l_shipdate, l_receiptdate)) AS days, "
        "MIN(DATEADD(day, 1, l_shipdate)) AS first FROM lineitem",
        "SELECT max(l_receiptdate - l_shipdate) AS days, min(l_shipdate + INTERVAL 1 DAY) "
        "AS first FROM lineitem",
    ),
    Case(
        "tsql",
        "SELECT TOP 3 s_nationkey, COUNT(*) / 4 AS quarter FROM supplier GROUP BY s_nationkey "
        "ORDER BY s_nationkey",
        "SELECT s_nationkey, count(*) // 4 AS quarter FROM supplier GROUP BY s_nationkey "
        "ORDER BY s_nationkey LIMIT 3",
    ),
]
