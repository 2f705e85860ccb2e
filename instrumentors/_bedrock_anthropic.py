"""Read Anthropic Messages bodies sent through Bedrock ``InvokeModel`` / ``InvokeModelWithResponseStream``.

The request body is the Anthropic Messages JSON with ``anthropic_version`` ("bedrock-2023-05-31") and no
``model`` (the model is the call's ``modelId``). The response body is an Anthropic message; a response
stream wraps each Anthropic streaming event in ``{"chunk": {"bytes": b"<event JSON>"}}``, the last one
(``message_stop``) carrying Bedrock's ``amazon-bedrock-invocationMetrics``.

Since the JSON is Anthropic's own, its content, response, stream events and usage are read by
``_anthropic_messages`` (so Claude through Bedrock and through the anthropic SDK give the same record).
Only what Bedrock adds is read here: the body as bytes, the chunk envelope and the invocation metrics.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from otel_tokenkpi import semconv as sc
from otel_tokenkpi.invocation import CallRequest, CallResult, Usage

from . import _anthropic_messages as messages
from ._shapes import get


def parse_body(body: Any) -> dict[str, Any] | None:
    """The request body as a JSON object when it is an Anthropic Messages body, else None.

    Only bytes and str are read: a file-like body is the SDK's to stream, and reading it would consume it."""
    if not isinstance(body, (bytes, bytearray, str)):
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) and "anthropic_version" in parsed else None


def read_request(base: CallRequest, body: dict[str, Any], stream: bool) -> CallRequest:
    """Whether it streams is the operation's to say, not the body's."""
    base.params = messages.sampling_params(body)
    if stream:
        base.params[sc.REQUEST_STREAM] = True
    base.stream = stream
    messages.read_context(base, body, memoized=False)
    return base


class _FailedRaw(io.RawIOBase):
    """The body the user gets when our read failed: their read raises that same error."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def read(self, size: int | None = -1) -> bytes:
        raise self._error


def unwrap_invoke_response(result: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """Read an InvokeModel response body (a one-shot ``StreamingBody``) and hand the user an equivalent
    one over the same bytes: their ``response["body"].read()`` returns exactly what it would have."""
    from botocore.response import StreamingBody

    body = result.get("body") if isinstance(result, dict) else None
    if body is None or not hasattr(body, "read"):
        return None, None
    try:
        data = body.read()  # one read, as users do: a failure surfaces exactly as theirs would
    except Exception as exc:  # noqa: BLE001 - the user's own read() raises it instead
        result["body"] = StreamingBody(_FailedRaw(exc), getattr(body, "_content_length", None))
        return None, None
    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    try:
        return json.loads(data), None
    except (ValueError, UnicodeDecodeError):
        return None, None


class ChunkReader:
    """Opens each ``chunk`` envelope and hands the Anthropic event inside to the Messages event reader;
    Bedrock's invocation metrics are the usage when the events carried none."""

    def __init__(self, request: CallRequest) -> None:
        self._events = messages.EventReader(request)
        self._metrics: Any = None

    def feed(self, event: Any) -> None:
        raw = get(get(event, "chunk"), "bytes")
        if not isinstance(raw, (bytes, str)):
            return
        data = json.loads(raw)
        self._events.feed(data)
        self._metrics = get(data, "amazon-bedrock-invocationMetrics") or self._metrics

    def result(self) -> CallResult:
        result = self._events.result()
        if result.usage is None and self._metrics is not None:
            result.usage = Usage(
                input_tokens=get(self._metrics, "inputTokenCount"), output_tokens=get(self._metrics, "outputTokenCount")
            )
        return result
