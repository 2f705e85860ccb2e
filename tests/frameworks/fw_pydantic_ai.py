"""pydantic-ai: an Agent with one tool on the OpenAI chat model. Its own instrumentation off (our spans
only), on (its ``chat`` span wraps ours: ours stays, its span is dropped), and processor-only (its
spans alone, enriched by TokenKPISpanProcessor; no instrument()). Sync runs and streamed runs."""

from __future__ import annotations

from typing import Any

from _harness import MODEL, QUESTION, SYSTEM, TOOL_DESCRIPTION, Run, instrument_ours, run_twice, telemetry


def _drive(streamed: bool):
    def drive(run: Run) -> Any:
        from pydantic_ai import Agent
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=run.base_url, api_key="sk-test"))
        agent = Agent(model, system_prompt=SYSTEM)

        def get_weather(city: str) -> str:
            return run.get_weather(city)

        get_weather.__doc__ = TOOL_DESCRIPTION
        agent.tool_plain(get_weather)
        if not streamed:
            return agent.run_sync(QUESTION).output
        with agent.run_stream_sync(QUESTION) as result:
            return "".join(result.stream_text(delta=True))

    return drive


def _pydantic_ai_instrumentation() -> None:
    from pydantic_ai import Agent, InstrumentationSettings

    Agent.instrument_all(InstrumentationSettings(tracer_provider=telemetry(), include_content=True))


def _setup(mode: str):
    def instrument() -> None:
        if mode in ("own-off", "own-on"):
            instrument_ours("openai")
        if mode in ("own-on", "processor-only"):
            _pydantic_ai_instrumentation()
        telemetry()

    return instrument


SCENARIOS = {
    f"{mode}{'-streamed' if streamed else ''}": (
        lambda mode=mode, streamed=streamed: run_twice(_drive(streamed), _setup(mode))
    )
    for mode in ("own-off", "own-on", "processor-only")
    for streamed in (False, True)
}
