"""langchain-openai + langgraph: a prebuilt ReAct agent with one tool, through invoke, stream and astream
(stream_mode="messages", so the chat model itself streams)."""

from __future__ import annotations

import asyncio
from typing import Any

from _harness import MODEL, QUESTION, SYSTEM, TOOL_DESCRIPTION, Run, instrument_ours, run_twice


def _drive(path: str, stream_usage: bool | None = None):
    def drive(run: Run) -> Any:
        from langchain_core.tools import tool
        from langchain_openai import ChatOpenAI
        from langgraph.prebuilt import create_react_agent

        @tool(description=TOOL_DESCRIPTION)
        def get_weather(city: str) -> str:
            return run.get_weather(city)

        import httpx

        # A fresh async HTTP client per run: langchain-openai caches one per base URL, bound to the
        # event loop of the run that made it (the plain run's loop is closed by then).
        model = ChatOpenAI(
            model=MODEL,
            base_url=run.base_url,
            api_key="sk-test",
            max_retries=0,
            http_async_client=httpx.AsyncClient(),
            stream_usage=stream_usage,
        )
        agent = create_react_agent(model, [get_weather], prompt=SYSTEM)
        inputs = {"messages": [("user", QUESTION)]}
        if path == "invoke":
            return agent.invoke(inputs)["messages"][-1].content
        if path == "stream":
            pieces = [
                chunk.content
                for chunk, _meta in agent.stream(inputs, stream_mode="messages")
                if chunk.type == "AIMessageChunk"
            ]
            return "".join(p for p in pieces if isinstance(p, str))

        async def go() -> str:
            pieces = []
            async for chunk, _meta in agent.astream(inputs, stream_mode="messages"):
                if chunk.type == "AIMessageChunk" and isinstance(chunk.content, str):
                    pieces.append(chunk.content)
            return "".join(pieces)

        return asyncio.run(go())

    return drive


SCENARIOS = {
    path: (lambda path=path: run_twice(_drive(path), lambda: instrument_ours("openai")))
    for path in ("invoke", "stream", "astream")
}
# With a custom base URL langchain-openai asks for no stream usage unless told to: the one-line fix.
SCENARIOS["stream-with-usage"] = lambda: run_twice(
    _drive("stream", stream_usage=True), lambda: instrument_ours("openai")
)
