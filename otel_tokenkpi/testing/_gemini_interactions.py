"""The Gemini Interactions API's wire format, for the fake Gemini server (``POST /{api_version}/interactions``).

From Google's API reference (ai.google.dev/api/interactions-api, the "Streaming interactions" guide) and the
types of the google-genai SDK: a whole answer is an ``Interaction`` (``id``, ``status``, ``model``,
``object: "interaction"``, ``steps``, ``usage``); a streamed one (``"stream": true``) is a series of
server-sent events, each named by its ``event_type``: ``interaction.created``, ``interaction.status_update``,
then per step ``step.start`` (its ``index`` and ``step``, whose ``type`` is ``thought``, ``model_output``,
``function_call``, ...), ``step.delta`` (``text`` pieces; a function call's arguments as ``arguments_delta``
text) and ``step.stop``, and last ``interaction.completed`` with the interaction's final ``status`` and
``usage``. Usage counts are ``total_input_tokens`` (the prompt, cached part included:
``total_cached_tokens``), ``total_output_tokens``, ``total_thought_tokens``, ``total_tool_use_tokens`` and
``total_tokens`` (all of them). Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
from typing import Any

from ._fake_server import dumps, split_text

ARGUMENT_PIECES = 3  # a streamed function call's arguments arrive in about this many pieces


def interaction_status(reply: Any) -> str:
    """``completed``, or ``requires_action`` when the model calls functions (the client must answer them)."""
    return reply.interaction_status or ("requires_action" if reply.tool_calls else "completed")


def usage(reply: Any) -> dict[str, Any]:
    total = reply.input_tokens + reply.output_tokens + reply.thoughts_tokens + reply.tool_use_prompt_tokens
    counts = {
        "total_input_tokens": reply.input_tokens,
        "total_output_tokens": reply.output_tokens,
        "total_tokens": total,
        "input_tokens_by_modality": [{"modality": "text", "tokens": reply.input_tokens}],
    }
    for key, value in (
        ("total_cached_tokens", reply.cache_read_tokens),
        ("total_thought_tokens", reply.thoughts_tokens),
        ("total_tool_use_tokens", reply.tool_use_prompt_tokens),
    ):
        if value:
            counts[key] = value
    return counts


def _steps(reply: Any, number: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    if reply.thought_text is not None:
        steps.append({"type": "thought", "summary": [{"type": "text", "text": reply.thought_text}]})
    if reply.text is not None:
        steps.append({"type": "model_output", "content": [{"type": "text", "text": reply.text}]})
    for position, call in enumerate(reply.tool_calls, 1):
        steps.append(
            {
                "type": "function_call",
                "id": call.id or f"call_{number}_{position}",
                "name": call.name,
                "arguments": json.loads(call.arguments or "{}"),
            }
        )
    return steps


def interaction(reply: Any, number: int, model: str) -> dict[str, Any]:
    """The ``Interaction`` a non-streamed create answers with. A ``requires_continuation`` one (the model hit
    the per-request decode limit) carries the ``continuation_token`` that resumes it."""
    answer = {
        "id": f"v1_interaction-{number}",
        "object": "interaction",
        "model": model,
        "status": interaction_status(reply),
        "created": "2026-01-01T00:00:00Z",
        "updated": "2026-01-01T00:00:01Z",
        "steps": _steps(reply, number),
        "usage": usage(reply),
    }
    if answer["status"] == "requires_continuation":
        answer["continuation_token"] = f"continue-{number}"
    return answer


def _event(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["event_type"].encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def stream_events(reply: Any, number: int, model: str) -> list[bytes]:
    """The server-sent events of a streamed create, one per list item."""
    whole = interaction(reply, number, model)
    head = {"id": whole["id"], "object": "interaction", "model": model}
    events = [
        {"event_type": "interaction.created", "interaction": {**head, "status": "in_progress"}},
        {"event_type": "interaction.status_update", "interaction_id": whole["id"], "status": "in_progress"},
    ]
    for index, step in enumerate(whole["steps"]):
        kind = step["type"]
        if kind == "model_output":
            events.append({"event_type": "step.start", "index": index, "step": {"type": kind}})
            for piece in split_text(reply.text or "", reply.text_chunks):
                events.append({"event_type": "step.delta", "index": index, "delta": {"type": "text", "text": piece}})
        elif kind == "function_call":
            start = {"type": kind, "id": step["id"], "name": step["name"], "arguments": {}}
            events.append({"event_type": "step.start", "index": index, "step": start})
            arguments = json.dumps(step["arguments"])
            for piece in split_text(arguments, ARGUMENT_PIECES):
                delta = {"type": "arguments_delta", "arguments": piece}
                events.append({"event_type": "step.delta", "index": index, "delta": delta})
        else:
            events.append({"event_type": "step.start", "index": index, "step": step})
        events.append({"event_type": "step.stop", "index": index})
    final = {**head, "status": whole["status"], "usage": whole["usage"]}
    if "continuation_token" in whole:
        final["continuation_token"] = whole["continuation_token"]
    events.append({"event_type": "interaction.completed", "interaction": final})
    return [_event(event) for event in events]


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": str(status), "message": message}}
