"""``otel-tokenkpi report``: what a file of spans says the tokens bought.

Reads OTLP JSON lines (the Collector ``file`` exporter's format, or :class:`OTLPJsonLinesSpanExporter`'s),
plain or gzip'd, a file or a directory of rotated files, one line at a time, and adds them up: waste by
model, by waste kind, by service, over time and by task; with ``by``, the KPI table that should replace
a token-burn leaderboard (tokens per success, waste ratio, cost per success per team, feature, ...).
Memory stays flat in the size of the input: model calls are summed as they are read into one cell per
(model, service, group) and one time bucket per period; of the tasks, only one small entry per trace
is kept (see ``_report_units``).

What counts:

- a *model call* is a span whose ``gen_ai.operation.name`` is a model call and that carries ``tokenkpi.*``
  attributes (ours, or another instrumentation's enriched by the span processor; a foreign span nested
  in one of ours describes the same call and carries none, so no call counts twice);
- a *task* is a span with ``tokenkpi.trace.*`` roll-ups (``_report_units`` says which are outermost);
- a *late outcome* is a ``record_outcome`` span: ``tokenkpi.outcome`` without roll-ups. It adds one
  success or failure to the task it names, beside the outcomes recorded in-band (as the engine's own
  ``tokens_per_success`` on that span counts them).
"""

from __future__ import annotations

import gc
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import IO, Any

from . import semconv as sc
from ._otlp_json import ANY, FLOAT, INT, STR, LineSpans, MalformedLine, SpanRecord, read_line
from ._report_sums import KINDS, CallTotals, TaskTotals, Timeline
from ._report_units import NONE_GROUP, Label, LateOutcome, Rollup, TaskRun, Units
from ._span_files import SpanFileError, expand, lines

__all__ = ["KINDS", "NONE_GROUP", "CallTotals", "Report", "TaskTotals", "Timeline", "read_report", "readers"]

MAX_BAD_LINES_KEPT = 1000

# The attributes the report reads, and as what.
WANTED: dict[str, str] = {
    sc.OPERATION_NAME: STR,
    sc.REQUEST_MODEL: STR,
    sc.RESPONSE_MODEL: STR,
    sc.CONVERSATION_ID: STR,
    sc.AGENT_NAME: STR,
    sc.WORKFLOW_NAME: STR,
    sc.USAGE_INPUT_TOKENS: INT,
    sc.USAGE_OUTPUT_TOKENS: INT,
    sc.USAGE_CACHE_READ_INPUT_TOKENS: INT,
    sc.WASTE_TOKENS: INT,
    sc.COST_USD: FLOAT,
    sc.WASTE_COST_USD: FLOAT,
    **dict.fromkeys(sc.WASTE_KIND_ATTRIBUTES.values(), INT),
    sc.TRACE_LLM_CALLS: INT,
    sc.TRACE_INPUT_TOKENS: INT,
    sc.TRACE_OUTPUT_TOKENS: INT,
    sc.TRACE_WASTE_TOKENS: INT,
    sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS: INT,
    sc.TRACE_UNUSED_TOOL_NAMES: ANY,
    sc.TRACE_COST_USD: FLOAT,
    sc.TRACE_WASTE_COST_USD: FLOAT,
    sc.OUTCOME: STR,
}


class Report:
    """The sums. :func:`read_report` feeds it a line at a time and calls :meth:`finish`; the text tables
    (``_report_tables``) and the HTML page (``report_html``) read it."""

    def __init__(self, by: str | None = None) -> None:
        self.by = by
        self.files: list[str] = []
        self.lines = self.spans = 0
        self.bad_line_count = 0
        self.bad_lines: list[tuple[str, int, str]] = []  # (file, line number, reason), the first ones
        self.first_ns: int | None = None  # earliest model call start
        self.last_ns: int | None = None  # latest model call end
        self.calls = CallTotals()
        self.by_model: dict[str, CallTotals] = defaultdict(CallTotals)
        self.by_service: dict[str, CallTotals] = defaultdict(CallTotals)
        self.group_calls: dict[str, CallTotals] = defaultdict(CallTotals)
        self.by_task: dict[str, TaskTotals] = defaultdict(TaskTotals)
        self.timeline = Timeline()
        self.group_seen = False  # any span carried the --by attribute
        self.late_outcomes = 0
        self.late_unmatched = 0  # late outcomes whose task is not in the input: not counted
        self._cells: dict[tuple[str, str, str], CallTotals] = {}  # (model, service, group) -> calls
        self._total = TaskTotals()
        self._groups: dict[str, TaskTotals] = defaultdict(TaskTotals)
        self._units = Units(self._count_task, self._count_late)
        self._finished = False

    # -- feeding -------------------------------------------------------------------------------------
    def add_line(self, spans: LineSpans | None) -> None:
        if spans is None:
            return
        self.spans += spans.total
        for span in spans.spans:
            self.add_span(span)
        self._units.end_of_line()

    def bad_line(self, path: str, number: int, reason: str) -> None:
        self.bad_line_count += 1
        if len(self.bad_lines) < MAX_BAD_LINES_KEPT:
            self.bad_lines.append((path, number, reason))

    def add_span(self, span: SpanRecord) -> None:
        attrs = span.attributes
        operation = attrs.get(sc.OPERATION_NAME)
        group = self._group(span)
        if operation in sc.MODEL_CALL_OPERATIONS:
            self._add_call(span, group)
        if sc.TRACE_LLM_CALLS in attrs:
            if operation == sc.INVOKE_WORKFLOW:
                name = attrs.get(sc.AGENT_NAME) or attrs.get(sc.WORKFLOW_NAME) or span.name
            else:
                name = span.name
            rollup = Rollup.of(attrs)
            label = self._units.label(group, name, operation == sc.INVOKE_WORKFLOW, span.resource.instance)
            totals = self.by_task[name]
            totals.add(rollup)
            totals.is_task = totals.is_task or label.is_task
            self._units.add(span, label, rollup)
        elif attrs.get(sc.OUTCOME) in ("success", "failure"):
            self._units.add_late_outcome(span, group)

    def _add_call(self, span: SpanRecord, group: str) -> None:
        attrs = span.attributes
        model = str(attrs.get(sc.REQUEST_MODEL) or attrs.get(sc.RESPONSE_MODEL) or "(unknown)")
        key = (model, span.resource.service or "(unknown)", group)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = CallTotals()
        values = cell.add(attrs, span.error)
        start = span.start
        if start:
            self.timeline.add(start, values)
            if self.first_ns is None or start < self.first_ns:
                self.first_ns = start
            end = span.end if span.end > start else start
            if self.last_ns is None or end > self.last_ns:
                self.last_ns = end

    def _group(self, span: SpanRecord) -> str:
        if self.by is None:
            return NONE_GROUP
        value = span.attributes.get(self.by)
        if value is None:
            value = span.resource.by_value
            if value is None:
                return NONE_GROUP
        self.group_seen = True
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    def _count_task(self, label: Label, rollup: Rollup) -> None:
        self._groups[label.group].add(rollup)  # the total is the groups' sum, made in finish()

    def _count_late(self, late: LateOutcome, names: set[str], group: str) -> None:
        self.late_outcomes += 1
        if not names:  # its task is not in the input: counting it would skew tokens per success
            self.late_unmatched += 1
            return
        self._groups[group].add_outcome(late.outcome)
        if group != NONE_GROUP:
            self.group_seen = True
        for name in sorted(names):
            self.by_task[name].add_outcome(late.outcome)

    def finish(self) -> Report:
        """Count the tasks still undecided and place late outcomes; the views below read the result."""
        if self._finished:
            return self
        self._finished = True
        self._units.finish()
        for totals in self._groups.values():
            self._total.merge(totals)
        for (model, service, group), cell in self._cells.items():
            self.calls.merge(cell)
            self.by_model[model].merge(cell)
            self.by_service[service].merge(cell)
            if self.by is not None:
                self.group_calls[group].merge(cell)
        return self

    # -- views (after finish) -----------------------------------------------------------------------
    def tasks(self) -> TaskTotals:
        """The outermost tasks summed (every model call inside a task counted once), late outcomes included."""
        return self._total

    def by_group(self) -> list[tuple[str, TaskTotals, CallTotals]]:
        """``--by``: per group, its outermost tasks and its model calls; best tokens per success first,
        groups without a success last (most tokens first)."""
        names = set(self._groups) | set(self.group_calls)
        rows = [
            (name, self._groups.get(name, TaskTotals()), self.group_calls.get(name, CallTotals())) for name in names
        ]

        def order(row: tuple[str, TaskTotals, CallTotals]) -> tuple[int, float, str]:
            per_success = row[1].tokens_per_success
            return (0, per_success, row[0]) if per_success is not None else (1, -row[1].tokens, row[0])

        return sorted(rows, key=order)

    @property
    def cells(self) -> dict[tuple[str, str, str], CallTotals]:
        """Model calls per (model, service, group): every cross-section the views need."""
        return self._cells

    def top_tasks(self) -> list[TaskRun]:
        return self._units.top()

    @property
    def period_ns(self) -> int:
        return (self.last_ns - self.first_ns) if self.first_ns is not None and self.last_ns is not None else 0


def readers() -> dict[str, str]:
    """The line readers this installation has: name -> what it is."""
    found = {"python": "the standard library's json"}
    try:
        import msgspec  # noqa: F401
    except ImportError:
        pass
    else:
        found["msgspec"] = "msgspec (the [fast] extra)"
    return found


def _line_reader(name: str, by: str | None) -> Any:
    wanted = dict(WANTED)
    if by is not None:
        wanted[by] = ANY
    if name == "auto":
        name = "msgspec" if "msgspec" in readers() else "python"
    if name == "msgspec":
        from ._otlp_fast import FastReader

        return FastReader(wanted, by).read
    if name != "python":
        raise ValueError(f"unknown reader {name!r}: choose auto, python or msgspec")
    return lambda line: read_line(line, wanted, by)


def read_report(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    by: str | None = None,
    progress: IO[str] | None = None,
    reader: str = "auto",
) -> Report:
    """Read every line of ``paths`` (files, gzip'd files, directories of them) into a finished :class:`Report`.

    Raises :class:`SpanFileError` if a path is missing or cannot be opened; a file that breaks off
    mid-way (a truncated gzip) is reported as a malformed line and the rest is still read.
    ``progress``: a stream to draw a progress bar on (the CLI passes stderr when it is a terminal).
    ``reader``: ``auto`` (msgspec when installed), ``python`` or ``msgspec``.
    """
    files = expand([paths] if isinstance(paths, (str, os.PathLike)) else paths)
    read = _line_reader(reader, by)
    report = Report(by)
    report.files = files
    sizes = [os.path.getsize(path) for path in files]
    # A parsed line is hundreds of thousands of short-lived objects, freed by reference counting; the cyclic
    # collector would only walk them again and again (about 10% of the standard reader's time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        _read_files(report, files, sizes, read, progress)
    finally:
        if collecting:
            gc.enable()
    return report.finish()


def _read_files(report: Report, files: list[str], sizes: list[int], read: Any, progress: IO[str] | None) -> None:
    from ._progress import Progress

    with Progress(sum(sizes), progress) as bar:
        done = 0
        for path, size in zip(files, sizes, strict=True):
            try:
                for number, line, position in lines(path):
                    report.lines += 1
                    try:
                        report.add_line(read(line))
                    except MalformedLine as exc:
                        report.bad_line(path, number, str(exc))
                    bar.update(done + position)
            except SpanFileError as exc:
                if exc.after_line is None:
                    raise
                report.bad_line(path, exc.after_line + 1, str(exc))
            done += size
