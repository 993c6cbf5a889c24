"""Holistic aggregates on a real fleet: shuffled by the group key, answers exact.

One fleet for the module (etcd, a front door, two one-core workers, 48 KiB splits; the TPC-H
fixture at scale 0.01 plus `hol`, a derived table of 4 files with NULLs in both
group keys: `k` has 5 values, `h` about 1,500). For each aggregate family, grouped by
the low and the high cardinality key with ORDER BY, the fleet's answer through ADBC
equals DuckDB's in-process answer on the same files exactly (one thread, as a
one-core worker: floats then see a group's rows in file order on both sides), and
the query's record shows it ran as more than one task, and EXPLAIN as an exchange:
a fallback to one task cannot pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from fleet_fixture import records_for, run, start_fleet
from tpch_data import tpch_catalog

from duckfleet.catalog import Catalog
from duckfleet.control.catalog_store import CatalogStore
from duckfleet.local_fleet import LocalFleet
from duckfleet.planner.quoting import quote_ident, quote_literal
from duckfleet.table_files import describe_table
from duckfleet.verify import difference

ROWS_PER_FILE = 5000
HOL = (
    "SELECT i::BIGINT AS id, CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 5)::INTEGER END AS k, "
    "CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 1500)::INTEGER END AS h, "
    "CASE WHEN i % 13 = 0 THEN NULL ELSE ((i * 37) % 1000)::INTEGER END AS v, "
    "((i * 7919) % 10007) / 7.0 AS d, "
    # one most frequent value per group of k and of h (see the module docstring)
    "CASE WHEN i % 3 = 0 THEN 7 ELSE i % 50 END::INTEGER AS u, "
    "CASE WHEN i % 4 = 0 THEN NULL ELSE 's' || (i % 97) END AS s "
    "FROM range({start}, {end}) t(i)"
)

FAMILIES = {
    "quantiles": "MEDIAN(v) AS med, QUANTILE_CONT(d, 0.9) AS qc, "
    "QUANTILE_DISC(v, [0.1, 0.5, 0.9]) AS qd",
    "mode": "MODE(u) AS mo",
    "lists": "ARRAY_AGG(v ORDER BY id) AS av, LIST(s ORDER BY id DESC) AS ls, "
    "STRING_AGG(s, ',' ORDER BY id) AS sa, list_sort(ARRAY_AGG(id)) AS ids",
    "distinct": "COUNT(DISTINCT v) AS dv, COUNT(DISTINCT s) AS ds, SUM(DISTINCT v) AS sv",
    "mixed": "SUM(v) AS total, MEDIAN(d) AS md, COUNT(*) AS n",
}


def family_sql(family: str, key: str) -> str:
    if family == "variance_sets":
        return (
            f"SELECT {key}, v % 2 AS p, VAR_SAMP(d) AS vs, STDDEV_POP(v) AS sp, "
            f"GROUPING(v % 2) AS g FROM hol GROUP BY GROUPING SETS (({key}, v % 2), ({key})) "
            "ORDER BY 1 NULLS FIRST, g, 2 NULLS FIRST"
        )
    having = " HAVING COUNT(*) > 1" if family == "mixed" else ""
    return (
        f"SELECT {key}, {FAMILIES[family]} FROM hol GROUP BY {key}{having} "
        f"ORDER BY {key} NULLS FIRST"
    )


QUERIES = [
    pytest.param(family_sql(f, key), id=f"{f} by {key}")
    for f in (*FAMILIES, "variance_sets")
    for key in ("k", "h")
] + [
    pytest.param(
        "SELECT l_partkey, MEDIAN(l_extendedprice) AS m, COUNT(DISTINCT l_suppkey) AS s, "
        "COUNT(DISTINCT l_orderkey) AS o FROM lineitem GROUP BY l_partkey "
        "ORDER BY m DESC, l_partkey LIMIT 25",
        id="tpch lineitem by l_partkey, top 25",
    )
]


@pytest.fixture(scope="module")
def data(tpch_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    out = tmp_path_factory.mktemp("hol") / "hol"
    out.mkdir()
    with duckdb.connect() as con:
        for n in range(4):
            query = HOL.format(start=n * ROWS_PER_FILE, end=(n + 1) * ROWS_PER_FILE)
            con.execute(f"COPY ({query}) TO '{out}/hol.{n + 1}.parquet' (FORMAT parquet)")
    return Catalog(tables={**tpch_catalog(tpch_dir).tables, "hol": describe_table("hol", str(out))})


@pytest.fixture(scope="module")
def fleet(etcd, tpch_dir, data, tmp_path_factory) -> Iterator[LocalFleet]:
    # splits of 48 KiB: hol's files (about 100 KB) are worth a stage inside a statement too
    f = start_fleet(
        etcd,
        str(tpch_dir),
        str(tmp_path_factory.mktemp("holistic-logs")),
        extra_env={"DUCKFLEET_SPLIT_BYTES": str(48 * 1024)},
    )
    try:
        store = f.store()
        try:
            CatalogStore(store).put_table(data.tables["hol"])
        finally:
            store.close()
        yield f
    finally:
        f.stop()


def reference(catalog: Catalog, sql: str) -> pa.Table:
    with duckdb.connect(config={"threads": 1}) as con:
        for table in catalog.tables.values():
            files = ", ".join(quote_literal(f.path) for f in table.files)
            con.execute(
                f"CREATE VIEW {quote_ident(table.name)} AS SELECT * FROM read_parquet([{files}])"
            )
        return con.sql(sql).to_arrow_table()


QUERIES += [
    pytest.param(
        "SELECT t.*, n_name FROM (SELECT h % 25 AS nk, MEDIAN(v) AS m, "
        "STRING_AGG(s, ';' ORDER BY id) AS sa FROM hol GROUP BY h % 25) t "
        "LEFT JOIN nation ON nk = n_nationkey WHERE m > 400 ORDER BY nk NULLS FIRST",
        id="derived table by h % 25, joined to nation",
    )
]


@pytest.mark.parametrize("sql", QUERIES)
def test_fleet_answer_is_exact_and_shuffled(fleet: LocalFleet, data: Catalog, sql: str) -> None:
    plan = run(fleet.uri, f"EXPLAIN {sql}").to_pylist()
    said = [r["detail"] for r in plan if r["kind"] in ("plan", "note")]
    assert any("shuffled by hash(" in d for d in said), said
    kinds = [r["kind"] for r in plan if r["task"] is not None]
    assert kinds.count("shuffle") >= 2 and kinds.count("partial") >= 2, kinds
    answer = run(fleet.uri, sql)
    diff = difference(answer, reference(data, sql), ordered=True, rel_tol=0, abs_tol=0)
    assert diff is None, diff
    (record,) = records_for(fleet, sql)
    assert record.ntasks == len(kinds) and record.ntasks > 2


def test_without_group_by_one_task_and_explain_says_why(fleet: LocalFleet, data: Catalog) -> None:
    sql = "SELECT MEDIAN(v) AS m, COUNT(DISTINCT s) AS ds, COUNT(DISTINCT h) AS dh FROM hol"
    plan = run(fleet.uri, f"EXPLAIN {sql}").to_pylist()
    assert plan[0]["detail"] == (
        "one task: MEDIAN cannot be merged exactly; it needs every row of a group in one "
        "task, and without GROUP BY all rows are one group"
    )
    assert [r["kind"] for r in plan if r["task"] is not None] == ["single"]
    diff = difference(run(fleet.uri, sql), reference(data, sql), ordered=False)
    assert diff is None, diff
