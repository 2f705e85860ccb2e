""" "What to fix first": the few changes that would save the most, computed from a finished report.

Each waste kind points at one fix, and the spans say where: the model and the service (resource
``service.name``) of the calls that wasted, or the task whose tool schemas went unused. Candidates are
ranked by estimated cost when every one has a price, else by tokens; at most two per kind, five in all.
Figures are per day when the input covers at least a day (over the UTC days it touches), else for the
period it covers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from . import cache_rules
from ._words import plural
from .report import KINDS, CallTotals, Report

__all__ = ["Fix", "fixes", "money", "per_period"]

DAY_NS = 86_400 * 10**9
MAX_FIXES = 5
MAX_PER_KIND = 2
UNKNOWN = "(unknown)"


@dataclass(frozen=True)
class Fix:
    kind: str  # a waste kind, or "unused_tools"
    title: str  # what to do, and where
    detail: str  # the figures behind it
    tokens: int  # over the whole input
    cost_usd: float | None  # estimated, over the whole input


def per_period(report: Report) -> tuple[float, str]:
    """(divisor, unit): when the input covers a day or more, figures are per day over the UTC days it
    touches (the first and last count whole); else for the period it covers."""
    if report.first_ns is None or report.last_ns is None or report.period_ns < 1_000_000_000:
        return 1.0, ""  # a single moment (one run): the figures speak for themselves
    if report.period_ns < DAY_NS:
        return 1.0, f" in the {_duration(report.period_ns)} covered"
    return float(report.last_ns // DAY_NS - report.first_ns // DAY_NS + 1), "/day"


def _duration(ns: int) -> str:
    seconds = ns / 1e9
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _where(model: str, service: str) -> str:
    return model if service == UNKNOWN else f"{model} in {service}"


def _kind_cost(calls: CallTotals, kind: str) -> float | None:
    """The waste cost of one kind, apportioned by tokens (spans carry the waste cost of a call, not per kind)."""
    if calls.waste_cost_usd is None or not calls.waste_tokens:
        return None
    return calls.waste_cost_usd * calls.kinds[kind] / calls.waste_tokens


def money(value: float) -> str:
    """Dollars with the digits that matter: $1,234.50, $0.0312, $0.000183."""
    if value >= 1 or value == 0:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def _cache_mode(model: str) -> str | None:
    """The model's prompt-cache mode (cache_rules), whichever provider serves it: spans in a report name
    the model, and the cache rules of one model family are the same across the providers that serve it."""
    for provider in ("openai", "anthropic", "gcp.gemini", "aws.bedrock", "deepseek"):
        rule = cache_rules.rule_for(provider, model)
        if rule is not None:
            return rule.mode
    return None


def _call_fix(kind: str, model: str, service: str, calls: CallTotals, scale: float, unit: str) -> Fix:
    tokens = calls.kinds[kind]
    amount = f"{tokens / scale:,.0f} tokens"
    where = _where(model, service)
    cost = _kind_cost(calls, kind)
    price = f", about {money(cost / scale)}" if cost is not None else ""
    if kind == "uncached_resent":
        share = tokens / calls.input_tokens if calls.input_tokens else 0.0
        if _cache_mode(model) == "automatic":  # caching is on already: the prompt's prefix keeps changing
            title = f"Keep the start of the prompt stable on {where} (its cache is automatic; nothing re-sent hit it)"
        else:
            title = f"Enable prompt caching on {where}"
        detail = f"{amount}{price} of history re-sent uncached{unit} ({share:.0%} of its input tokens)"
    elif kind == "repeated_request":
        title = f"Stop sending identical requests again on {where} (cache the answer)"
        detail = f"{amount}{price}{unit} on {plural(calls.calls_with_kind[kind], 'repeated request')}"
    elif kind == "truncated_output":
        title = f"Raise max_tokens (or ask for shorter answers) on {where}"
        detail = (
            f"{amount}{price}{unit} of answers cut off at the limit ({plural(calls.calls_with_kind[kind], 'call')})"
        )
    elif kind == "duplicate_tool_call":
        title = f"Deduplicate tool calls on {where} (return the earlier result)"
        detail = f"{amount}{price}{unit} on {plural(calls.calls_with_kind[kind], 'call')} that repeated a tool call"
    else:
        title = f"Fix failing calls to {where}"
        detail = f"{amount}{price}{unit} billed for calls that failed ({plural(calls.errors, 'error')})"
    return Fix(kind, title, detail, tokens, cost)


def _unused_tool_fixes(report: Report, scale: float, unit: str) -> list[Fix]:
    rows = [(name, t) for name, t in report.by_task.items() if t.unused_tool_definitions_tokens > 0]
    tasks = [row for row in rows if row[1].is_task]
    found = []
    for name, totals in tasks or rows:
        tokens = totals.unused_tool_definitions_tokens
        amount = f"{tokens / scale:,.0f} tokens of tool schemas{unit}"
        never = sorted(tool for tool, runs in totals.unused_tools.items() if runs == totals.tasks)
        if never:
            tools = ", ".join(never[:4]) + (f" and {len(never) - 4} more" if len(never) > 4 else "")
            title = f"Stop offering {tools} to {name}"
            detail = f"offered on every run ({totals.tasks:,}) and never called: {amount}"
        else:
            title = f"Trim the tool list of {name}"
            detail = f"{amount} offered and never called ({totals.tasks:,} runs)"
        found.append(Fix("unused_tools", title, detail, tokens, None))
    return found


def fixes(report: Report) -> list[Fix]:
    """The fixes worth most, best first."""
    scale, unit = per_period(report)
    pairs: dict[tuple[str, str], CallTotals] = defaultdict(CallTotals)
    for (model, service, _group), cell in report.cells.items():
        pairs[(model, service)].merge(cell)
    candidates: list[Fix] = []
    for kind in KINDS:
        ranked = sorted(pairs.items(), key=lambda item: (-item[1].kinds[kind], item[0]))
        for (model, service), calls in ranked[:MAX_PER_KIND]:
            if calls.kinds[kind] > 0:
                candidates.append(_call_fix(kind, model, service, calls, scale, unit))
    candidates += _unused_tool_fixes(report, scale, unit)[:MAX_PER_KIND]
    by_cost = all(fix.cost_usd is not None for fix in candidates if fix.kind != "unused_tools")
    tokens_per_usd = _tokens_per_usd(report)

    def worth(fix: Fix) -> float:
        if by_cost and tokens_per_usd:
            return fix.cost_usd if fix.cost_usd is not None else fix.tokens / tokens_per_usd
        return float(fix.tokens)

    return sorted(candidates, key=lambda fix: (-worth(fix), fix.title))[:MAX_FIXES]


def _tokens_per_usd(report: Report) -> float | None:
    """The input's average tokens per dollar: prices unused tool schemas (which carry no cost of their own)."""
    cost = report.calls.cost_usd
    return report.calls.billed / cost if cost else None
