"""A local fake of Amazon Bedrock Runtime, for driving the real ``boto3`` client without AWS.

Point ``boto3.client("bedrock-runtime", endpoint_url=server.url, ...)`` at it and script what the "model"
answers with :class:`Reply` objects (the same shape as :mod:`otel_tokenkpi.testing.fake_openai`). It speaks
Bedrock Runtime's REST-JSON wire format:

- ``POST /model/{modelId}/converse`` and ``/converse-stream`` (Converse API);
- ``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream`` with an Anthropic Messages body
  (``anthropic_version``) answered in the Anthropic Messages shape, or with any other body answered in an
  Amazon Titan Text shape (an "other model family");
- ``GET /async-invoke`` (ListAsyncInvokes: an operation nobody instruments, for overhead measurements).

Streams use the real AWS event stream framing (``application/vnd.amazon.eventstream``), encoded by
:func:`encode_event` from the published binary layout, so botocore's own decoder and parser run exactly as
against AWS. Errors carry ``x-amzn-errortype`` and a JSON ``{"message": ...}`` body, as AWS sends them.

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from . import _fake_server
from ._bedrock_wire import (
    Reply,
    ToolCall,
    Turn,
    anthropic_events,
    anthropic_message,
    chunk_event,
    converse_body,
    converse_events,
    encode_event,
    exception_event,
    titan_text,
)
from ._fake_server import FakeRequestHandler, FakeServer

__all__ = ["FakeBedrockServer", "RecordedRequest", "Reply", "ToolCall", "encode_event"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
TRUNCATED_JSON = b'{"output":{"message":{"role":"assistant","content":[{"te'  # what ``bad_json`` sends
# x-amzn-errortype by HTTP status, where the Bedrock Runtime API reference names one.
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


@dataclass
class RecordedRequest(_fake_server.RecordedRequest):
    """A request as the server received it, with the URL-decoded model id named in its path."""

    model_id: str | None = None


# --- HTTP ---------------------------------------------------------------------------------------------

_OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")


class _Handler(FakeRequestHandler):
    """Routes ``/model/{modelId}/{operation}`` and ``/async-invoke``; event streams are chunked."""

    request_id_header = "x-amzn-RequestId"
    fake: FakeBedrockServer

    def _dispatch(self) -> None:
        body = self._read_json_body()
        parts = urlsplit(self.path).path.strip("/").split("/")
        model_id = unquote(parts[1]) if len(parts) == 3 and parts[0] == "model" else None
        number = self.fake._record(RecordedRequest(self.command, self.path, self._lowered_headers(), body, model_id))
        self._request_id = f"00000000-0000-4000-8000-{number:012d}"
        if self.command == "GET" and parts == ["async-invoke"]:
            self._send_json(200, {"asyncInvokeSummaries": []})
        elif self.command != "POST" or model_id is None or parts[2] not in _OPERATIONS:
            self._send_error(404, "UnknownOperationException", "Unknown operation")
        elif body is None:
            self._send_error(400, "ValidationException", "Malformed input request, please reformat your input.")
        else:
            self._answer(parts[2], body, self.fake._take_turn(model_id))

    def _answer(self, operation: str, body: dict[str, Any], turn: Turn) -> None:
        reply = turn.reply
        if reply.status != 200:
            error_type = reply.error_type or _ERROR_TYPES.get(reply.status, "InternalServerException")
            self._send_error(reply.status, error_type, reply.error_message, reply.headers)
            return
        anthropic = "anthropic_version" in body
        if operation == "converse":
            if reply.bad_json:
                self._send_bytes(200, TRUNCATED_JSON, "application/json", reply.headers)
            else:
                self._send_json(200, converse_body(turn), reply.headers)
        elif operation == "converse-stream":
            self._send_stream(converse_events(turn), EVENT_STREAM, reply.headers, reply.cut_stream_after)
        elif operation == "invoke":
            answer = anthropic_message(turn) if anthropic else titan_text(turn)
            self._send_json(200, answer, reply.headers, truncated=reply.cut_body)
        else:
            events = [chunk_event(e) for e in anthropic_events(turn)] if anthropic else [chunk_event(titan_text(turn))]
            if reply.stream_error:
                events = [*events[:-1], exception_event(reply.stream_error, reply.error_message)]
            extra = {"X-Amzn-Bedrock-Content-Type": "application/json", **reply.headers}
            self._send_stream(events, EVENT_STREAM, extra, reply.cut_stream_after)

    def _send_error(self, status: int, error_type: str, message: str, extra: dict[str, str] | None = None) -> None:
        self._send_json(status, {"message": message}, {"x-amzn-errortype": f"{error_type}:", **(extra or {})})


class FakeBedrockServer(FakeServer[Reply, RecordedRequest]):
    """A fake Bedrock Runtime on a local port; use as a context manager or with ``start()``/``stop()``.

    ``server.url`` is the client's ``endpoint_url``. Model requests each take the next :meth:`enqueue`-d
    reply, or ``default_reply``. Every request is kept in ``requests`` (recorded before it is answered).
    """

    handler = _Handler
    thread_name = "fake-bedrock"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Reply(), host, port)

    def _take_turn(self, model_id: str) -> Turn:
        with self._lock:
            reply, number = self._pop_reply()
            calls = [(tc.id or f"tooluse_{next(self._calls)}", tc) for tc in reply.tool_calls]
        return Turn(reply, number, model_id, calls)
