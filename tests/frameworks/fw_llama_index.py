"""llama-index: a FunctionAgent (workflow) with one tool on llama-index-llms-openai, streaming
(FunctionAgent's default) and not."""

from __future__ import annotations

import asyncio
from typing import Any

from _harness import MODEL, QUESTION, SYSTEM, TOOL_DESCRIPTION, Run, instrument_ours, run_twice


def _drive(streaming: bool):
    def drive(run: Run) -> Any:
        from llama_index.core.agent.workflow import FunctionAgent
        from llama_index.core.tools import FunctionTool
        from llama_index.llms.openai import OpenAI

        def get_weather(city: str) -> str:
            return run.get_weather(city)

        tool = FunctionTool.from_defaults(fn=get_weather, name="get_weather", description=TOOL_DESCRIPTION)
        llm = OpenAI(model=MODEL, api_base=run.base_url, api_key="sk-test", max_retries=0)
        agent = FunctionAgent(tools=[tool], llm=llm, system_prompt=SYSTEM, streaming=streaming)

        async def go() -> str:
            handler = agent.run(user_msg=QUESTION)
            async for _event in handler.stream_events():
                pass
            return str((await handler).response.content)

        return asyncio.run(go())

    return drive


SCENARIOS = {
    ("streaming" if streaming else "not-streaming"): (
        lambda streaming=streaming: run_twice(_drive(streaming), lambda: instrument_ours("openai"))
    )
    for streaming in (True, False)
}
