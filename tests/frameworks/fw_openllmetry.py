"""OpenLLMetry's openai instrumentation beside ours, in both orders, on a plain tool loop with the openai
SDK: applied after ours its span wraps ours (dropped, ours re-parented), applied before ours its span is
nested under ours (dropped). Either way one model-call span per HTTP call."""

from __future__ import annotations

import json
from typing import Any

from _harness import MODEL, QUESTION, SYSTEM, TOOL_DESCRIPTION, Run, instrument_ours, run_twice, telemetry

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": TOOL_DESCRIPTION,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def drive(run: Run) -> Any:
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=run.base_url, max_retries=0)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    for _turn in range(5):
        message = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS).choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content
        for call in message.tool_calls:
            result = run.get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return None


def _openllmetry() -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=telemetry())


def _setup(order: str):
    def instrument() -> None:
        if order == "openllmetry-after-ours":
            instrument_ours("openai")
            _openllmetry()
        else:
            _openllmetry()
            instrument_ours("openai")

    return instrument


SCENARIOS = {
    order: (lambda order=order: run_twice(drive, _setup(order)))
    for order in ("openllmetry-after-ours", "openllmetry-before-ours")
}
