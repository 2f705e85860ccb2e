"""A small tool-calling agent, instrumented with one line.

By default it talks to the fake OpenAI server embedded in otel-tokenkpi (no
API key, no network) and prints the spans to the console, so a newcomer sees
GenAI spans with token, context and cost attributes in seconds. With
``OPENAI_API_KEY`` set and no ``OPENAI_BASE_URL`` override it talks to the
real API instead. Set ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and
``OTEL_TRACES_EXPORTER=otlp``) to send the spans to Jaeger, Honeycomb, ...

    python examples/agent_demo.py
"""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("OTEL_SERVICE_NAME", "tokenkpi-demo")
os.environ.setdefault("OTEL_TRACES_EXPORTER", "console")
os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")

import openai  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor  # noqa: E402

import otel_tokenkpi  # noqa: E402
from otel_tokenkpi import prices, tokens  # noqa: E402
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall  # noqa: E402

MODEL = "gpt-4o-mini"
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


def get_weather(city: str, unit: str = "C") -> dict[str, Any]:
    return {"city": city, "temp": 21, "unit": unit, "sky": "clear"}


def find_hotel(city: str, max_price: float = 150) -> dict[str, Any]:
    return {"city": city, "hotel": "Hotel du Parc", "price_eur": min(max_price, 129)}


def script_fake_model(server: FakeOpenAIServer) -> None:
    """What the embedded 'model' answers: two parallel tool calls, the weather again
    (a duplicate call, its arguments in another order), then text."""
    server.enqueue(
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
            tool_calls=[ToolCall("get_weather", '{"unit": "C", "city": "Paris"}')],
            prompt_tokens=279,
            completion_tokens=21,
        ),
        Reply(
            text="Paris is clear and 21C; Hotel du Parc has a room for 129 EUR.",
            prompt_tokens=322,
            completion_tokens=19,
            cached_tokens=128,
        ),
    )


def run_agent(client: openai.OpenAI, question: str) -> str:
    messages: list[Any] = [
        {"role": "system", "content": "You are a travel assistant. Use the tools, then answer in one sentence."},
        {"role": "user", "content": question},
    ]
    for _ in range(5):
        response = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        message = response.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message)
        for call in message.tool_calls:
            tool = {"get_weather": get_weather, "find_hotel": find_hotel}[call.function.name]
            result = tool(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    return "(gave up after 5 turns)"


class WasteTable(SpanProcessor):
    """Collects the model-call and task spans to print what the tokens bought."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.tasks: list[Any] = []

    def on_end(self, span: Any) -> None:
        operation = span.attributes.get("gen_ai.operation.name")
        if operation == "chat":
            self.calls.append(span.attributes)
        elif operation == "invoke_workflow":
            self.tasks.append(span.attributes)

    def print(self) -> None:
        columns = [
            ("in", "gen_ai.usage.input_tokens"),
            ("out", "gen_ai.usage.output_tokens"),
            ("resent", "tokenkpi.context.resent_tokens"),
            ("uncached resent", "tokenkpi.waste.uncached_resent_tokens"),
            ("dup tool calls", "tokenkpi.waste.duplicate_tool_call_tokens"),
            ("waste", "tokenkpi.waste.tokens"),
        ]
        print("call  " + "  ".join(f"{title:>15}" for title, _ in columns))
        for index, attrs in enumerate(self.calls, 1):
            print(f"{index:>4}  " + "  ".join(f"{attrs.get(key, '-'):>15}" for _, key in columns))
        for attrs in self.tasks:
            print(
                f"\ntask {attrs.get('gen_ai.agent.name')}: {attrs.get('tokenkpi.trace.llm_calls')} calls, "
                f"waste {attrs.get('tokenkpi.trace.waste.tokens')} tokens "
                f"({attrs.get('tokenkpi.trace.waste.ratio', 0):.0%}), "
                f"unused tool schemas {attrs.get('tokenkpi.trace.waste.unused_tool_definitions_tokens')} tokens, "
                f"outcome {attrs.get('tokenkpi.outcome')}, "
                f"{attrs.get('tokenkpi.trace.tokens_per_success', '-')} tokens per success"
            )


def main() -> None:
    otel_tokenkpi.instrument()
    # Exact token counts from the first call (the data loads in the background otherwise).
    tokens.wait_until_loaded(10)
    prices.wait_until_loaded(10)

    use_real_api = bool(os.environ.get("OPENAI_API_KEY")) and not os.environ.get("OPENAI_BASE_URL")
    server = None if use_real_api else FakeOpenAIServer().start()
    try:
        if server is not None:
            script_fake_model(server)
            client = openai.OpenAI(api_key="sk-demo", base_url=server.url + "/v1")
        else:
            client = openai.OpenAI()
        summary = WasteTable()
        provider = trace.get_tracer_provider()
        if hasattr(provider, "add_span_processor"):
            provider.add_span_processor(summary)
        with otel_tokenkpi.attributes(team="travel"), otel_tokenkpi.task("travel-assistant"):
            answer = run_agent(client, "Weather in Paris, and a hotel under 150 EUR?")
            otel_tokenkpi.record_outcome(bool(answer))
    finally:
        if server is not None:
            server.stop()
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    print(f"\nAgent answer: {answer}\n")
    summary.print()


if __name__ == "__main__":
    main()
