"""The agent waste demo: a tool-calling agent that wastes tokens in the common ways.

``otel-tokenkpi demo`` (and ``examples/agent_waste_demo.py``) run it against a fake provider embedded in
the package, through the real ``openai`` or ``anthropic`` SDK over real HTTP: no API key, no network. The
scripted "model" and the agent's own habits plant one of each kind of waste the engine reports:

1. the agent offers three tools; ``book_flight`` is never called (unused tool schema, on every call);
2. the model calls ``get_weather`` and ``find_hotel`` in parallel;
3. its 1,000-token system prompt starts with the current time, fresh on every request, so no two
   requests share a prefix and the provider's prompt cache never serves the re-sent history (uncached
   re-sent context; with the time stamp at the end, OpenAI's automatic cache would have); the model asks
   for the weather again, its arguments in another order (a duplicate tool call);
4. the duplicate's result goes back and the answer is cut off at ``max_tokens`` (truncated output);
5. the agent re-sends the identical request (a repeated request), cut off again; being identical, it is
   the one request whose prefix the cache has seen (OpenAI serves it from its cache);
6. it keeps the cut answer, asks for it in full with a larger ``max_tokens``, and the provider fails
   (HTTP 500); the agent retries the same request and gets the answer.

Every scripted usage figure is what the provider would bill (tests/test_demo.py checks them): the
input is the request's content, counted with the model's encoding, plus OpenAI's documented framing of
3 tokens per message and 3 per reply; cached tokens follow OpenAI's rules (a prefix seen before, from
1,024 tokens, in 128-token steps); Anthropic caches nothing without ``cache_control``.

The spans go wherever the caller's TracerProvider sends them; :class:`WasteTable` prints what they say.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import api, prices, tokens
from ._demo_prompt import SYSTEM_PROMPT
from ._demo_table import WasteTable

__all__ = ["PROVIDERS", "WasteTable", "run_agent", "steps"]

PROVIDERS = ("openai", "anthropic")
# Models whose prompt cache starts at 1,024 tokens, so the re-sent prompt below is cacheable on both.
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}
TASK = "travel-assistant"
TEAM = "travel"
SYSTEM = SYSTEM_PROMPT
# The agent's clock, stamped at the top of its system prompt on each new request (fixed for the demo).
CLOCK = ("09:14:02", "09:14:05", "09:14:07", "09:14:11")
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


# The input each call bills, as the provider would: the request's content (the span's resent + new
# tokens, counted with the model's encoding; estimated for Claude, which has no public tokenizer) plus
# OpenAI's documented framing of 3 tokens per message and 3 per reply (assumed for Anthropic too, with its
# system prompt as one message). Calls 4 and 6 re-send calls 3 and 5 as they were. tests/test_demo.py
# checks each figure against the spans.
BILLED_INPUT = {"openai": (1231, 1316, 1360, 1394), "anthropic": (1743, 1820, 1862, 1897)}
TOOL_CALLS = (
    ("get_weather", '{"city": "Paris", "unit": "C"}'),
    ("find_hotel", '{"city": "Paris", "max_price": 150}'),
)
DUPLICATE_CALL = (("get_weather", '{"unit": "C", "city": "Paris"}'),)


def openai_cached_tokens(prefix_tokens: int) -> int:
    """What OpenAI serves from its cache for a prefix it has seen: nothing under 1,024 tokens, then
    128-token steps (platform.openai.com/docs/guides/prompt-caching)."""
    return 0 if prefix_tokens < 1024 else prefix_tokens // 128 * 128


def steps(provider: str) -> tuple[Step, ...]:
    """The scripted model answers for ``provider``: its billed input, output and cache reads per call."""
    first, second, third, last = BILLED_INPUT[provider]
    # Only call 4 repeats a request the provider has seen (call 3, byte for byte): OpenAI's automatic
    # cache serves its prefix; Anthropic caches nothing without cache_control. Call 6 repeats call 5,
    # which failed: a failed request leaves no cache entry to count on.
    repeat_cached = openai_cached_tokens(third) if provider == "openai" else 0
    return (
        Step(first, 46, tool_calls=TOOL_CALLS),
        Step(second, 21, tool_calls=DUPLICATE_CALL),
        Step(third, SHORT_MAX_TOKENS, text=CUT_ANSWER, truncated=True),
        Step(third, SHORT_MAX_TOKENS, cached_tokens=repeat_cached, text=CUT_ANSWER, truncated=True),
        Step(status=500),
        Step(last, 27, text=ANSWER),
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
        with driver.serve(steps(provider)) as client, api.attributes(team=TEAM), api.task(TASK):
            answer = _agent_loop(driver.conversation(client, MODELS[provider], SYSTEM, QUESTION, TOOLS))
            api.record_outcome(answer == ANSWER)
            return answer
    finally:
        instrumentor.uninstrument()


def _agent_loop(chat: Any) -> str:
    """The agent's habits, whatever the provider: ``chat`` is a :class:`_demo_agents.Conversation`.

    A new request gets a fresh time stamp at the top of the system prompt; a request sent again as it
    was (the "glitch" re-ask, the retry after a server error) keeps its stamp, byte for byte."""
    clock = iter(CLOCK)
    max_tokens = SHORT_MAX_TOKENS
    retried = False
    resend = False
    for _ in range(8):
        if not resend:
            chat.stamp_system(f"Current time: 2026-03-02 {next(clock)} UTC.")
        resend = False
        try:
            reply = chat.ask(max_tokens)
        except chat.server_error:
            if retried:
                raise
            retried = resend = True  # retry once, as agents do
            continue
        if reply.tool_calls:
            chat.add_tool_results([(call_id, run_tool(name, args)) for call_id, name, args in reply.tool_calls])
            continue
        if not reply.truncated:
            return reply.text
        if not chat.asked_again:
            chat.asked_again = resend = True  # "maybe it was a glitch": the same request again
            continue
        chat.add_turns(reply.text, CONTINUE)  # keep the cut answer, ask for it whole, with room this time
        max_tokens = LONG_MAX_TOKENS
    return "(gave up)"
