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


def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "temp_c": 21, "sky": "clear"}


def find_hotel(city: str, max_price: float = 150) -> dict[str, Any]:
    return {"city": city, "hotel": "Hotel du Parc", "price_eur": min(max_price, 129)}


def script_fake_model(server: FakeOpenAIServer) -> None:
    """What the embedded 'model' answers: two parallel tool calls, then text."""
    server.enqueue(
        Reply(
            text=None,
            tool_calls=[
                ToolCall("get_weather", '{"city": "Paris"}'),
                ToolCall("find_hotel", '{"city": "Paris", "max_price": 150}'),
            ],
            prompt_tokens=182,
            completion_tokens=46,
        ),
        Reply(
            text="Paris is clear and 21C; Hotel du Parc has a room for 129 EUR.",
            prompt_tokens=279,
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
        tracer = trace.get_tracer("tokenkpi-demo")
        with tracer.start_as_current_span("invoke_agent travel-assistant"):
            answer = run_agent(client, "Weather in Paris, and a hotel under 150 EUR?")
    finally:
        if server is not None:
            server.stop()
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    print(f"\nAgent answer: {answer}")
    print("Each 'chat gpt-4o-mini' span above carries gen_ai.usage.*, tokenkpi.context.* and tokenkpi.cost.usd.")


if __name__ == "__main__":
    main()
