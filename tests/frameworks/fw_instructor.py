"""instructor: structured output (a pydantic model through a tool call) on the openai SDK, with the
client built after instrument() and before it (instructor captures ``create`` when it patches)."""

from __future__ import annotations

from typing import Any

from _harness import MODEL, QUESTION, Run, instrument_ours, run_twice

from otel_tokenkpi.testing.fake_openai import Reply, ToolCall

EXTRACTED = '{"city":"Paris","summary":"18C and sunny"}'


def script() -> list[Reply]:
    return [Reply(text=None, tool_calls=[ToolCall("Weather", EXTRACTED)], prompt_tokens=900, completion_tokens=30)]


def _client(run: Run) -> Any:
    import instructor
    import openai

    return instructor.from_openai(openai.OpenAI(api_key="sk-test", base_url=run.base_url, max_retries=0))


def drive(run: Run, client: Any = None) -> Any:
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        summary: str

    client = client if client is not None else _client(run)
    answer = client.chat.completions.create(
        model=MODEL, response_model=Weather, messages=[{"role": "user", "content": QUESTION}], max_retries=1
    )
    return answer.model_dump()


SCENARIOS = {
    "client-after-instrument": lambda: run_twice(drive, lambda: instrument_ours("openai"), replies=script),
    "client-before-instrument": lambda: run_twice(
        drive, lambda: instrument_ours("openai"), replies=script, before=_client
    ),
}
