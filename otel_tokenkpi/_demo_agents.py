"""The demo agent's provider-specific half: one small driver per SDK, the same conversation through each.

A driver starts the embedded fake server with the demo's scripted steps, builds the real SDK client
pointed at it, and keeps the provider's message list. Imported only when the demo runs, so the SDKs
stay optional.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .demo import Step


@dataclass
class AgentReply:
    text: str
    tool_calls: list[tuple[str, str, str]]  # (call id, name, JSON arguments)
    truncated: bool


@dataclass
class Conversation:
    """What the agent loop needs from a provider: ask, send tool results back, know its server error."""

    client: Any
    model: str
    tools: list[dict[str, Any]]
    messages: list[Any]
    system: str
    server_error: type[BaseException] = Exception
    asked_again: bool = False

    def ask(self, max_tokens: int) -> AgentReply:
        raise NotImplementedError

    def add_tool_results(self, results: list[tuple[str, str]]) -> None:
        raise NotImplementedError

    def add_turns(self, answer: str, question: str) -> None:
        """The model's (cut) answer and the user's next question, as plain text messages."""
        self.messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": question}]

    def stamp_system(self, stamp: str) -> None:
        """The agent's habit: the current time at the TOP of its system prompt, fresh on every request."""
        self.system = f"{stamp}\n\n{self.base_system}"

    @property
    def base_system(self) -> str:
        return self.system.split("\n\n", 1)[1] if self.system.startswith("Current time:") else self.system


class OpenAIConversation(Conversation):
    def stamp_system(self, stamp: str) -> None:
        super().stamp_system(stamp)
        self.messages[0] = {"role": "system", "content": self.system}

    def ask(self, max_tokens: int) -> AgentReply:
        response = self.client.chat.completions.create(
            model=self.model, messages=self.messages, tools=self.tools, max_tokens=max_tokens
        )
        choice = response.choices[0]
        calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]
        if calls:
            self.messages.append(choice.message)
        return AgentReply(choice.message.content or "", calls, choice.finish_reason == "length")

    def add_tool_results(self, results: list[tuple[str, str]]) -> None:
        self.messages += [{"role": "tool", "tool_call_id": call_id, "content": text} for call_id, text in results]


class AnthropicConversation(Conversation):
    def ask(self, max_tokens: int) -> AgentReply:
        response = self.client.messages.create(
            model=self.model, system=self.system, messages=self.messages, tools=self.tools, max_tokens=max_tokens
        )
        text = "".join(block.text for block in response.content if block.type == "text")
        calls = [(b.id, b.name, json.dumps(b.input)) for b in response.content if b.type == "tool_use"]
        if calls:
            self.messages.append({"role": "assistant", "content": response.content})
        return AgentReply(text, calls, response.stop_reason == "max_tokens")

    def add_tool_results(self, results: list[tuple[str, str]]) -> None:
        blocks = [{"type": "tool_result", "tool_use_id": call_id, "content": text} for call_id, text in results]
        self.messages.append({"role": "user", "content": blocks})


class OpenAIDriver:
    @staticmethod
    def instrumentor() -> Any:
        from .instrumentors.openai import OpenAIInstrumentor

        return OpenAIInstrumentor()

    @staticmethod
    @contextlib.contextmanager
    def serve(steps: Sequence[Step]) -> Iterator[Any]:
        import openai

        from .testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

        with FakeOpenAIServer() as server:
            server.enqueue(
                *(
                    Reply(
                        text=s.text,
                        tool_calls=[ToolCall(name, args) for name, args in s.tool_calls],
                        finish_reason="length" if s.truncated else None,
                        prompt_tokens=s.input_tokens,
                        completion_tokens=s.output_tokens,
                        cached_tokens=s.cached_tokens,
                        status=s.status,
                    )
                    for s in steps
                )
            )
            # max_retries=0: the agent's own retry is what the demo shows, one span per attempt.
            yield openai.OpenAI(api_key="sk-demo", base_url=server.url + "/v1", max_retries=0)

    @staticmethod
    def conversation(client: Any, model: str, system: str, question: str, tools: list[dict]) -> Conversation:
        import openai

        return OpenAIConversation(
            client=client,
            model=model,
            tools=[{"type": "function", "function": tool} for tool in tools],
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            system=system,
            server_error=openai.InternalServerError,
        )


class AnthropicDriver:
    @staticmethod
    def instrumentor() -> Any:
        from .instrumentors.anthropic import AnthropicInstrumentor

        return AnthropicInstrumentor()

    @staticmethod
    @contextlib.contextmanager
    def serve(steps: Sequence[Step]) -> Iterator[Any]:
        import anthropic

        from .testing.fake_anthropic import FakeAnthropicServer, Reply, ToolCall

        with FakeAnthropicServer() as server:
            server.enqueue(
                *(
                    Reply(
                        text=s.text,
                        tool_calls=[ToolCall(name, args) for name, args in s.tool_calls],
                        finish_reason="max_tokens" if s.truncated else None,
                        input_tokens=s.input_tokens - s.cached_tokens,  # Anthropic reports uncached input
                        output_tokens=s.output_tokens,
                        cache_read_tokens=s.cached_tokens,
                        status=s.status,
                    )
                    for s in steps
                )
            )
            # The SDK's own spans (anthropic >= 2) would describe the same calls again: off in the demo.
            quiet: dict[str, Any] = (
                {"open_telemetry": False}
                if "open_telemetry" in inspect.signature(anthropic.Anthropic).parameters
                else {}
            )
            yield anthropic.Anthropic(api_key="sk-ant-demo", base_url=server.url, max_retries=0, **quiet)

    @staticmethod
    def conversation(client: Any, model: str, system: str, question: str, tools: list[dict]) -> Conversation:
        import anthropic

        return AnthropicConversation(
            client=client,
            model=model,
            tools=[
                {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in tools
            ],
            messages=[{"role": "user", "content": question}],
            system=system,
            server_error=anthropic.InternalServerError,
        )


DRIVERS: dict[str, Any] = {"openai": OpenAIDriver, "anthropic": AnthropicDriver}
