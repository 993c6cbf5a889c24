"""The query page's HTML: pure functions from the fleet's records to strings.

Nothing here reads etcd, the clock or the network: the caller passes what was read
(control/fleet_snapshot.py) and `now`. Every text that came from a record or a
request is escaped with html.escape; the pages use no script and load nothing but
themselves (the style is inline, the timeline is inline SVG).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import quote

from duckfleet.control.fleet_snapshot import (
    DONE,
    RUNNING_TASK,
    QueryDetail,
    QueryView,
    TaskView,
    WorkerView,
)
from duckfleet.control.records import QueryState
from duckfleet.ui.access import Viewer

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 8px 16px; display: flex; gap: 16px;
  align-items: baseline; }
header a { color: #cfe0ff; text-decoration: none; } header .who { margin-left: auto; }
main { padding: 12px 16px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid #e3e6eb; padding: 4px 8px; text-align: left;
  vertical-align: top; }
th { background: #eef1f5; font-weight: 600; } td.num { text-align: right;
  font-variant-numeric: tabular-nums; }
pre { background: #fff; border: 1px solid #e3e6eb; padding: 8px; white-space: pre-wrap;
  max-width: 100em; }
.state { padding: 1px 6px; border-radius: 3px; font-size: 12px; color: #fff; }
.running { background: #2f6fd6; } .finished { background: #2e8540; }
.failed { background: #b3261e; } .cancelled { background: #7a5c00; }
.waiting { background: #8a93a3; } .done { background: #2e8540; }
.bar { display: inline-block; width: 120px; height: 10px; background: #e3e6eb;
  vertical-align: middle; } .bar span { display: block; height: 10px; background: #2f6fd6; }
.error { color: #b3261e; } .muted { color: #6b7385; } .sql { max-width: 40em; }
button.cancel { background: #b3261e; color: #fff; border: 0; padding: 6px 14px;
  border-radius: 3px; cursor: pointer; }
svg text { font: 11px system-ui, sans-serif; fill: #1d2330; }
"""

PALETTE = ("#2f6fd6", "#e07b00", "#2e8540", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d")


def page(title: str, body: str, viewer: Viewer, *, refresh: int | None = None) -> str:
    """A whole HTML document around `body` (already HTML)."""
    who = (
        f"{escape(viewer.user)} ({'admin' if viewer.is_admin else 'user'})"
        if viewer.user
        else "auth off: every query is shown"
    )
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"{meta}<title>{escape(title)} · duckfleet</title><style>{STYLE}</style></head>"
        "<body><header><strong>duckfleet</strong>"
        '<a href="/">queries</a><a href="/workers">workers</a>'
        f'<span class="who">{who}</span></header>'
        f"<main>{body}</main></body></html>\n"
    )


def error_page(status: int, message: str, viewer: Viewer | None = None) -> str:
    body = f'<h1>{status}</h1><p class="error">{escape(message)}</p>'
    return page(f"{status}", body, viewer or Viewer("", False))


# -- small pieces ----------------------------------------------------------------


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {s:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # not reached


def fmt_count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def state_badge(state: str) -> str:
    return f'<span class="state {escape(state)}">{escape(state)}</span>'


def progress_bar(done: int, total: int) -> str:
    share = 0.0 if total <= 0 else min(1.0, done / total)
    return (
        f'<span class="bar" title="{done} of {total} tasks done">'
        f'<span style="width:{share * 100:.1f}%"></span></span> {done} / {total}'
    )


def elapsed(view: QueryView, now: float) -> float | None:
    """Seconds the query has run (running) or ran (ended, when its end is known)."""
    if view.status.state == QueryState.RUNNING:
        return max(0.0, now - view.record.created)
    if view.status.at:
        return max(0.0, view.status.at - view.record.created)
    return None


def query_href(query_id: str) -> str:
    return f"/query/{quote(query_id, safe='')}"


def short_sql(sql: str, limit: int = 120) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def worker_colors(workers: Iterable[str]) -> dict[str, str]:
    """A colour per worker, distinct for up to len(PALETTE) of them, in name order."""
    return {w: PALETTE[i % len(PALETTE)] for i, w in enumerate(sorted(set(workers)))}


# -- the pages -------------------------------------------------------------------


def queries_page(queries: Sequence[QueryView], viewer: Viewer, now: float) -> str:
    """Running and recent queries (the caller passes only those `viewer` may see)."""
    running = [q for q in queries if q.status.state == QueryState.RUNNING]
    recent = [q for q in queries if q.status.state != QueryState.RUNNING]
    body = (
        f"<h1>Queries</h1><h2>Running ({len(running)})</h2>{_query_table(running, now)}"
        f"<h2>Recent ({len(recent)})</h2>{_query_table(recent, now)}"
        '<p class="muted">Recent: queries whose records etcd still holds (the query '
        "timeout plus the result retention time). The page refreshes every 2 s.</p>"
    )
    return page("queries", body, viewer, refresh=2)


def _query_table(queries: Sequence[QueryView], now: float) -> str:
    if not queries:
        return '<p class="muted">none</p>'
    rows = "".join(
        "<tr>"
        f'<td><a href="{escape(query_href(q.record.id))}">{escape(q.record.id)}</a></td>'
        f"<td>{escape(q.record.user) or '<span class=muted>—</span>'}</td>"
        f"<td>{state_badge(str(q.status.state))}</td>"
        f'<td class="num">{fmt_seconds(elapsed(q, now))}</td>'
        f"<td>{progress_bar(q.done, q.total)}</td>"
        f'<td class="sql"><code>{escape(short_sql(q.record.sql))}</code></td>'
        "</tr>"
        for q in queries
    )
    return (
        '<table class="queries"><tr><th>query</th><th>user</th><th>state</th>'
        "<th>elapsed</th><th>progress (tasks)</th><th>SQL</th></tr>"
        f"{rows}</table>"
    )


def query_page(detail: QueryDetail, viewer: Viewer, now: float, cancel_token: str = "") -> str:
    """One query: what it is, its stages and tasks on a timeline, the cancel button
    for an admin while it runs."""
    q = detail.query
    r, status = q.record, q.status
    facts = [
        ("state", state_badge(str(status.state))),
        ("user", escape(r.user) or '<span class="muted">—</span>'),
        ("elapsed", fmt_seconds(elapsed(q, now))),
        ("progress", progress_bar(q.done, q.total) + f", {q.running} running"),
        ("front door", escape(r.frontdoor)),
        ("priority", str(r.priority)),
    ]
    if r.timeout:
        facts.append(("timeout", fmt_seconds(r.timeout)))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    parts = [f"<h1>Query {escape(r.id)}</h1>", f'<table class="facts">{table}</table>']
    if status.error:
        parts.append(f'<p class="error">{escape(status.error)}</p>')
    if viewer.may_cancel and status.state == QueryState.RUNNING:
        parts.append(
            f'<form method="post" action="{escape(query_href(r.id))}/cancel">'
            f'<input type="hidden" name="token" value="{escape(cancel_token)}">'
            '<button class="cancel" id="cancel" type="submit">Cancel query</button></form>'
        )
    parts.append(f"<h2>SQL</h2><pre>{escape(r.sql)}</pre>")
    parts.append("<h2>Timeline</h2>" + timeline_svg(detail, now))
    for stage, tasks in _stages(detail.tasks):
        parts.append(f"<h2>Stage {stage} ({len(tasks)} task{'s' * (len(tasks) != 1)})</h2>")
        parts.append(_task_table(tasks, r.created))
    refresh = 2 if status.state == QueryState.RUNNING else None
    return page(f"query {r.id}", "".join(parts), viewer, refresh=refresh)


def _stages(tasks: Iterable[TaskView]) -> list[tuple[int, list[TaskView]]]:
    by_stage: dict[int, list[TaskView]] = {}
    for t in tasks:
        by_stage.setdefault(t.stage, []).append(t)
    return sorted(by_stage.items())


def _task_seconds(t: TaskView, now: float) -> float | None:
    if t.state == DONE:
        return t.seconds
    if t.state == RUNNING_TASK and t.started is not None:
        return max(0.0, now - t.started)
    return None


def _task_table(tasks: Sequence[TaskView], created: float) -> str:
    rows = []
    for t in tasks:
        start = "—" if t.started is None else "+" + fmt_seconds(max(0.0, t.started - created))
        inputs = ", ".join(escape(i) for i in t.inputs) or '<span class="muted">tables</span>'
        rows.append(
            f'<tr class="task" data-task="{escape(t.id)}">'
            f"<td>{escape(t.id)}</td><td>{state_badge(t.state)}</td>"
            f"<td>{escape(t.worker) or '—'}</td>"
            f'<td class="num">{fmt_count(t.rows)}</td><td class="num">{fmt_bytes(t.bytes)}</td>'
            f'<td class="num">{fmt_seconds(t.seconds) if t.state == DONE else "—"}</td>'
            f'<td class="num">{start}</td><td>{inputs}</td>'
            f"<td><details><summary>fragment</summary><pre>{escape(t.sql)}</pre></details></td>"
            "</tr>"
        )
    return (
        '<table class="tasks"><tr><th>task</th><th>state</th><th>worker</th><th>rows</th>'
        "<th>bytes</th><th>time</th><th>started</th><th>inputs</th><th>SQL</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def timeline_svg(detail: QueryDetail, now: float, width: int = 900) -> str:
    """Each task that started as a bar from its start to its end (or now), on one
    axis from the query's start; a row per task, grouped by stage, coloured by worker."""
    q = detail.query
    t0 = q.record.created
    spans = []
    for t in detail.tasks:
        if t.started is None:
            continue
        seconds = _task_seconds(t, now) or 0.0
        spans.append((t, max(0.0, t.started - t0), seconds))
    if not spans:
        return '<p class="muted">no task has started yet</p>'
    end = max(s + d for _, s, d in spans)
    if q.status.state == QueryState.RUNNING:
        end = max(end, now - t0)
    elif q.status.at:
        end = max(end, q.status.at - t0)
    end = max(end, 0.001)
    colors = worker_colors(t.worker for t, _, _ in spans)
    label_w, row_h, top = 150, 16, 18
    plot_w = width - label_w - 10
    height = top + row_h * len(spans) + 4
    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="tasks over time">'
    ]
    for i in range(5):  # the time axis
        x = label_w + plot_w * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height}" stroke="#e3e6eb"/>'
            f'<text x="{x:.1f}" y="{top - 6}" text-anchor="{anchor}">'
            f"{escape(fmt_seconds(end * i / 4))}</text>"
        )
    for row, (t, start, seconds) in enumerate(spans):
        y = top + row * row_h
        x = label_w + plot_w * start / end
        w = max(1.0, plot_w * seconds / end)
        color = colors[t.worker]
        tip = f"{t.id} on {t.worker or '?'}: {fmt_seconds(seconds)}"
        if t.rows is not None:
            tip += f", {t.rows:,} rows, {fmt_bytes(t.bytes)}"
        opacity = "1" if t.state == DONE else "0.55"
        out.append(
            f'<text x="4" y="{y + 11}">stage {t.stage} · {escape(t.id)}</text>'
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" '
            f'fill="{color}" fill-opacity="{opacity}"><title>{escape(tip)}</title></rect>'
        )
    out.append("</svg>")
    legend = " ".join(
        f'<span style="color:{c}">■</span> {escape(w)}' for w, c in colors.items() if w
    )
    return "".join(out) + f'<p class="muted">{legend}</p>'


def workers_page(workers: Sequence[WorkerView], viewer: Viewer, now: float) -> str:
    """The workers and their slots: busy (a claim held) or free."""
    if not workers:
        body = '<h1>Workers</h1><p class="muted">no worker has joined the fleet</p>'
        return page("workers", body, viewer, refresh=2)
    rows = []
    for w in workers:
        slots = max(w.info.slots, len(w.running))
        cells = "".join(
            f'<span class="slot {"busy" if i < len(w.running) else "free"}" '
            f'style="display:inline-block;width:14px;height:14px;margin-right:2px;'
            f'background:{"#2f6fd6" if i < len(w.running) else "#e3e6eb"}"></span>'
            for i in range(slots)
        )
        tasks = ", ".join(
            f'<a href="{escape(query_href(q))}">{escape(q)}</a>/{escape(t)}'
            if viewer.is_admin
            else escape(t)
            for q, t in w.running
        )
        up = fmt_seconds(max(0.0, now - w.info.started)) if w.info.started else "—"
        rows.append(
            f'<tr class="worker"><td>{escape(w.info.id)}</td><td>{escape(w.info.location)}</td>'
            f'<td class="num">{len(w.running)} / {w.info.slots}</td><td>{cells}</td>'
            f'<td class="num">{up}</td><td>{tasks or "—"}</td></tr>'
        )
    body = (
        f"<h1>Workers ({len(workers)})</h1>"
        '<table class="workers"><tr><th>worker</th><th>location</th><th>busy / slots</th>'
        "<th>slots</th><th>up</th><th>running tasks</th></tr>" + "".join(rows) + "</table>"
    )
    return page("workers", body, viewer, refresh=2)
