"""Shared fixtures: offline tokenizer data, the fake OpenAI server, and an
instrumented OpenAI SDK recording into in-memory SDK exporters."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).parent))

from seed_tiktoken_cache import seed  # noqa: E402

from otel_tokenkpi import TokenKPISpanProcessor, prices, tokens  # noqa: E402
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer  # noqa: E402


def pytest_configure(config: Any) -> None:
    # Tests never reach the network: tiktoken reads a seeded cache dir.
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiktoken-cache-")
    seed(os.environ["TIKTOKEN_CACHE_DIR"])
    os.environ.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)


@pytest.fixture(scope="session")
def loaded_data() -> None:
    """Exact token counts and prices from the first call on."""
    tokens.start_loading()
    prices.start_loading()
    assert tokens.wait_until_loaded(30)
    assert prices.wait_until_loaded(30)


@pytest.fixture(scope="session")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    return server


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


@pytest.fixture
def telemetry(loaded_data: None) -> Iterator[Telemetry]:
    from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor

    with instrumented_with(OpenAIInstrumentor) as t:
        yield t


@pytest.fixture
def openai_client(fake: FakeOpenAIServer) -> Any:
    import openai

    return openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)


@pytest.fixture
def async_openai_client(fake: FakeOpenAIServer) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)


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
