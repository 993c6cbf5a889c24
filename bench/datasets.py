"""Tables the experiments need beyond TPC-H itself, written once and cached under
the data directory (`<data-dir>/derived/...`; a `.done` file beside each marks it
complete):

* `lineitem_parts`: TPC-H lineitem rewritten into files whose sizes follow given
  weights (32 equal files: many tasks; seven equal and one eight times larger:
  skew). Row groups of at most ROW_GROUP_ROWS rows, so a large file has several.
* `tiny_parts`: many 10-row files, for tasks that do almost nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench.progress import say
from duckfleet.local_fleet import generate_tpch
from duckfleet.table_files import expand_paths

ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size


def _fresh(path: Path) -> bool:
    """True if `path` must be (re)written; clears a half-written one."""
    if path.with_suffix(".done").exists():
        return False
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return True


def _quotas(total: int, weights: Sequence[float]) -> list[int]:
    """Rows per file: proportional to weights, summing exactly to total."""
    cuts = [round(total * sum(weights[: i + 1]) / sum(weights)) for i in range(len(weights))]
    return [b - a for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]


def lineitem_parts(data_dir: str, scale: float, name: str, weights: Sequence[float]) -> str:
    """lineitem at `scale`, in len(weights) files sized by weight; returns the folder."""
    root = generate_tpch(data_dir, scale, parts=4)
    out = Path(data_dir) / "derived" / f"sf{scale:g}" / name
    if not _fresh(out):
        return str(out)
    sources = [pq.ParquetFile(f) for f in expand_paths(str(Path(root) / "lineitem"))]
    quotas = _quotas(sum(s.metadata.num_rows for s in sources), weights)
    say(f"writing {name}: lineitem SF{scale:g} as {len(quotas)} files of {quotas} rows")
    batches = (b for s in sources for b in s.iter_batches(batch_size=ROW_GROUP_ROWS))
    pending: pa.RecordBatch | None = None
    for i, quota in enumerate(quotas):
        with pq.ParquetWriter(out / f"part-{i:03d}.parquet", sources[0].schema_arrow) as w:
            while quota > 0:
                if pending is None or pending.num_rows == 0:
                    pending = next(batches)
                take = min(quota, pending.num_rows)
                w.write_batch(pending.slice(0, take), row_group_size=ROW_GROUP_ROWS)
                pending, quota = pending.slice(take), quota - take
    out.with_suffix(".done").touch()
    return str(out)


def tiny_parts(data_dir: str, files: int, name: str = "tiny_parts") -> str:
    """`files` Parquet files of 10 rows each; returns the folder."""
    out = Path(data_dir) / "derived" / f"{name}_{files}"
    if not _fresh(out):
        return str(out)
    for i in range(files):
        table = pa.table({"id": pa.array(range(i * 10, i * 10 + 10), pa.int64()), "part": [i] * 10})
        pq.write_table(table, out / f"part-{i:04d}.parquet")
    out.with_suffix(".done").touch()
    return str(out)
