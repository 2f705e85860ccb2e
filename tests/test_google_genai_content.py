"""How google-genai requests are read: the forms ``contents`` may take (checked against the SDK's own
``t_contents`` grouping), and opt-in content capture in the semconv shapes."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator

import _gemini_support
import pytest
from _gemini_support import CAPTURE_ENV, MODEL, instrumented
from _telemetry import Telemetry
from google.genai import _transformers, types

from otel_tokenkpi.instrumentors._google_genai_request import read_contents
from otel_tokenkpi.testing.fake_gemini import Reply, ToolCall

# The shared fixtures (assigned, not imported by name, so that test arguments may use the names).
gemini_server, gemini, gclient, gtelemetry = (
    _gemini_support.gemini_server,
    _gemini_support.gemini,
    _gemini_support.gclient,
    _gemini_support.gtelemetry,
)

CONTENT_ATTRIBUTES = ("gen_ai.system_instructions", "gen_ai.input.messages", "gen_ai.output.messages")
CANARY = "canary-5d1e"
SYSTEM = f"You are WeatherBot. {CANARY}-system"
USER = f"Weather in Paris? {CANARY}-user"
RESULT = {"temperature_c": 18, "note": f"{CANARY}-result"}
ANSWER = f"Rainy, 18 degrees. {CANARY}-answer"
HISTORY = [
    types.Content(role="user", parts=[types.Part.from_text(text=USER)]),
    types.Content(
        role="model",
        parts=[
            types.Part.from_text(text="Let me check."),
            types.Part(function_call=types.FunctionCall(id="fc_1", name="get_weather", args={"city": "Paris"})),
        ],
    ),
    types.Content(
        role="user",
        parts=[types.Part(function_response=types.FunctionResponse(id="fc_1", name="get_weather", response=RESULT))],
    ),
]
EXPECTED_HISTORY = [
    {"role": "user", "parts": [{"type": "text", "content": USER}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": "Let me check."},
            {"type": "tool_call", "id": "fc_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        ],
    },
    {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "fc_1", "response": json.dumps(RESULT, separators=(",", ":"))}],
    },
]

CALL = types.Part(function_call=types.FunctionCall(name="lookup", args={"q": "x"}))
ANSWERED = types.Part(function_response=types.FunctionResponse(name="lookup", response={"hits": 2}))
CONTENT_FORMS = {
    "string": "Hello there",
    "list of strings": ["Hello", " there"],
    "part": types.Part.from_text(text="A part"),
    "function call part": CALL,
    "content object": types.Content(role="model", parts=[types.Part.from_text(text="Earlier answer")]),
    "content dict": {"role": "user", "parts": [{"text": "A dict"}, {"text": " in two parts"}]},
    "part dict": {"text": "A part dict"},
    "list of contents": HISTORY,
    "loose parts grouped by role": ["Ask", CALL, ANSWERED, "Follow-up"],
    "nested list": [["Inner", " list"], {"role": "model", "parts": [{"text": "Reply"}]}],
    "thought excluded": [
        types.Content(role="model", parts=[types.Part(text="hmm", thought=True), types.Part(text="A")])
    ],
}


def sdk_t_contents(contents: object) -> list:
    """The SDK's own normalisation of ``contents`` (google-genai < 1.21 took the API client first; unused there)."""
    if "client" in inspect.signature(_transformers.t_contents).parameters:
        return _transformers.t_contents(None, contents)
    return _transformers.t_contents(contents)


def shape(items: list) -> list:
    return [(i.role, i.text, [(c.name, c.arguments, c.id) for c in i.tool_calls], i.tool_call_id) for i in items]


@pytest.mark.parametrize("contents", list(CONTENT_FORMS.values()), ids=list(CONTENT_FORMS))
def test_contents_are_grouped_as_the_sdk_groups_them(contents):
    """Reading the user's ``contents`` gives the same turns as reading the SDK's normalised ``t_contents``."""
    normalised = sdk_t_contents(contents)
    assert shape(read_contents(contents)) == shape(read_contents(normalised))
    assert read_contents(contents)  # something was read


def test_contents_reading_details():
    items = read_contents(["Ask", CALL, ANSWERED, "Follow-up"])
    assert shape(items) == [
        ("user", "Ask", [], ""),
        ("assistant", "", [("lookup", '{"q":"x"}', "")], ""),
        ("tool", '{"hits":2}', [], "lookup"),  # no id: the function's name links result and call
        ("user", "Follow-up", [], ""),
    ]
    assert shape(read_contents(CONTENT_FORMS["thought excluded"])) == [("assistant", "A", [], "")]


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch, loaded_data: None) -> Iterator[Telemetry]:
    monkeypatch.setenv(CAPTURE_ENV, "true")  # before instrument(): the Recorder reads it there
    with instrumented() as telemetry:
        yield telemetry


@pytest.fixture(params=["unset", "false"])
def not_capturing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, loaded_data: None):
    if request.param == "unset":
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
    else:
        monkeypatch.setenv(CAPTURE_ENV, request.param)
    with instrumented() as telemetry:
        yield telemetry


def content(span, name: str):
    assert name in span.attributes, sorted(span.attributes)
    return json.loads(span.attributes[name])


def test_capture_on_records_semconv_messages(capturing, gemini, gclient):
    gemini.enqueue(Reply(text=ANSWER, tool_calls=[ToolCall("get_weather", '{"city":"Oslo"}', id="fc_2")]))
    gclient.models.generate_content(model=MODEL, contents=HISTORY, config={"system_instruction": SYSTEM})
    span = capturing.span()
    assert content(span, "gen_ai.system_instructions") == [{"type": "text", "content": SYSTEM}]
    assert content(span, "gen_ai.input.messages") == EXPECTED_HISTORY
    assert content(span, "gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": ANSWER},
                {"type": "tool_call", "id": "fc_2", "name": "get_weather", "arguments": {"city": "Oslo"}},
            ],
            "finish_reason": "STOP",
        }
    ]


def test_capture_on_stream_output_accumulates(capturing, gemini, gclient):
    gemini.enqueue(Reply(text=ANSWER, thought_text=f"thinking {CANARY}-thought"))
    text = "".join(c.text or "" for c in gclient.models.generate_content_stream(model=MODEL, contents=USER))
    assert text == ANSWER
    output = content(capturing.span(), "gen_ai.output.messages")
    assert output == [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "STOP"}]


def test_capture_off_records_no_content(not_capturing, gemini, gclient):
    gemini.enqueue(Reply(text=ANSWER))
    gclient.models.generate_content(model=MODEL, contents=HISTORY, config={"system_instruction": SYSTEM})
    span = not_capturing.span()
    for name in CONTENT_ATTRIBUTES:
        assert name not in span.attributes
    assert not any(CANARY in str(value) for value in span.attributes.values())
    assert span.attributes["tokenkpi.context.tool_results_tokens"] > 0  # counts are still there
