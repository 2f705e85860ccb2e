"""The demo's terminal summary: waste per model call, then the task's roll-up, read back from the spans.

It reads only span attributes (the public contract), so what it prints is what any backend receives.
"""

from __future__ import annotations

import threading
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from . import semconv as sc
from ._words import plural

# (header, attribute); headers are single words so the table splits cleanly on whitespace.
COLUMNS = (
    ("in", sc.USAGE_INPUT_TOKENS),
    ("out", sc.USAGE_OUTPUT_TOKENS),
    ("cached", sc.USAGE_CACHE_READ_INPUT_TOKENS),
    ("re-sent", sc.WASTE_UNCACHED_RESENT_TOKENS),
    ("dup-tool", sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS),
    ("truncated", sc.WASTE_TRUNCATED_OUTPUT_TOKENS),
    ("repeated", sc.WASTE_REPEATED_REQUEST_TOKENS),
    ("failed", sc.WASTE_FAILED_CALL_TOKENS),
    ("waste", sc.WASTE_TOKENS),
)
LEGEND = (
    "re-sent: re-sent context a prompt cache could have served, sent uncached; "
    "dup-tool: duplicate tool calls and their results;\ntruncated: output cut off at max_tokens; "
    "repeated: an identical request sent again; "
    "failed: billed tokens of failed calls. Waste kinds never overlap: they add up to 'waste'."
)


class WasteTable(SpanProcessor):
    """Collects our model-call and ``task()`` spans as they end, to print what the tokens bought."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[ReadableSpan] = []
        self.tasks: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        operation = (span.attributes or {}).get(sc.OPERATION_NAME)
        with self._lock:
            if operation in sc.MODEL_CALL_OPERATIONS:
                self.calls.append(span)
            elif operation == sc.INVOKE_WORKFLOW:
                self.tasks.append(span)

    def print(self, out: IO[str]) -> None:
        calls = sorted(self.calls, key=lambda span: span.start_time or 0)
        rows = [["call", "finish", *(title for title, _ in COLUMNS)]]
        for index, span in enumerate(calls, 1):
            attrs = span.attributes or {}
            rows.append([str(index), _finish(span), *(_cell(attrs.get(key)) for _, key in COLUMNS)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)), file=out)
        print(LEGEND, file=out)
        for task in self.tasks:
            print(file=out)
            print(task_summary(task.attributes or {}), file=out)


def _finish(span: ReadableSpan) -> str:
    if span.status.status_code is StatusCode.ERROR:
        return "error"
    reasons = (span.attributes or {}).get(sc.RESPONSE_FINISH_REASONS) or ("-",)
    return ",".join(str(reason) for reason in reasons)  # type: ignore[union-attr]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def task_summary(attrs: Any) -> str:
    """The task's roll-up in a few lines: what it cost, what share was waste, tokens per success."""
    billed = attrs.get(sc.TRACE_INPUT_TOKENS, 0) + attrs.get(sc.TRACE_OUTPUT_TOKENS, 0)
    per_success = attrs.get(sc.TRACE_TOKENS_PER_SUCCESS)
    lines = [
        f"task {attrs.get(sc.AGENT_NAME)}: {plural(attrs.get(sc.TRACE_LLM_CALLS, 0), 'model call')}, {billed} tokens "
        f"({attrs.get(sc.TRACE_INPUT_TOKENS)} in, {attrs.get(sc.TRACE_OUTPUT_TOKENS)} out, "
        f"{attrs.get(sc.TRACE_CACHE_READ_TOKENS)} cached), outcome {attrs.get(sc.OUTCOME, '-')}",
        f"  waste {attrs.get(sc.TRACE_WASTE_TOKENS)} tokens ({attrs.get(sc.TRACE_WASTE_RATIO, 0):.0%} of billed); "
        f"duplicate tool calls {attrs.get(sc.TRACE_DUPLICATE_TOOL_CALLS)}, "
        f"max tool fan-out {attrs.get(sc.TRACE_MAX_TOOL_FANOUT)}",
        f"  unused tool schemas {attrs.get(sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS)} tokens "
        "(tools offered on every call and never called; reported beside waste, not in it)",
        f"  tokens per success {'-' if per_success is None else f'{per_success:g}'}; "
        f"cost {_usd(attrs.get(sc.TRACE_COST_USD))}, of which waste {_usd(attrs.get(sc.TRACE_WASTE_COST_USD))}",
    ]
    return "\n".join(lines)


def _usd(value: Any) -> str:
    return "-" if value is None else f"${value:.6f}"
