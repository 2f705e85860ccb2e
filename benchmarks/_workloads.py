"""Workloads and the fake-server setup shared by ``overhead.py`` and ``peers.py``.

Imports nothing of otel_tokenkpi at module level: ``peer_runner.py`` loads this
module inside other instrumentations' virtualenvs, where only ``openai`` and the
OpenTelemetry SDK are installed. The fake servers run as subprocesses of the
main environment (the one that has ``otel_tokenkpi.testing``), so their JSON
work never shares a GIL with the client being timed.

Workloads, all through the real ``openai`` SDK:

- short: one chat call with a system and a user message;
- stream: one streamed chat call of ``STREAM_CHUNKS`` text deltas (plus the
  role and finish chunks); every reply has different text, so no count cache
  helps;
- conversation: a tool-calling agent loop whose history grows by a tool call
  and a ~2k-token tool result per turn (50 turns: ~100k tokens). Each run uses
  fresh tool-result text from its seed, so caches help only the way they help
  a real agent loop (history re-sent within one conversation).
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from typing import Any

STREAM_CHUNKS = 200
SHORT_STREAM_CHUNKS = 20  # with STREAM_CHUNKS, gives the marginal cost of a chunk
_STREAM_REPLIES = 20000  # distinct streamed replies queued up front (then the server's default repeats)

_SERVER = """
import random, sys
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall
kind = sys.argv[1]
server = FakeOpenAIServer().start()
if kind == "tools":
    server.default_reply = Reply(text=None, tool_calls=[ToolCall("search_docs", '{"query": "next page"}')],
                                 prompt_tokens=1000, completion_tokens=20)
elif kind.startswith("stream"):
    # All events in one write: the client then parses chunks back to back instead of waiting on the
    # socket for each, so a streamed call times the client's per-chunk work, not process ping-pong.
    send_stream = server.handler._send_stream
    server.handler._send_stream = lambda self, events, *a, **k: send_stream(self, [b"".join(events)], *a, **k)
    chunks, replies = int(sys.argv[2]), int(sys.argv[3])
    rng, vocab = random.Random(11), sys.argv[4].split()
    server.default_reply = Reply(text=" ".join(vocab[:1] * chunks), text_chunks=chunks)
    server.enqueue(*(Reply(text=" ".join(rng.choice(vocab) for _ in range(chunks)), text_chunks=chunks)
                     for _ in range(replies)))
print(server.url, flush=True)
sys.stdin.read()
"""

VOCAB = [
    *"the model context token window cache agent tool result search page document section answer".split(),
    *"request history system user assistant message function call argument value price cost waste".split(),
    *"retry limit stream chunk usage budget team metric trace span export backend query filter".split(),
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the documentation and return the matching page.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]

SYSTEM_PROMPT = "You are a research agent. Use search_docs until you can answer."
USER_PROMPT = "Summarise everything the docs say about caching."


def start_server(kind: str, python: str = sys.executable) -> tuple[subprocess.Popen[str], str]:
    """Start a fake OpenAI server process; ``kind`` is ``text``, ``tools``, ``stream`` or ``stream-short``."""
    args = [python, "-c", _SERVER, kind]
    if kind == "stream":
        args += [str(STREAM_CHUNKS), str(_STREAM_REPLIES), " ".join(VOCAB)]
    elif kind == "stream-short":
        args += [str(SHORT_STREAM_CHUNKS), str(_STREAM_REPLIES), " ".join(VOCAB)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def tool_result_text(rng: random.Random, words: int = 1500) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(words))


class NullExporter:
    """A span exporter that drops everything: export cost is not ours to measure."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def make_client(url: str) -> Any:
    import openai

    return openai.OpenAI(api_key="sk-bench", base_url=url + "/v1", max_retries=0)


def short_call(client: Any) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}],
    )


def stream_call(client: Any, clock: Callable[[], float] | None = None) -> float:
    """A streamed call read to its end, as a chat UI does. With ``clock``, returns its reading when the
    last chunk arrived (before the end of the stream: the time every chunk was delivered by)."""
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "You are verbose."}, {"role": "user", "content": "Tell a story."}],
        stream=True,
    )
    last = 0.0
    for _ in stream:
        if clock is not None:
            last = clock()
    return last


def conversation(
    client: Any, rng: random.Random, turns: int, run_call: Callable[[Callable[[], Any]], Any]
) -> list[dict[str, Any]]:
    """An agent loop: each turn re-sends the whole history (as real loops do).

    ``run_call`` runs (and times) one model call and returns its response.
    Returns the final history.
    """
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_PROMPT},
    ]
    for turn in range(turns):
        response = run_call(lambda: client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS))
        call = response.choices[0].message.tool_calls[0]
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{turn}",
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"call_{turn}", "content": tool_result_text(rng)})
    return messages
