"""The report's tables as text: first column left-aligned, numbers right-aligned, cells without spaces
where they are numbers, so a script can split a row on runs of two spaces."""

from __future__ import annotations

from collections.abc import Sequence

from .report import KINDS, Report

KIND_LABELS = {
    "failed_call": "failed calls",
    "repeated_request": "repeated requests",
    "truncated_output": "truncated output",
    "duplicate_tool_call": "duplicate tool calls",
    "uncached_resent": "uncached re-sent context",
}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (headers, *rows)
    ]


def num(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if value >= 100 else f"${value:.6f}"


def summary(report: Report, name: str) -> list[str]:
    tasks = report.tasks()
    files = f" ({len(report.files)} files)" if len(report.files) > 1 else ""
    lines = [
        f"{name}{files}: {report.spans:,} spans in {report.lines:,} lines; "
        f"{report.calls.calls:,} model calls, {tasks.tasks:,} tasks"
    ]
    if report.late_outcomes:
        matched = report.late_outcomes - report.late_unmatched
        unmatched = (
            f", {report.late_unmatched:,} not counted (their task is not in the input)" if report.late_unmatched else ""
        )
        lines.append(
            f"late outcomes: {report.late_outcomes:,} (record_outcome after the task): {matched:,} counted with "
            f"their tasks{unmatched}"
        )
    return lines


def by_model(report: Report) -> list[str]:
    rows = []
    for model, c in sorted(report.by_model.items(), key=lambda item: -item[1].waste_tokens):
        rows.append(
            [
                model,
                num(c.calls),
                num(c.errors),
                num(c.input_tokens),
                num(c.output_tokens),
                num(c.cache_read_tokens),
                num(c.waste_tokens),
                pct(c.waste_tokens / c.billed if c.billed else None),
                usd(c.cost_usd),
                usd(c.waste_cost_usd),
            ]
        )
    headers = ["model", "calls", "errors", "input", "output", "cached", "waste", "waste%", "cost", "waste_cost"]
    return ["Waste by model", *table(headers, rows)]


def by_kind(report: Report) -> list[str]:
    c = report.calls
    rows = [
        [
            KIND_LABELS[kind],
            num(c.kinds[kind]),
            pct(c.kinds[kind] / c.waste_tokens if c.waste_tokens else None),
            num(c.calls_with_kind[kind]),
        ]
        for kind in sorted(KINDS, key=lambda k: -c.kinds[k])
    ]
    rows.append(["total", num(c.waste_tokens), pct(1.0 if c.waste_tokens else None), ""])
    unused = report.tasks().unused_tool_definitions_tokens
    return [
        "Waste by kind",
        *table(["kind", "tokens", "share", "calls"], rows),
        f"waste is {pct(c.waste_tokens / c.billed if c.billed else None)} of {num(c.billed)} billed tokens",
        f"unused tool definitions: {num(unused)} tokens (tools offered and never called; beside waste, not in it)",
    ]


def by_task(report: Report) -> list[str]:
    rows = []
    for name, t in sorted(report.by_task.items(), key=lambda item: -item[1].tokens):
        rows.append(
            [
                name,
                num(t.tasks),
                num(t.successes),
                num(t.failures),
                num(t.llm_calls),
                num(t.tokens),
                num(t.waste_tokens),
                pct(t.waste_ratio),
                usd(t.cost_usd),
                num(t.tokens_per_success),
            ]
        )
    headers = ["task", "runs", "successes", "failures", "calls", "tokens", "waste", "waste%", "cost", "tokens/success"]
    return ["Waste by task", *table(headers, rows)]


def kpi(report: Report, by: str) -> list[str]:
    rows = []
    for group, t, calls in report.by_group():
        rows.append(
            [
                group,
                num(t.tasks),
                num(t.successes),
                num(t.tokens_per_success),
                pct(t.waste_ratio),
                usd(t.cost_per_success),
                calls.top_kind or "-",
            ]
        )
    headers = [by, "tasks", "successes", "tokens/success", "waste%", "cost/success", "top_waste_kind"]
    return [f"Tokens per success by {by} (best first; groups without a success last)", *table(headers, rows)]
