"""Content capture honours ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (and the span-specific
``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``), read by the SDK's ``SpanLimits`` when the TracerProvider is made.

Captured messages are JSON strings set as span attributes. The SDK cuts any string at the limit
(``value[:limit]``), which would leave JSON no backend can parse; so the recorder reads the span's limit and
fits each value first (``content.json_array_within``): the newest messages that fit, the oldest of them with
its texts cut short ("…"), a valid JSON array within the limit. Counts are unaffected: they come from the
record, not from the attribute.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from _telemetry import Telemetry

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
    inputs = json.loads(span.attributes[sc.INPUT_MESSAGES])
    outputs = json.loads(span.attributes[sc.OUTPUT_MESSAGES])
    for key in (sc.INPUT_MESSAGES, sc.OUTPUT_MESSAGES):
        assert LIMIT - 10 <= len(span.attributes[key]) <= LIMIT, key  # fitted, not cut by the SDK
    # The newest message is kept (cut), the older system message is left out.
    assert [m["role"] for m in inputs] == ["user"]
    (text_part,) = inputs[0]["parts"]
    assert text_part["content"].endswith("…") and LONG.startswith(text_part["content"][:-1])
    (answer,) = outputs
    assert answer["role"] == "assistant" and answer["finish_reason"] == "tool_calls"
    text, call = answer["parts"]
    assert text["content"].endswith("…") and LONG.startswith(text["content"][:-1])
    assert call["name"] == "lookup" and call["arguments"].endswith("…")  # cut arguments stay a string
    assert all(len(v) <= LIMIT for v in span.attributes.values() if isinstance(v, str))
    # Counts come from the record, not from the cut attribute.
    assert span.attributes[sc.USAGE_INPUT_TOKENS] == 900
    assert span.attributes[sc.CONTEXT_SYSTEM_TOKENS] > LIMIT // 4


def test_short_content_is_left_whole_and_valid(limited: Telemetry, fake: Any) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
    fake.enqueue(Reply(text="Lovely."))
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Paris?"}])
    span = limited.span()
    assert json.loads(span.attributes[sc.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Paris?"}]}
    ]
    assert len(span.attributes[sc.OUTPUT_MESSAGES]) < LIMIT
