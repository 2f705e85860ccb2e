"""Fixtures for the Anthropic tests: the fake Messages API, the real SDK's clients pointed at it, and
an instrumented ``AnthropicInstrumentor`` recording into in-memory SDK exporters.

Test modules import the fixtures they use by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import anthropic
import pytest
from _telemetry import Telemetry

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.testing.fake_anthropic import FakeAnthropicServer

MODEL = "claude-haiku-4-5"  # priced in genai-prices (context window 200000); not deprecated in the SDK
SCOPE = "otel_tokenkpi.instrumentors.anthropic"
SDK_SCOPE = "com.anthropic.sdk.python"  # the anthropic SDK's own tracer
USER = [{"role": "user", "content": "Describe Paris in a few words."}]


def our_spans(telemetry: Telemetry) -> list:
    return [s for s in telemetry.spans() if s.instrumentation_scope.name == SCOPE]


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as fake:
        yield fake


@pytest.fixture
def afake(anthropic_server: FakeAnthropicServer) -> FakeAnthropicServer:
    anthropic_server.reset()
    return anthropic_server


@pytest.fixture
def atelemetry(loaded_data: None) -> Iterator[Telemetry]:
    t = Telemetry()
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=t.tracer_provider, meter_provider=t.meter_provider)
    try:
        yield t
    finally:
        instrumentor.uninstrument()


# The SDK's own spans (anthropic >= 2) are the subject of test_anthropic_coexistence.py only.
QUIET = {"open_telemetry": False} if "open_telemetry" in inspect.signature(anthropic.Anthropic).parameters else {}


@pytest.fixture
def anthropic_client(afake: FakeAnthropicServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=afake.url, max_retries=0, **QUIET)


@pytest.fixture
def async_anthropic_client(afake: FakeAnthropicServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=afake.url, max_retries=0, **QUIET)
