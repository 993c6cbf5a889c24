"""Run statistics, and result tables written as text, Markdown, CSV and plots."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Cell = str | int | float | None


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * p / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def fmt(value: Cell, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


@dataclass
class Table:
    """Rows of cells under named columns; `formats` gives each float column's digits."""

    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    digits: Mapping[str, int] = field(default_factory=dict)

    def add(self, *cells: Cell) -> None:
        assert len(cells) == len(self.columns), (cells, self.columns)
        self.rows.append(list(cells))

    def _shown(self) -> list[list[str]]:
        return [
            [fmt(c, self.digits.get(name, 1)) for name, c in zip(self.columns, r, strict=True)]
            for r in self.rows
        ]

    def _left(self, i: int) -> bool:
        """Names and statuses read from the left, numbers from the right."""
        return i == 0 or self.columns[i] in ("status", "case", "detail")

    def text(self) -> str:
        shown = self._shown()
        widths = [
            max([len(name)] + [len(r[i]) for r in shown]) for i, name in enumerate(self.columns)
        ]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(
                c.ljust(w) if self._left(i) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        out = [line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in shown]
        return "\n".join(out)

    def markdown(self) -> str:
        out = ["| " + " | ".join(self.columns) + " |"]
        out.append(
            "|"
            + "|".join(" --- " if self._left(i) else " ---: " for i in range(len(self.columns)))
            + "|"
        )
        out += ["| " + " | ".join(r) + " |" for r in self._shown()]
        return "\n".join(out)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            for r in self.rows:
                w.writerow(
                    ["" if c is None or (isinstance(c, float) and math.isnan(c)) else c for c in r]
                )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_markdown(
    path: Path,
    title: str,
    header: Mapping[str, str],
    table: Table,
    notes: Sequence[str] = (),
    image: str | None = None,
) -> None:
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += ["", table.markdown(), ""]
    if notes:
        lines += [*notes, ""]
    if image:
        lines += [f"![{title}]({image})", ""]
    path.write_text("\n".join(lines))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ratio_bars(
    path: Path,
    title: str,
    labels: Sequence[str],
    ratios: Sequence[float | None],
    statuses: Sequence[str],
    total: float | None,
    tasks: Sequence[int | None] | None = None,
) -> None:
    """One bar per query: duckfleet time / DuckDB time; queries that failed get none."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    xs = range(len(labels))
    heights = [
        r if r is not None and s == "OK" else 0.0 for r, s in zip(ratios, statuses, strict=True)
    ]
    colors = ["tab:blue" if s == "OK" else "tab:red" for s in statuses]
    ax.bar(xs, heights, color=colors)
    for x, h, s in zip(xs, heights, statuses, strict=True):
        ax.annotate(
            f"{h:.1f}" if s == "OK" else s,
            (x, h),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.axhline(1.0, color="black", linewidth=0.8)
    if total is not None:
        ax.axhline(
            total, color="tab:orange", linestyle="--", linewidth=1, label=f"total {total:.2f}x"
        )
        ax.legend(loc="upper right")
    ticks = list(labels)
    if tasks is not None:
        ticks = [
            f"{lab}\n{t if t is not None else '?'}t" for lab, t in zip(labels, tasks, strict=True)
        ]
        ax.set_xlabel("query, and its number of tasks in the fleet")
    ax.set_xticks(list(xs), ticks, rotation=0, fontsize=8)
    ax.set_ylabel("duckfleet / DuckDB (median time)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_cdf(path: Path, title: str, samples: Mapping[str, Sequence[float]]) -> None:
    """Cumulative distribution of each case's latencies, log time axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, values in samples.items():
        ordered = sorted(values)
        n = len(ordered)
        ax.step(
            ordered,
            [(i + 1) / n for i in range(n)],
            where="post",
            label=f"{name} (p50 {percentile(ordered, 50):.2f} ms)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    for q in (0.5, 0.95, 0.99):
        ax.axhline(q, color="grey", linewidth=0.5, linestyle=":")
    ax.grid(True, which="both", axis="x", linewidth=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
