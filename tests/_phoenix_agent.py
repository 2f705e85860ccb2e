"""An instrumented tool-calling agent run, exported with ``otel_tokenkpi.instrument()`` to wherever the
standard ``OTEL_*`` environment points (the Phoenix end-to-end test and ``docs/screenshot_phoenix.py``).

Run as a script in a fresh interpreter (``instrument()`` sets global providers, once per process). The
"model" is the fake OpenAI server embedded in the package, scripted so that the run has every kind of
number the backend must keep: two parallel tool calls, then the same weather call again with its
arguments reordered (a duplicate tool call), then an answer partly served from the cache. The script
prints one ``RESULT {json}`` line: the trace id and the attributes of every span as the SDK held them
at ``end()``, so a test can compare them with what the backend stored.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import otel_tokenkpi
from otel_tokenkpi import prices, tokens
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

MARK = "RESULT "
MODEL = "gpt-4o-mini"
TASK = "travel-assistant"
SYSTEM = "You are a travel assistant. Use the tools, then answer in one sentence."
QUESTION = "Weather in Paris, and a hotel under 150 EUR?"
DUPLICATE_ARGUMENTS = '{"unit": "C", "city": "Paris"}'
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "find_hotel",
            "description": "A hotel in a city below a nightly price in EUR.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "max_price": {"type": "number"}},
                "required": ["city"],
            },
        },
    },
]
# What the fake model answers, turn by turn; the usage numbers are what the backend must show.
REPLIES = [
    Reply(
        text=None,
        tool_calls=[
            ToolCall("get_weather", '{"city": "Paris", "unit": "C"}'),
            ToolCall("find_hotel", '{"city": "Paris", "max_price": 150}'),
        ],
        prompt_tokens=182,
        completion_tokens=46,
    ),
    Reply(
        text=None,
        tool_calls=[ToolCall("get_weather", DUPLICATE_ARGUMENTS)],
        prompt_tokens=279,
        completion_tokens=21,
    ),
    Reply(
        text="Paris is clear and 21C; Hotel du Parc has a room for 129 EUR.",
        prompt_tokens=322,
        completion_tokens=19,
        cached_tokens=128,
    ),
]


def run_tool(name: str, arguments: str) -> dict[str, Any]:
    args = json.loads(arguments)
    if name == "get_weather":
        return {"city": args["city"], "temp": 21, "unit": args.get("unit", "C"), "sky": "clear"}
    return {"city": args["city"], "hotel": "Hotel du Parc", "price_eur": min(args.get("max_price", 150), 129)}


def run_agent(client: openai.OpenAI) -> str:
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    for _ in range(len(REPLIES)):
        message = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS).choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message)
        for call in message.tool_calls:
            result = run_tool(call.function.name, call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    return ""


class KeepSpans(SpanProcessor):
    """The spans as the SDK ended them, to compare with what the backend stored."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def _as_json(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.get_span_context(), span.parent
    return {
        "name": span.name,
        "span_id": format(context.span_id, "016x") if context else "",
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
    }


def main() -> int:
    otel_tokenkpi.instrument()
    # Exact token counts and prices from the first call on (they load in the background otherwise).
    if not (tokens.wait_until_loaded(30) and prices.wait_until_loaded(30)):
        print("tokenizer or price data did not load", file=sys.stderr)
        return 1
    provider: Any = trace.get_tracer_provider()
    kept = KeepSpans()
    provider.add_span_processor(kept)
    with FakeOpenAIServer() as server:
        server.enqueue(*REPLIES)
        client = openai.OpenAI(api_key="sk-fake", base_url=server.url + "/v1", max_retries=0)
        with otel_tokenkpi.attributes(team="travel"), otel_tokenkpi.task(TASK):
            answer = run_agent(client)
            otel_tokenkpi.record_outcome(bool(answer))
            trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
    flushed = provider.force_flush(30_000)
    print(MARK + json.dumps({"trace_id": trace_id, "answer": answer, "spans": [_as_json(s) for s in kept.spans]}))
    return 0 if flushed and answer else 1


if __name__ == "__main__":
    os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
    sys.exit(main())
