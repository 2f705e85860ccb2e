"""The agent waste demo: a tool-calling agent that wastes tokens in the common ways.

``otel-tokenkpi demo`` (and ``examples/agent_waste_demo.py``) run it against a fake provider embedded in
the package, through the real ``openai`` or ``anthropic`` SDK over real HTTP: no API key, no network. The
scripted "model" and the agent's own habits plant one of each kind of waste the engine reports:

1. the agent offers three tools; ``book_flight`` is never called (unused tool schema, on every call);
2. the model calls ``get_weather`` and ``find_hotel`` in parallel;
3. the whole history is re-sent without prompt caching (uncached re-sent context), and the model asks
   for the weather again, its arguments in another order (a duplicate tool call);
4. the duplicate's result goes back and the answer is cut off at ``max_tokens`` (truncated output);
5. the agent re-sends the identical request (a repeated request), cut off again;
6. it keeps the cut answer, asks for it in full with a larger ``max_tokens``, and the provider fails
   (HTTP 500); the agent retries: the answer, part of the prompt now served from the provider's cache.

The spans go wherever the caller's TracerProvider sends them; :class:`WasteTable` prints what they say.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import api, prices, tokens
from ._demo_table import WasteTable

__all__ = ["PROVIDERS", "STEPS", "WasteTable", "run_agent"]

PROVIDERS = ("openai", "anthropic")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
TASK = "travel-assistant"
TEAM = "travel"
SYSTEM = "You are a travel assistant. Use the tools, then answer in two sentences."
QUESTION = "What's the weather in Paris, and is there a hotel under 150 EUR?"
SHORT_MAX_TOKENS, LONG_MAX_TOKENS = 24, 300
CUT_ANSWER = "Paris is clear and 21C today. Hotel du Parc has a room"
CONTINUE = "Your answer was cut off. Please give it again in full."
ANSWER = "Paris is clear and 21C today. Hotel du Parc has a room for 129 EUR a night, under your budget."
TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
    {
        "name": "find_hotel",
        "description": "A hotel in a city below a nightly price in EUR.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "max_price": {"type": "number"}},
            "required": ["city"],
        },
    },
    {
        "name": "book_flight",
        "description": "Book a flight between two airports on a date (YYYY-MM-DD) for a number of passengers.",
        "parameters": {
            "type": "object",
            "properties": {
                "origin": {"type": "string", "description": "IATA code"},
                "destination": {"type": "string", "description": "IATA code"},
                "date": {"type": "string"},
                "passengers": {"type": "integer", "minimum": 1},
            },
            "required": ["origin", "destination", "date"],
        },
    },
]


@dataclass(frozen=True)
class Step:
    """One scripted model answer, provider-neutral. ``input_tokens`` includes ``cached_tokens``."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    text: str | None = None
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, JSON arguments)
    truncated: bool = False
    status: int = 200


# Usage numbers as a provider would bill them: local content counts plus a little per-message framing.
STEPS = (
    Step(
        236,
        46,
        tool_calls=(
            ("get_weather", '{"city": "Paris", "unit": "C"}'),
            ("find_hotel", '{"city": "Paris", "max_price": 150}'),
        ),
    ),
    Step(318, 21, tool_calls=(("get_weather", '{"unit": "C", "city": "Paris"}'),)),
    Step(360, SHORT_MAX_TOKENS, text=CUT_ANSWER, truncated=True),
    Step(360, SHORT_MAX_TOKENS, text=CUT_ANSWER, truncated=True),
    Step(status=500),
    Step(392, 27, cached_tokens=256, text=ANSWER),
)


def get_weather(city: str, unit: str = "C") -> dict[str, Any]:
    return {"city": city, "temp": 21, "unit": unit, "sky": "clear"}


def find_hotel(city: str, max_price: float = 150) -> dict[str, Any]:
    return {"city": city, "hotel": "Hotel du Parc", "price_eur": min(max_price, 129)}


TOOL_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {"get_weather": get_weather, "find_hotel": find_hotel}


def run_tool(name: str, arguments: str) -> str:
    return json.dumps(TOOL_FUNCTIONS[name](**json.loads(arguments)))


def run_agent(provider: str = "openai", *, tracer_provider: Any = None, meter_provider: Any = None) -> str:
    """Run the wasteful agent against the embedded fake ``provider``; return its answer.

    Instruments that provider's SDK with the given providers (None: the global ones) for the run only,
    inside ``otel_tokenkpi.attributes(team="travel")`` and ``otel_tokenkpi.task("travel-assistant")``.
    Raises ``ImportError`` when the SDK is missing and ``RuntimeError`` when it is instrumented already
    (the instrumentor is a per-process singleton: the run could neither use its own providers nor undo it).
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown demo provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    importlib.import_module(provider)  # ImportError before anything is patched (no instrumentor warnings)
    from . import _demo_agents

    driver = _demo_agents.DRIVERS[provider]
    instrumentor = driver.instrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # a singleton: instrumenting again would be a no-op
        raise RuntimeError(
            f"the {provider} SDK is already instrumented in this process (otel_tokenkpi.instrument() or "
            "opentelemetry-instrument); run the demo in a process of its own"
        )
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    # Exact token counts and prices from the first call (they load in the background otherwise).
    tokens.wait_until_loaded(30)
    prices.wait_until_loaded(30)
    try:
        with driver.serve(STEPS) as client, api.attributes(team=TEAM), api.task(TASK):
            answer = _agent_loop(driver.conversation(client, MODELS[provider], SYSTEM, QUESTION, TOOLS))
            api.record_outcome(answer == ANSWER)
            return answer
    finally:
        instrumentor.uninstrument()


def _agent_loop(chat: Any) -> str:
    """The agent's habits, whatever the provider: ``chat`` is a :class:`_demo_agents.Conversation`."""
    max_tokens = SHORT_MAX_TOKENS
    retried = False
    for _ in range(8):
        try:
            reply = chat.ask(max_tokens)
        except chat.server_error:
            if retried:
                raise
            retried = True  # retry once, as agents do
            continue
        if reply.tool_calls:
            chat.add_tool_results([(call_id, run_tool(name, args)) for call_id, name, args in reply.tool_calls])
            continue
        if not reply.truncated:
            return reply.text
        if not chat.asked_again:
            chat.asked_again = True  # "maybe it was a glitch": the same request again
            continue
        chat.add_turns(reply.text, CONTINUE)  # keep the cut answer, ask for it whole, with room this time
        max_tokens = LONG_MAX_TOKENS
    return "(gave up)"
