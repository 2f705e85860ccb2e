"""openai-agents: an Agent with a function tool, Responses and Chat Completions models, streamed and not."""

from __future__ import annotations

import asyncio
from typing import Any

from _harness import MODEL, QUESTION, SYSTEM, TOOL_DESCRIPTION, Run, instrument_ours, run_twice


def _drive(api: str, streamed: bool):
    def drive(run: Run) -> Any:
        import openai
        from agents import (
            Agent,
            Runner,
            function_tool,
            set_default_openai_api,
            set_default_openai_client,
            set_tracing_disabled,
        )

        set_tracing_disabled(True)  # its own tracing exports to OpenAI's service
        set_default_openai_client(openai.AsyncOpenAI(api_key="sk-test", base_url=run.base_url, max_retries=0))
        set_default_openai_api(api)

        @function_tool(description_override=TOOL_DESCRIPTION)
        def get_weather(city: str) -> str:
            return run.get_weather(city)

        agent = Agent(name="weather", instructions=SYSTEM, model=MODEL, tools=[get_weather])

        async def go() -> Any:
            if not streamed:
                return (await Runner.run(agent, QUESTION)).final_output
            result = Runner.run_streamed(agent, QUESTION)
            async for _event in result.stream_events():
                pass
            return result.final_output

        return asyncio.run(go())

    return drive


SCENARIOS = {
    f"{api}-{'streamed' if streamed else 'plain'}": (
        lambda api=api, streamed=streamed: run_twice(_drive(api, streamed), lambda: instrument_ours("openai"))
    )
    for api in ("responses", "chat_completions")
    for streamed in (False, True)
}
