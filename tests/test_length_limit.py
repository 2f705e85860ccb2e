"""Content capture honours ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (and the span-specific
``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``), read by the SDK's ``SpanLimits`` when the TracerProvider is made.

Decision: the SDK truncates, we do not. Captured messages are JSON strings set as span attributes, so the
SDK cuts them at the limit like any other string (``value[:limit]``): the exported value never exceeds the
limit, even through TokenKPISpanProcessor's enriched copy, but a cut value is no longer valid JSON. The GenAI
semantic conventions leave truncation to the SDK's attribute limits; a user who needs parseable content sets a
limit above their largest conversation (or none). Counts are unaffected: they come from the record, not from
the attribute.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from conftest import Telemetry

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import Reply, ToolCall

LIMIT = 200
LONG = "Tell me about Paris. " * 100  # 2100 characters


@pytest.fixture(params=["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"])
def limited(request: Any, loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(request.param, str(LIMIT))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    telemetry = Telemetry()  # the SDK reads the limit here
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    yield telemetry
    instrumentor.uninstrument()


def test_captured_content_never_exceeds_the_limit(limited: Telemetry, fake: Any) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
    fake.enqueue(Reply(text=LONG, tool_calls=[ToolCall("lookup", '{"q": "' + "x" * 500 + '"}')], prompt_tokens=900))
    client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": LONG}, {"role": "user", "content": LONG}],
    )
    span = limited.span()
    for key in (sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES):
        value = span.attributes[key]
        assert len(value) == LIMIT, key  # cut by the SDK, as any string attribute
        assert value.startswith('[{"')
    assert all(len(v) <= LIMIT for v in span.attributes.values() if isinstance(v, str))
    # Counts come from the record, not from the cut attribute.
    assert span.attributes[sc.USAGE_INPUT_TOKENS] == 900
    assert span.attributes[sc.CONTEXT_SYSTEM_TOKENS] > LIMIT // 4


def test_short_content_is_left_whole_and_valid(limited: Telemetry, fake: Any) -> None:
    import json

    client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
    fake.enqueue(Reply(text="Lovely."))
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Paris?"}])
    span = limited.span()
    assert json.loads(span.attributes[sc.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Paris?"}]}
    ]
    assert len(span.attributes[sc.OUTPUT_MESSAGES]) < LIMIT
