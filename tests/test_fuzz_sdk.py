"""Weird but valid inputs through real SDKs, end to end, and the engine's JSON helpers under hypothesis.

The SDKs accept these (a 10 MB user message, the SDK's own pydantic objects as history, image bytes, lone
surrogates, which their JSON encoders escape): the call must return what it returns uninstrumented, and the
span must carry sane counts and, with content capture on, valid UTF-8 JSON.
"""

from __future__ import annotations

import json
from typing import Any

import _fuzz_support as fz
import pytest
from _gemini_support import make_client as make_gemini_client
from _telemetry import Telemetry
from google.genai import types
from hypothesis import given
from hypothesis import strategies as st

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.identity import canonical_json, tool_call_key
from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.invocation import ToolCall
from otel_tokenkpi.testing import fake_gemini
from otel_tokenkpi.testing.fake_openai import Reply

TEN_MB = "lorem ipsum " * 873_814  # 10 MB


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")


def test_ten_megabyte_message_is_estimated_not_encoded(telemetry: Telemetry, openai_client: Any, fake: Any) -> None:
    fake.enqueue(Reply(text="Long.", prompt_tokens=2_000_000))
    openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TEN_MB}])
    attrs = telemetry.span().attributes
    assert attrs[sc.USAGE_INPUT_TOKENS] == 2_000_000
    assert attrs[sc.TOKENS_ESTIMATED] is True  # beyond tokens._MAX_EXACT_CHARS: estimated, and flagged
    assert attrs[sc.CONTEXT_NEW_TOKENS] > 1_000_000 and attrs[sc.CONTEXT_RESENT_TOKENS] == 0
    assert 0 <= attrs[sc.WASTE_RATIO] <= 1


def test_sdk_objects_as_history_and_lone_surrogates(
    capture: None, telemetry: Telemetry, openai_client: Any, fake: Any
) -> None:
    """A reply whose JSON holds a lone-surrogate escape (the SDK parses it into the text; the SDK itself
    refuses to SEND one, so it only arrives this way): captured output stays valid UTF-8 JSON. The SDK's own
    response message (a pydantic model) then goes back as history."""
    fake.enqueue(Reply(text="First \ud800."), Reply(text="Second."))
    first = openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])
    assert first.choices[0].message.content == "First \ud800."
    output = telemetry.spans()[-1].attributes[sc.OUTPUT_MESSAGES]
    output.encode("utf-8")
    assert json.loads(output)[0]["parts"][0]["content"] == "First \ud800."
    history = [{"role": "user", "content": "a"}, first.choices[0].message, {"role": "user", "content": "b"}]
    first.choices[0].message.content = "First."  # what the user would re-send
    second = openai_client.chat.completions.create(model="gpt-4o", messages=history)
    assert second.choices[0].message.content == "Second."
    span = telemetry.spans()[-1]
    assert [m["role"] for m in json.loads(span.attributes[sc.INPUT_MESSAGES])] == ["user", "assistant", "user"]
    assert span.attributes[sc.CONTEXT_RESENT_TOKENS] > 0


def test_image_bytes_count_as_no_text(capture: None, loaded_data: None) -> None:
    """google-genai takes raw image bytes in a Part: they are not text, and the call is counted normally."""
    telemetry = Telemetry()
    instrumentor = GoogleGenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        with fake_gemini.FakeGeminiServer() as server:
            server.enqueue(fake_gemini.Reply(text="A cat.", input_tokens=300))
            image = types.Part.from_bytes(data=fz.PNG * 1000, mime_type="image/png")
            client = make_gemini_client(server)  # kept: a collected client closes its HTTP client
            client.models.generate_content(
                model="gemini-2.5-flash", contents=[types.Content(role="user", parts=[image, types.Part(text="What?")])]
            )
    finally:
        instrumentor.uninstrument()
    attrs = telemetry.span().attributes
    assert attrs[sc.USAGE_INPUT_TOKENS] == 300
    assert 0 < attrs[sc.CONTEXT_NEW_TOKENS] < 10  # "What?" only
    json.loads(attrs[sc.INPUT_MESSAGES]).pop()["parts"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | fz.text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(fz.text, children, max_size=4),
    max_leaves=20,
)


@fz.FUZZ
@given(value=json_values, text=st.one_of(fz.text, st.sampled_from(fz.LONE_SURROGATES + ["[" * 5000, "{}" * 3])))
def test_canonical_json_and_tool_call_key_are_total(value: Any, text: str) -> None:
    """Any text is a key (JSON or not, surrogates, 5000-deep brackets); equal JSON values are equal keys
    whatever the key order and spacing."""
    assert isinstance(canonical_json(text), str)
    assert tool_call_key(ToolCall("t", text)) == tool_call_key(ToolCall("t", text))
    compact, spaced = json.dumps(value), json.dumps(value, indent=2, sort_keys=True)
    assert canonical_json(compact) == canonical_json(spaced)
    assert tool_call_key(ToolCall("t", compact)) == tool_call_key(ToolCall("t", spaced))
