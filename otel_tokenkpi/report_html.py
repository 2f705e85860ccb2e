"""``otel-tokenkpi report FILE --html OUT.html``: the report as one page a team lead can forward.

One self-contained file: inline CSS and inline SVG charts, no script, no external style, font or image,
so it opens from disk, offline, in any browser, and prints. It leads with what the tokens bought
(tokens and cost per successful task, waste share) and a short "what to fix first" list computed from
the data, then: tokens per success by group (``--by``, else by task), waste by kind, by model and over
time, the costliest tasks with their waste, and the tool schemas that were offered and never used.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from html import escape

from . import _svg_charts as charts
from ._fix_first import fixes, money, per_period
from ._report_tables import KIND_LABELS, num, pct
from .report import KINDS, NONE_GROUP, Report, TaskTotals
from .version import __version__

__all__ = ["render_html", "write_html"]

KIND_COLORS = {
    "uncached_resent": "#e45756",
    "duplicate_tool_call": "#f58518",
    "truncated_output": "#d4a017",
    "repeated_request": "#4c78a8",
    "failed_call": "#9d755d",
}
# Bucket widths for "waste over time", the first that gives at most MAX_COLUMNS columns is used.
WIDTHS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400, 30 * 86_400)
MAX_COLUMNS = 48
MAX_ROWS = 15

CSS = """
:root { color-scheme: light; --ink:#1d2433; --muted:#5b6475; --line:#e3e6ec; --card:#f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 980px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-top: 14px; border-top: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.card { background: var(--card); border-radius: 8px; padding: 12px 14px; }
.card .v { font-size: 24px; font-weight: 650; }
.card .k { color: var(--muted); font-size: 13px; }
ol.fixes { padding-left: 22px; margin: 0; }
ol.fixes li { margin: 0 0 10px; }
ol.fixes .what { font-weight: 600; }
ol.fixes .why { color: var(--muted); display: block; }
table { border-collapse: collapse; width: 100%; margin: 10px 0 4px; font-size: 13.5px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
th { color: var(--muted); font-weight: 600; }
td.id { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 11px;
        white-space: normal; word-break: break-all; min-width: 120px; }
.chart { display: block; max-width: 100%; height: auto; margin: 8px 0; }
.chart .lbl, .chart .val, .chart .tick { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       fill: var(--ink); }
.chart .tick { fill: var(--muted); }
.chart .axis { stroke: #aab; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; color: var(--muted); }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px;
          vertical-align: -1px; }
.note { color: var(--muted); font-size: 13px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12.5px; }
@media print { h2 { break-after: avoid; } .chart, table { break-inside: avoid; } }
"""


def usd(value: float | None) -> str:
    return "-" if value is None else money(value)


def _time(ns: int | None, with_time: bool = True) -> str:
    if ns is None:
        return "-"
    moment = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], id_columns: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="id">{escape(cell)}</td>' if i in id_columns else f"<td>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cards(report: Report) -> str:
    tasks = report.tasks()
    calls = report.calls
    decided = tasks.successes + tasks.failures
    cards = [
        (num(tasks.tokens_per_success), "tokens per successful task"),
        (usd(tasks.cost_per_success), "cost per successful task"),
        (pct(calls.waste_ratio), f"of {num(calls.billed)} billed tokens were waste"),
        (
            pct(tasks.successes / decided if decided else None),
            f"success rate ({num(tasks.successes)} of {num(decided)})",
        ),
        (usd(calls.cost_usd), f"spent on {num(calls.calls)} model calls, {usd(calls.waste_cost_usd)} of it waste"),
    ]
    items = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>' for v, k in cards
    )
    return f'<section class="cards" id="kpis">{items}</section>'


def _fixes(report: Report) -> str:
    found = fixes(report)
    if not found:
        return '<h2 id="fix-first">What to fix first</h2><p class="note">No waste found: nothing to fix.</p>'
    items = "".join(
        f'<li><span class="what">{escape(fix.title)}</span><span class="why">{escape(fix.detail)}</span></li>'
        for fix in found
    )
    _, unit = per_period(report)
    scope = "per day" if unit == "/day" else "over the period covered"
    return (
        f'<h2 id="fix-first">What to fix first</h2><ol class="fixes">{items}</ol>'
        f'<p class="note">Ranked by what each would save {scope}; estimated from the spans\' waste attributes.</p>'
    )


def _ordered(rows: list[tuple[str, TaskTotals]]) -> list[tuple[str, TaskTotals]]:
    def order(row: tuple[str, TaskTotals]) -> tuple[int, float, str]:
        per_success = row[1].tokens_per_success
        return (0, per_success, row[0]) if per_success is not None else (1, -row[1].tokens, row[0])

    return sorted(rows, key=order)


def _groups(report: Report) -> str:
    if report.by is not None:
        title = f"Tokens per success by {report.by}"
        groups = report.by_group()
        rows = [(name, totals) for name, totals, _ in groups]
        top_kinds = {name: calls.top_kind for name, _, calls in groups}
        note = "" if report.group_seen else f"No span carries {report.by!r}: everything is in {NONE_GROUP}. "
    else:
        title = "Tokens per success by task"
        rows = _ordered(list(report.by_task.items()))
        top_kinds = {}
        note = "Pass --by ATTR (e.g. team, feature, service.name) to compare groups. "
    if not rows:
        return f'<h2 id="groups">{escape(title)}</h2><p class="note">No tasks (roll-up spans) in the input.</p>'
    shown = rows[:MAX_ROWS]
    chart_rows = [
        (name, t.tokens_per_success, f"{name}: {num(t.tokens_per_success)} tokens per success")
        for name, t in shown
        if t.tokens_per_success is not None
    ]
    chart = charts.bars(chart_rows, label=title) if chart_rows else ""
    table = _table(
        [
            "group" if report.by else "task",
            "tasks",
            "successes",
            "tokens/success",
            "waste%",
            "cost/success",
            "top waste",
        ],
        [
            [
                name,
                num(t.tasks),
                num(t.successes),
                num(t.tokens_per_success),
                pct(t.waste_ratio),
                usd(t.cost_per_success),
                KIND_LABELS.get(top_kinds.get(name) or "", "-"),
            ]
            for name, t in shown
        ],
    )
    more = f"{len(rows) - MAX_ROWS} more not shown. " if len(rows) > MAX_ROWS else ""
    return (
        f'<h2 id="groups">{escape(title)}</h2>{chart}{table}'
        f'<p class="note">{escape(note + more)}Best first; groups without a success last. Late outcomes '
        f"(record_outcome after the task) count with their task.</p>"
    )


def _kinds(report: Report) -> str:
    calls = report.calls
    kinds = calls.kinds
    ordered = sorted(KINDS, key=lambda k: -kinds[k])
    rows = [
        (
            KIND_LABELS[k],
            float(kinds[k]),
            f"{KIND_LABELS[k]}: {kinds[k]:,} tokens in {calls.calls_with_kind[k]:,} calls",
        )
        for k in ordered
    ]
    chart = charts.bars(rows, label="Waste tokens by kind", colors=[KIND_COLORS[k] for k in ordered])
    table = _table(
        ["kind", "tokens", "share of waste", "calls"],
        [
            [
                KIND_LABELS[k],
                num(kinds[k]),
                pct(kinds[k] / calls.waste_tokens if calls.waste_tokens else None),
                num(calls.calls_with_kind[k]),
            ]
            for k in ordered
        ],
    )
    return (
        f'<h2 id="kinds">Waste by kind</h2>{chart}{table}'
        f'<p class="note">Waste is {escape(pct(calls.waste_ratio))} of {escape(num(calls.billed))} billed tokens. '
        f"The kinds never overlap: they add up to the waste total.</p>"
    )


def _models(report: Report) -> str:
    models = sorted(report.by_model.items(), key=lambda item: -item[1].waste_tokens)[:MAX_ROWS]
    if not models:
        return ""
    names = [KIND_LABELS[k] for k in KINDS]
    colors = [KIND_COLORS[k] for k in KINDS]
    chart = charts.stacked_bars(
        [(model, [c.kinds[k] for k in KINDS], f"{c.waste_tokens:,} ({pct(c.waste_ratio)})") for model, c in models],
        names=names,
        colors=colors,
        label="Waste by model and kind",
    )
    table = _table(
        ["model", "calls", "errors", "input", "output", "cached", "waste", "waste%", "cost", "waste cost"],
        [
            [
                model,
                num(c.calls),
                num(c.errors),
                num(c.input_tokens),
                num(c.output_tokens),
                num(c.cache_read_tokens),
                num(c.waste_tokens),
                pct(c.waste_ratio),
                usd(c.cost_usd),
                usd(c.waste_cost_usd),
            ]
            for model, c in models
        ],
    )
    return f'<h2 id="models">Waste by model</h2>{charts.legend(names, colors)}{chart}{table}'


def _over_time(report: Report) -> str:
    if report.first_ns is None or report.last_ns is None:
        return ""
    period_s = max(report.period_ns / 1e9, 1)
    width_s = next((w for w in WIDTHS_S if period_s / w <= MAX_COLUMNS), WIDTHS_S[-1])
    width_ns = width_s * 10**9
    series = dict(report.timeline.series(width_ns))
    first = report.first_ns // width_ns * width_ns
    with_time = width_s < 86_400
    if report.last_ns < first + width_ns:  # one column says nothing about time
        return (
            '<h2 id="over-time">Waste over time</h2><p class="note">Every model call started within one '
            f"{escape(_unit(width_s))}: nothing to plot over time.</p>"
        )
    buckets = []
    for start in range(first, report.last_ns + 1, width_ns):
        values = series.get(start, [0] * (4 + len(KINDS)))
        moment = dt.datetime.fromtimestamp(start / 1e9, tz=dt.timezone.utc)
        buckets.append((moment.strftime("%m-%d %H:%M" if with_time else "%Y-%m-%d"), values[4:]))
    names = [KIND_LABELS[k] for k in KINDS]
    colors = [KIND_COLORS[k] for k in KINDS]
    chart = charts.columns(buckets, names=names, colors=colors, label="Waste tokens over time, by kind")
    unit = _unit(width_s)
    return (
        f'<h2 id="over-time">Waste over time</h2>{charts.legend(names, colors)}{chart}'
        f'<p class="note">Waste tokens of model calls per {escape(unit)} (UTC), by the call\'s start.</p>'
    )


def _unit(width_s: int) -> str:
    if width_s < 3600:
        return f"{width_s // 60} min"
    return f"{width_s // 3600} h" if width_s < 86_400 else f"{width_s // 86_400} d"


def _costliest(report: Report) -> str:
    runs = report.top_tasks()
    if not runs:
        return ""
    rows = []
    for run in runs:
        r = run.rollup
        outcome = r.outcome or ""
        if run.late_outcomes:
            late = "late " + ", ".join(run.late_outcomes)
            outcome = f"{outcome}, {late}" if outcome else late
        rows.append(
            [
                run.label.name,
                run.label.group if run.label.group != NONE_GROUP else "",
                _time(run.start),
                num(r.llm_calls),
                num(r.tokens),
                f"{num(r.waste_tokens)} ({pct(r.waste_tokens / r.tokens if r.tokens else None)})",
                usd(r.cost_usd),
                outcome or "-",
                run.trace_id,
            ]
        )
    headers = ["task", report.by or "group", "started", "calls", "tokens", "waste", "cost", "outcome", "trace id"]
    return (
        f'<h2 id="costliest">Costliest tasks</h2>{_table(headers, rows, id_columns=(8,))}'
        f'<p class="note">The {len(rows)} most expensive task runs (outermost roll-ups; by cost, then tokens). '
        f"Look the trace id up in your tracing backend.</p>"
    )


def _unused_tools(report: Report) -> str:
    rows = [(name, t) for name, t in report.by_task.items() if t.unused_tool_definitions_tokens > 0]
    tasks = [row for row in rows if row[1].is_task] or rows
    if not tasks:
        return (
            '<h2 id="unused-tools">Unused tool schemas</h2>'
            '<p class="note">Every tool offered was called at least once in its task.</p>'
        )
    tasks.sort(key=lambda row: -row[1].unused_tool_definitions_tokens)
    table = _table(
        ["task", "runs", "unused schema tokens", "per run", "tools never called"],
        [
            [
                name,
                num(t.tasks),
                num(t.unused_tool_definitions_tokens),
                num(t.unused_tool_definitions_tokens / t.tasks if t.tasks else None),
                ", ".join(
                    f"{tool} ({runs:,}/{t.tasks:,} runs)"
                    for tool, runs in sorted(t.unused_tools.items(), key=lambda item: (-item[1], item[0]))[:6]
                )
                or "(names not recorded)",
            ]
            for name, t in tasks[:MAX_ROWS]
        ],
    )
    return (
        f'<h2 id="unused-tools">Unused tool schemas</h2>{table}'
        f'<p class="note">Tokens of tool definitions sent with every call of a task that no call of it used '
        f"(beside the waste total, not in it).</p>"
    )


def render_html(report: Report, title: str = "spans") -> str:
    """The page for a finished report."""
    tasks = report.tasks()
    period = f"{_time(report.first_ns)} to {_time(report.last_ns)}" if report.first_ns is not None else "no model calls"
    files = f"{len(report.files)} files" if len(report.files) > 1 else os.path.basename(title)
    late = f", {report.late_outcomes:,} late outcomes" if report.late_outcomes else ""
    sub = f"{files}: {report.spans:,} spans, {report.calls.calls:,} model calls, {tasks.tasks:,} tasks{late}. {period}."
    sections = [_cards(report), _fixes(report), _groups(report), _kinds(report), _models(report)]
    sections += [_over_time(report), _costliest(report), _unused_tools(report)]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>What the tokens bought: {escape(os.path.basename(title))}</title><style>{CSS}</style></head>"
        f'<body><main><h1>What the tokens bought</h1><p class="sub">{escape(sub)}</p>'
        + "".join(sections)
        + f"<footer>otel-tokenkpi {escape(__version__)} report. Waste: tokens that bought nothing (history re-sent "
        "without prompt caching, duplicate tool calls, answers cut off at max_tokens, identical requests sent "
        "again, failed calls). Tokens per success: input + output tokens of the tasks over their successful "
        "outcomes (record_outcome). Costs are estimates from list prices.</footer></main></body></html>\n"
    )


def write_html(report: Report, path: str | os.PathLike[str], title: str = "spans") -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(render_html(report, title))
