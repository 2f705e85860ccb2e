"""The chat chunk reader's fast path for text-only chunks reads exactly what its general path reads.

SDK chunk objects take the fast path; the same chunks as plain dicts take the general one.
"""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletionChunk

from otel_tokenkpi.instrumentors._openai_chat import ChunkReader
from otel_tokenkpi.invocation import CallRequest


def _chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None, model: str = "gpt-4o") -> dict:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model}
    body["choices"] = choices
    if usage is not None:
        body["usage"] = usage
    return body


STREAM = [
    _chunk([], model=""),  # Azure's first chunk: no choices, no model yet
    _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
    *[_chunk([{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]) for i in range(5)],
    _chunk([{"index": 1, "delta": {"content": "second choice"}, "finish_reason": None}]),
    _chunk(
        [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": '{"a"'}}]},
                "finish_reason": None,
            }
        ]
    ),
    _chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]),
    _chunk([{"index": 0, "delta": {"content": "tail"}, "finish_reason": "length"}]),
    _chunk([{"index": 1, "delta": {}, "finish_reason": "stop"}]),
    _chunk([], usage={"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20}),
]


def _read(chunks: list[Any]) -> Any:
    reader = ChunkReader(CallRequest("chat", "openai", "gpt-4o"))
    for chunk in chunks:
        reader.feed(chunk)
    return reader.result()


def test_sdk_chunks_and_plain_dicts_give_the_same_record():
    typed = _read([ChatCompletionChunk.model_validate(body) for body in STREAM])
    plain = _read(STREAM)
    assert typed == plain
    assert [o.text for o in typed.outputs] == ["w0 w1 w2 w3 w4 tail", "second choice"]
    assert [o.finish_reason for o in typed.outputs] == ["length", "stop"]
    assert [(c.id, c.name, c.arguments) for c in typed.outputs[0].tool_calls] == [("t1", "f", '{"a": 1}')]
    assert (typed.usage.input_tokens, typed.usage.output_tokens) == (11, 9)
    assert (typed.response_id, typed.response_model) == ("c1", "gpt-4o")
