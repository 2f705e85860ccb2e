"""What every framework scenario shares; runs inside a framework venv (see tests/frameworks/README.md).

A scenario drives a real agent framework against the fake OpenAI server with one scripted conversation:

1. the model calls ``get_weather(Paris)`` and ``get_weather(Rome)`` at once (fan-out 2);
2. it calls ``get_weather(Paris)`` again: the planted duplicate;
3. it answers in text (this request sends the duplicate's result back: charged once, here).

Each scenario runs twice in one process: plain (nothing instrumented), then with the telemetry of its
mode. The run's record (final output, tool executions, request bodies, exported spans) goes to stdout
as JSON; tests/test_frameworks.py, in the project's own venv, asserts on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tokenkpi import TokenKPISpanProcessor
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

MODEL = "gpt-4o"
SYSTEM = "You are a weather bot. Use the get_weather tool for every city you are asked about."
QUESTION = "What is the weather in Paris and in Rome?"
ANSWER = "Paris is sunny and Rome is cloudy."
WEATHER = {"Paris": "Paris: 18C and sunny", "Rome": "Rome: 21C and cloudy"}
TOOL_DESCRIPTION = "Current weather for a city."
PARIS, ROME = '{"city":"Paris"}', '{"city":"Rome"}'
# Billed usage the fake reports per call: larger than any framework's prompt, as real usage is.
USAGE = [(3000, 40), (3200, 20), (3400, 12)]


def script(answer: str = ANSWER) -> list[Reply]:
    """The three replies of the scripted conversation."""
    (p1, c1), (p2, c2), (p3, c3) = USAGE
    return [
        Reply(
            text=None,
            tool_calls=[ToolCall("get_weather", PARIS), ToolCall("get_weather", ROME)],
            prompt_tokens=p1,
            completion_tokens=c1,
        ),
        Reply(text=None, tool_calls=[ToolCall("get_weather", PARIS)], prompt_tokens=p2, completion_tokens=c2),
        Reply(text=answer, prompt_tokens=p3, completion_tokens=c3),
    ]


class Run:
    """One scenario run: the fake server, the tool log, and (instrumented) the span pipeline."""

    def __init__(self, fake: FakeOpenAIServer) -> None:
        self.fake = fake
        self.tools: list[list[Any]] = []
        self.exporter: InMemorySpanExporter | None = None

    @property
    def base_url(self) -> str:
        return self.fake.url + "/v1"

    def get_weather(self, city: str) -> str:
        """Current weather for a city."""
        self.tools.append(["get_weather", {"city": city}])
        return WEATHER.get(city, f"{city}: unknown")


_PROVIDER: TracerProvider | None = None
_EXPORTER = InMemorySpanExporter()  # what an exporter behind TokenKPISpanProcessor receives
_ENDED = InMemorySpanExporter()  # every span that ended, before the processor dropped or enriched any


def telemetry() -> TracerProvider:
    """The process's one TracerProvider (set globally, as frameworks with their own spans read the
    global one), with TokenKPISpanProcessor in front of an in-memory exporter."""
    global _PROVIDER
    if _PROVIDER is None:
        _PROVIDER = TracerProvider()
        _PROVIDER.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(_EXPORTER)))
        _PROVIDER.add_span_processor(SimpleSpanProcessor(_ENDED))
        trace.set_tracer_provider(_PROVIDER)
    return _PROVIDER


def instrument_ours(*names: str) -> None:
    """Our instrumentors, on the test provider (``openai``, ``litellm``).

    Then waits for the tokenizer data and prices, as the project's own tests do (the ``loaded_data``
    fixture): how ``instrument()`` itself makes a process's first calls exact is not what this suite
    checks. Processor-only scenarios do not wait: there the processor's own wait is under test."""
    from otel_tokenkpi import prices, tokens

    provider = telemetry()
    for name in names:
        if name == "openai":
            from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor

            OpenAIInstrumentor().instrument(tracer_provider=provider)
        elif name == "litellm":
            from otel_tokenkpi.instrumentors.litellm import LiteLLMInstrumentor

            LiteLLMInstrumentor().instrument(tracer_provider=provider)
        else:
            raise ValueError(name)
    tokens.wait_until_loaded(60)
    prices.wait_until_loaded(60)


def _span(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "span_id": span.context.span_id if span.context else 0,
        "parent_id": span.parent.span_id if span.parent else None,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else "",
        "start": span.start_time,
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
    }


def record(
    run: Run, final: Any, spans: list[ReadableSpan] | None, ended: list[ReadableSpan] | None = None
) -> dict[str, Any]:
    return {
        "ended": None if ended is None else [_span(s) for s in ended],
        "final": final,
        "tools": run.tools,
        "requests": [{"path": r.path, "body": r.body} for r in run.fake.requests if not r.path.endswith("/embeddings")],
        "spans": None if spans is None else [_span(s) for s in spans],
    }


def run_twice(
    drive: Callable[[Run], Any],
    instrument: Callable[[], None],
    replies: Callable[[], list[Reply]] = script,
    before: Callable[[Run], Any] | None = None,
) -> dict[str, Any]:
    """Plain, then instrumented, against the same script; both records.

    ``before`` runs before anything is instrumented and its result is passed to both runs' ``drive``
    (a client built before ``instrument()``).
    """
    out: dict[str, Any] = {}
    with FakeOpenAIServer() as fake:
        run = Run(fake)
        early = before(run) if before is not None else None
        for phase in ("plain", "instrumented"):
            fake.reset()
            fake.enqueue(*replies())
            run.tools = []
            if phase == "instrumented":
                instrument()
            provider = telemetry() if phase == "instrumented" else None
            if provider is None:
                final = drive_with(drive, run, early)
                out[phase] = record(run, final, None)
                continue
            _EXPORTER.clear()
            _ENDED.clear()
            with provider.get_tracer("tests.frameworks").start_as_current_span("run"):
                final = drive_with(drive, run, early)
            provider.force_flush()
            out[phase] = record(run, final, list(_EXPORTER.get_finished_spans()), list(_ENDED.get_finished_spans()))
    return out


def drive_with(drive: Callable[..., Any], run: Run, early: Any) -> Any:
    return drive(run) if early is None else drive(run, early)


def main(scenarios: dict[str, Callable[[], dict[str, Any]]], name: str) -> None:
    os.environ.setdefault("OPENAI_API_KEY", "sk-test")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm would fetch it, with retries
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("CREWAI_DISABLE_TRACKING", "true")
    result = scenarios[name]()
    print("TOKENKPI-FRAMEWORK-RESULT " + json.dumps(result, default=str))
