"""Run statistics, and result tables written as text, Markdown, CSV and plots."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
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
    sections: Sequence[tuple[str, Table]] = (),
) -> None:
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += ["", table.markdown(), ""]
    for heading, more in sections:
        lines += [f"## {heading}", "", more.markdown(), ""]
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


def publish(
    out: Path,
    name: str,
    title: str,
    header: Mapping[str, str],
    table: Table,
    plot: Callable[[Path], None],
    *,
    csv_table: Table | None = None,
    sections: Sequence[tuple[str, Table]] = (),
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Print `table` (and `sections`), write <name>.md, <name>.csv (`csv_table`, else
    `table`) and <name>.png (drawn by `plot`) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    print(f"\n{title}\n{table.text()}")
    for heading, more in sections:
        print(f"\n{heading}\n{more.text()}")
    paths = {"md": out / f"{name}.md", "csv": out / f"{name}.csv", "png": out / f"{name}.png"}
    (csv_table or table).write_csv(paths["csv"])
    plot(paths["png"])
    write_markdown(
        paths["md"], title, header, table, notes, image=paths["png"].name, sections=sections
    )
    return paths


def grouped_bars(
    path: Path,
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    ylabel: str,
    *,
    log: bool = False,
    hline: float | None = None,
) -> None:
    """One group of bars per label, one bar per series; None draws no bar."""
    plt = _pyplot()
    wide = 0.22 * len(labels) * max(1, len(series)) + 2
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, wide)), 4.5))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=name)
    if hline is not None:
        ax.axhline(hline, color="black", linewidth=0.8)
    if log:
        ax.set_yscale("log")
    ax.set_xticks(list(range(len(labels))), list(labels), fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def lines(
    path: Path,
    title: str,
    xs: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    xlabel: str,
    ylabel: str,
    *,
    right: Mapping[str, Sequence[float | None]] | None = None,
    right_label: str = "",
) -> None:
    """One line per series over `xs`; `right` series on a second y axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, values in series.items():
        ax.plot(xs, [math.nan if v is None else v for v in values], marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, linewidth=0.3)
    handles, names = ax.get_legend_handles_labels()
    if right:
        ax2 = ax.twinx()
        for name, values in right.items():
            ax2.plot(
                xs, [math.nan if v is None else v for v in values], "--", marker="s", label=name
            )
        ax2.set_ylabel(right_label)
        h2, n2 = ax2.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    ax.legend(handles, names, fontsize=8, loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass(frozen=True)
class Span:
    """A stretch of time on one lane (a worker), seconds from a common start."""

    lane: str
    start: float
    end: float
    label: str = ""
    lost: bool = False  # its work was thrown away (worker killed)


def timelines(
    path: Path,
    panels: Sequence[tuple[str, Sequence[Span], Sequence[tuple[float, str]]]],
) -> None:
    """One Gantt panel per (title, spans, markers): a row per lane, a bar per span,
    a vertical line per (time, label) marker."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.2 + 1.6 * len(panels)), squeeze=False)
    end = max((s.end for _, spans, _ in panels for s in spans), default=1.0)
    end = max([end] + [t for _, _, marks in panels for t, _ in marks])
    for ax, (title, spans, marks) in zip(axes[:, 0], panels, strict=True):
        lanes = sorted({s.lane for s in spans})
        for row, lane in enumerate(lanes):
            mine = [s for s in spans if s.lane == lane]
            ax.broken_barh(
                [(s.start, max(s.end - s.start, 0.002)) for s in mine],
                (row - 0.35, 0.7),
                facecolors=["tab:red" if s.lost else "tab:blue" for s in mine],
                edgecolor="white",
                linewidth=0.5,
            )
        for t, label in marks:
            ax.axvline(t, color="tab:orange", linestyle="--", linewidth=1)
            ax.annotate(
                label,
                (t, len(lanes) - 0.5),
                fontsize=7,
                xytext=(3, 0),
                textcoords="offset points",
                va="top",
            )
        ax.set_yticks(list(range(len(lanes))), lanes, fontsize=8)
        ax.set_xlim(0, end * 1.02)
        ax.set_ylim(-0.6, max(len(lanes), 1) - 0.4)
        ax.set_title(title, fontsize=9)
        ax.grid(True, axis="x", linewidth=0.3)
    axes[-1, 0].set_xlabel("seconds since the query was sent")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
