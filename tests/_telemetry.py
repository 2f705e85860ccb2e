"""Test helpers every test module may import (fixtures live in conftest.py and the support modules).

``Telemetry`` records into in-memory SDK exporters; ``instrumented_with`` instruments a set of our
instrumentors onto a fresh one; ``estimated_tokens`` is what the engine's estimator gives;
``check_in_forked_child`` runs checks in a forked child.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tokenkpi import TokenKPISpanProcessor, tokens
from otel_tokenkpi.invocation import ToolDefinition
from otel_tokenkpi.tool_tokens import count_request_tools


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(self.exporter)))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metric_points(self, name: str) -> list[Any]:
        data = self.metric_reader.get_metrics_data()
        points = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


@contextlib.contextmanager
def instrumented_with(*instrumentor_classes: type) -> Iterator[Telemetry]:
    """Fresh in-memory telemetry with these instrumentors on it; all uninstrumented afterwards."""
    t = Telemetry()
    instrumentors = [cls() for cls in instrumentor_classes]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=t.tracer_provider, meter_provider=t.meter_provider)
    try:
        yield t
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()


def estimated_tokens(*texts: str) -> int:
    """What the engine's estimator gives for these texts (models without an offline tokenizer)."""
    return sum(tokens.estimate_tokens(t) for t in texts if t)


def check_in_forked_child(
    child_checks: Callable[[], dict[str, bool]], release: Callable[[], None] | None = None
) -> None:
    """Fork; the child runs ``child_checks`` and reports through its exit code
    (never returning into pytest); the parent asserts every check passed.
    ``release`` runs in the parent once the child has finished (e.g. to let a
    parked loader thread go)."""
    pid = os.fork()
    if pid == 0:
        code, checks = 1, {}
        try:
            checks = child_checks()
            code = 0 if all(checks.values()) else 2
        finally:
            os.write(2, f"fork child checks: {checks}\n".encode())
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        if release is not None:
            release()
    assert os.waitstatus_to_exitcode(status) == 0


def billed_tool_tokens(tools: list[dict[str, Any]], messages: list[dict[str, Any]], api: str | None = None) -> int:
    """What OpenAI bills for these tools in this request (otel_tokenkpi.tool_tokens, checked against
    billed requests in tests/test_tool_tokens.py): the rendered functions namespace."""
    definitions = []
    for tool in tools:
        fn = tool.get("function", tool)
        schema = json.dumps(fn["parameters"], separators=(",", ":"), ensure_ascii=False)
        definitions.append(ToolDefinition(fn["name"], fn.get("description", ""), schema))
    system = next((m["content"] for m in messages if m.get("role") in ("system", "developer")), None)
    return count_request_tools(definitions, "openai", "gpt-4o", system_text=system, api=api).total
