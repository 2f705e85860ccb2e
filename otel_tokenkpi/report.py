"""``otel-tokenkpi report``: what a file of spans says the tokens bought.

Reads OTLP JSON lines (the Collector ``file`` exporter's format, or :class:`OTLPJsonLinesSpanExporter`'s)
one line at a time and adds them up: waste by model, by waste kind and by task; or, with ``by``, the KPI
table that should replace a token-burn leaderboard (tokens per success, waste ratio, cost per success per
team, feature, ...). Memory stays flat in the number of spans: model calls are summed as they are read;
only one small record per roll-up span (task) is kept, to find the outermost ones at the end.

What counts:

- a *model call* is a span whose ``gen_ai.operation.name`` is a model call and that carries ``tokenkpi.*``
  attributes (ours, or another instrumentation's enriched by the span processor; a foreign span nested
  in one of ours describes the same call and carries none, so no call counts twice);
- a *task* is a span with ``tokenkpi.trace.*`` roll-ups: an ``otel_tokenkpi.task()`` span
  (``invoke_workflow {name}``) or a local root enriched by the span processor. In the task table every
  such span is a row of its own name; totals and ``--by`` groups count only outermost ones, so a task
  nested in another task (or in a rolled-up root) is not counted twice. Nesting is read from the spans'
  times within a trace and their parents (a span contained in another's time is nested unless both
  share a parent, i.e. are concurrent siblings).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO, Any

from . import semconv as sc
from ._otlp_json import MalformedLine, SpanRecord, spans_of_line

__all__ = ["CallTotals", "Report", "TaskTotals", "read_report"]

KINDS = tuple(sc.WASTE_KIND_ATTRIBUTES)
NONE_GROUP = "(none)"


@dataclass
class CallTotals:
    """Model calls summed."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    waste_tokens: int = 0
    cost_usd: float | None = None
    waste_cost_usd: float | None = None
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    calls_with_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, span: SpanRecord) -> None:
        attrs = span.attributes
        self.calls += 1
        self.errors += span.error
        self.input_tokens += _int(attrs.get(sc.USAGE_INPUT_TOKENS))
        self.output_tokens += _int(attrs.get(sc.USAGE_OUTPUT_TOKENS))
        self.cache_read_tokens += _int(attrs.get(sc.USAGE_CACHE_READ_INPUT_TOKENS))
        self.waste_tokens += _int(attrs.get(sc.WASTE_TOKENS))
        self.cost_usd = _add(self.cost_usd, attrs.get(sc.COST_USD))
        self.waste_cost_usd = _add(self.waste_cost_usd, attrs.get(sc.WASTE_COST_USD))
        for kind, key in sc.WASTE_KIND_ATTRIBUTES.items():
            tokens = _int(attrs.get(key))
            self.kinds[kind] += tokens
            self.calls_with_kind[kind] += tokens > 0

    @property
    def billed(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def top_kind(self) -> str | None:
        kind = max(KINDS, key=lambda k: self.kinds[k])
        return kind if self.kinds[kind] > 0 else None


@dataclass
class TaskTotals:
    """Tasks (roll-up spans) summed."""

    tasks: int = 0
    successes: int = 0
    failures: int = 0
    llm_calls: int = 0
    tokens: int = 0  # input + output
    waste_tokens: int = 0
    unused_tool_definitions_tokens: int = 0
    cost_usd: float | None = None
    waste_cost_usd: float | None = None

    def add(self, attrs: dict[str, Any]) -> None:
        self.tasks += 1
        outcome = attrs.get(sc.OUTCOME)
        self.successes += outcome == "success"
        self.failures += outcome == "failure"
        self.llm_calls += _int(attrs.get(sc.TRACE_LLM_CALLS))
        self.tokens += _int(attrs.get(sc.TRACE_INPUT_TOKENS)) + _int(attrs.get(sc.TRACE_OUTPUT_TOKENS))
        self.waste_tokens += _int(attrs.get(sc.TRACE_WASTE_TOKENS))
        self.unused_tool_definitions_tokens += _int(attrs.get(sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS))
        self.cost_usd = _add(self.cost_usd, attrs.get(sc.TRACE_COST_USD))
        self.waste_cost_usd = _add(self.waste_cost_usd, attrs.get(sc.TRACE_WASTE_COST_USD))

    @property
    def tokens_per_success(self) -> float | None:
        return self.tokens / self.successes if self.successes else None

    @property
    def cost_per_success(self) -> float | None:
        return self.cost_usd / self.successes if self.successes and self.cost_usd is not None else None

    @property
    def waste_ratio(self) -> float | None:
        return self.waste_tokens / self.tokens if self.tokens else None


_ROLLUP_KEYS = (
    sc.OUTCOME,
    sc.TRACE_LLM_CALLS,
    sc.TRACE_INPUT_TOKENS,
    sc.TRACE_OUTPUT_TOKENS,
    sc.TRACE_WASTE_TOKENS,
    sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS,
    sc.TRACE_COST_USD,
    sc.TRACE_WASTE_COST_USD,
)


@dataclass(slots=True)
class _Unit:
    """What is kept of one roll-up span until the end of the file."""

    span_id: str
    parent_span_id: str | None
    start: int
    end: int
    group: str
    rollup: dict[str, Any]


class Report:
    """The sums; :meth:`add_line` feeds it, the ``*_table`` readers in the CLI print it."""

    def __init__(self, by: str | None = None) -> None:
        self.by = by
        self.lines = self.spans = 0
        self.bad_lines: list[tuple[int, str]] = []
        self.calls = CallTotals()
        self.by_model: dict[str, CallTotals] = defaultdict(CallTotals)
        self.by_task: dict[str, TaskTotals] = defaultdict(TaskTotals)
        self.group_calls: dict[str, CallTotals] = defaultdict(CallTotals)  # --by: model calls per group
        self.group_seen = False  # any span carried the --by attribute
        self._units: dict[str, list[_Unit]] = defaultdict(list)  # trace id -> its roll-up spans

    def add_line(self, number: int, line: bytes | str) -> None:
        """One line of the file; a malformed line is recorded in ``bad_lines`` and adds nothing."""
        self.lines = number
        try:
            spans = spans_of_line(line)
        except MalformedLine as exc:
            self.bad_lines.append((number, str(exc)))
            return
        for span in spans or ():
            self.add_span(span)

    def add_span(self, span: SpanRecord) -> None:
        self.spans += 1
        attrs = span.attributes
        group = self._group(attrs)
        operation = attrs.get(sc.OPERATION_NAME)
        if operation in sc.MODEL_CALL_OPERATIONS and any(key.startswith("tokenkpi.") for key in attrs):
            model = attrs.get(sc.REQUEST_MODEL) or attrs.get(sc.RESPONSE_MODEL) or "(unknown)"
            self.calls.add(span)
            self.by_model[str(model)].add(span)
            if self.by is not None:
                self.group_calls[group].add(span)
        if sc.TRACE_LLM_CALLS in attrs:
            if operation == sc.INVOKE_WORKFLOW:
                name = str(attrs.get(sc.AGENT_NAME) or attrs.get(sc.WORKFLOW_NAME) or span.name)
            else:
                name = span.name
            rollup = {key: attrs[key] for key in _ROLLUP_KEYS if key in attrs}
            self.by_task[name].add(rollup)
            unit = _Unit(span.span_id, span.parent_span_id, span.start, span.end, group, rollup)
            self._units[span.trace_id].append(unit)

    def _group(self, attrs: dict[str, Any]) -> str:
        if self.by is None or self.by not in attrs:
            return NONE_GROUP
        self.group_seen = True
        value = attrs[self.by]
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    def tasks(self) -> TaskTotals:
        """The outermost tasks summed: every model call inside a task counted once."""
        total = TaskTotals()
        for unit in self._outermost():
            total.add(unit.rollup)
        return total

    def by_group(self) -> list[tuple[str, TaskTotals, CallTotals]]:
        """``--by``: per group, its outermost tasks and its model calls; best tokens per success first,
        groups without a success last (most tokens first)."""
        groups: dict[str, TaskTotals] = defaultdict(TaskTotals)
        for unit in self._outermost():
            groups[unit.group].add(unit.rollup)
        for name in self.group_calls:
            groups.setdefault(name, TaskTotals())
        rows = [(name, totals, self.group_calls.get(name, CallTotals())) for name, totals in groups.items()]

        def order(row: tuple[str, TaskTotals, CallTotals]) -> tuple[int, float, str]:
            per_success = row[1].tokens_per_success
            return (0, per_success, row[0]) if per_success is not None else (1, -row[1].tokens, row[0])

        return sorted(rows, key=order)

    def _outermost(self) -> list[_Unit]:
        found: list[_Unit] = []
        for units in self._units.values():
            outer: _Unit | None = None  # the unit reaching furthest so far, in start order
            for unit in sorted(units, key=lambda u: (u.start, -u.end, u.span_id)):
                if outer is not None and unit.end <= outer.end and unit.parent_span_id != outer.parent_span_id:
                    continue  # inside ``outer``: its calls are in outer's roll-up already
                found.append(unit)
                if outer is None or unit.end > outer.end:
                    outer = unit
        return found


def read_report(path: str | os.PathLike[str], by: str | None = None, progress: IO[str] | None = None) -> Report:
    """Read ``path`` line by line into a :class:`Report`. Raises ``OSError`` if it cannot be opened.

    ``progress``: a stream to draw a progress bar on (the CLI passes stderr when it is a terminal).
    """
    from ._progress import Progress

    report = Report(by)
    size = os.path.getsize(path)
    with open(path, "rb") as file, Progress(size, progress) as bar:
        done = 0
        for number, line in enumerate(file, 1):
            report.add_line(number, line)
            done += len(line)
            bar.update(done)
    return report


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _add(total: float | None, value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (total or 0.0) + value
    return total
