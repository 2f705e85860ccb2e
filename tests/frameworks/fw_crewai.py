"""crewai: one Agent with one tool and one Task in a Crew, on crewai's native OpenAI provider (the
openai SDK)."""

from __future__ import annotations

from typing import Any

from _harness import MODEL, QUESTION, SYSTEM, TOOL_DESCRIPTION, Run, instrument_ours, run_twice


def drive(run: Run) -> Any:
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    @tool("get_weather")
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return run.get_weather(city)

    get_weather.description = TOOL_DESCRIPTION
    llm = LLM(model=MODEL, base_url=run.base_url, api_key="sk-test", max_retries=0)
    agent = Agent(
        role="Weather bot",
        goal=SYSTEM,
        backstory="You report the weather.",
        llm=llm,
        tools=[get_weather],
        verbose=False,
        max_iter=5,
    )
    task = Task(description=QUESTION, expected_output="One sentence about both cities.", agent=agent)
    return str(Crew(agents=[agent], tasks=[task], verbose=False).kickoff())


SCENARIOS = {"crew": lambda: run_twice(drive, lambda: instrument_ours("openai"))}
