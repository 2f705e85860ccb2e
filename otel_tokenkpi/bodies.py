"""Reading a response body while the user reads it: the lifecycle's view of an unread HTTP response.

Some SDK paths hand the user an HTTP response whose body has not been read yet: the Stainless SDKs'
``with_streaming_response`` (openai-agents' ``Runner.run_streamed`` goes through it) returns an
``APIResponse`` that the user reads with ``parse()``, ``iter_lines()``, ``iter_bytes()``,
``iter_text()``, ``read()``, ``text()``, ``json()`` or by iterating the parsed stream. Every one of those
reads the body through the httpx response's ``stream`` (a ``SyncByteStream`` / ``AsyncByteStream``, the
documented httpx extension point), so :func:`watch_body` puts a tee there: the user's bytes pass through
unchanged and in the same chunks, and we keep a copy. Nothing is parsed per chunk: the copy is decoded
once, when the body ends (read to its end, closed, or garbage-collected): a JSON document, or the data of
each server-sent event. A long event stream is decoded in slices (whole events only) so the copy stays
bounded; a body the user never reads ends the call with nothing seen, as incomplete.

httpx and httpx2 (openai and anthropic 3.x) have the same stream types under their own module: the tee
classes are made once per module, as subclasses of that module's byte stream types, because
``Response.iter_raw`` checks ``isinstance(self.stream, SyncByteStream)``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ._safety import log_once

# An event stream's copy is decoded in slices once it holds this much (identity encoding only).
_SLICE_BYTES = 256 * 1024
# A body kept whole (JSON, or a compressed event stream) beyond this is dropped: nothing read.
_MAX_BYTES = 64 * 1024 * 1024
_EVENT_END = re.compile(rb"\r?\n\r?\n")


class UnreadBody:
    """What an adapter's ``unwrap`` returns for a response the user will read: the httpx response."""

    __slots__ = ("http_response",)

    def __init__(self, http_response: Any) -> None:
        self.http_response = http_response


class _Copy:
    """The bytes seen so far and what to do with them: ``on_item`` gets each JSON value read (the document,
    or each event's data), ``on_end(completed, error)`` hears of the end once."""

    def __init__(
        self,
        event_stream: bool,
        encoding: str,
        decode: Callable[[bytes], bytes],
        on_item: Callable[[Any], None],
        on_end: Callable[[bool, BaseException | None], None],
    ) -> None:
        self.event_stream = event_stream
        self.sliced = event_stream and encoding == "identity"
        self.decode = decode
        self.on_item = on_item
        self.on_end = on_end
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = _SLICE_BYTES if self.sliced else _MAX_BYTES  # the size at which keep() looks again
        self.overflow = False
        self.exhausted = False
        self.ended = False

    def keep(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.chunks.append(chunk)
        self.size += len(chunk)
        if self.size <= self.limit:
            return
        if self.sliced:
            self._read_whole_events()
            self.limit = self.size + _SLICE_BYTES
        if self.size > _MAX_BYTES:
            self.overflow = True
            self.chunks = []

    def end(self, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            if not self.overflow and self.chunks:
                data = b"".join(self.chunks)
                self.chunks = []
                self._read(data if self.sliced else self.decode(data), final=True)
        except Exception as exc:  # noqa: BLE001 - the user's body is theirs; ours only misses a value
            log_once("bodies.read", exc)
        self.on_end(self.exhausted and error is None and not self.overflow, error)

    def _read_whole_events(self) -> None:
        data = b"".join(self.chunks)
        last = None
        for last in _EVENT_END.finditer(data):  # noqa: B007 - the last match is the one wanted
            pass
        if last is None:
            self.chunks, self.size = [data], len(data)
            return
        cut = last.end()
        rest = data[cut:]
        self.chunks, self.size = ([rest] if rest else []), len(rest)
        try:
            self._read(data[:cut], final=False)
        except Exception as exc:  # noqa: BLE001
            log_once("bodies.read", exc)

    def _read(self, data: bytes, final: bool) -> None:
        if not self.event_stream:
            if final:
                self.on_item(json.loads(data))
            return
        for block in _EVENT_END.split(data):
            payload = "\n".join(
                line[5:].removeprefix(" ")
                for line in block.decode("utf-8", "replace").splitlines()
                if line.startswith("data:")
            )
            if not payload or payload == "[DONE]":
                continue
            try:
                value = json.loads(payload)
            except ValueError:
                continue  # a malformed event: the SDK reports it to the user; we skip it
            self.on_item(value)


class _Tee:
    """What both tees share: the wrapped stream's other attributes, and the copy ended if never closed."""

    def __init__(self, inner: Any, copy: _Copy) -> None:
        self._inner = inner
        self._copy = copy

    def __getattr__(self, name: str) -> Any:  # e.g. anthropic's SpanEndingStream.elapsed
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __del__(self) -> None:
        copy = getattr(self, "_copy", None)
        if copy is not None:
            copy.end()


class _SyncTee(_Tee):
    """Mixed into the module's ``SyncByteStream``: the user's bytes, unchanged, and a copy."""

    def __iter__(self) -> Iterator[bytes]:
        copy = self._copy
        try:
            for chunk in self._inner:
                copy.keep(chunk)
                yield chunk
        except Exception as exc:
            copy.end(exc)
            raise
        copy.exhausted = True

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._copy.end()


class _AsyncTee(_Tee):
    """Mixed into the module's ``AsyncByteStream``: the user's bytes, unchanged, and a copy."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        copy = self._copy
        try:
            async for chunk in self._inner:
                copy.keep(chunk)
                yield chunk
        except Exception as exc:
            copy.end(exc)
            raise
        copy.exhausted = True

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._copy.end()


_TEE_CLASSES: dict[str, tuple[tuple[type, type], tuple[type, type]]] = {}


def _tee_classes(http_response: Any) -> tuple[tuple[type, type], tuple[type, type]] | None:
    """((sync base, sync tee), (async base, async tee)): tees subclassing the byte stream types of the
    response's own httpx module."""
    package = type(http_response).__module__.partition(".")[0]
    classes = _TEE_CLASSES.get(package)
    if classes is None:
        module = sys.modules.get(package)
        sync_base = getattr(module, "SyncByteStream", None)
        async_base = getattr(module, "AsyncByteStream", None)
        if not isinstance(sync_base, type) or not isinstance(async_base, type):
            return None
        classes = _TEE_CLASSES[package] = (
            (sync_base, type("TokenKPISyncTee", (_SyncTee, sync_base), {})),
            (async_base, type("TokenKPIAsyncTee", (_AsyncTee, async_base), {})),
        )
    return classes


def _decoder(http_response: Any, encoding: str) -> Callable[[bytes], bytes]:
    """Undo the body's content encoding the way its own httpx does: a throwaway response of the same class
    with the same ``content-encoding`` decodes ``raw`` when built."""
    if encoding == "identity":
        return lambda raw: raw
    response_class = type(http_response)
    return lambda raw: bytes(response_class(200, headers={"content-encoding": encoding}, content=raw).content)


def watch_body(
    http_response: Any,
    on_item: Callable[[Any], None],
    on_end: Callable[[bool, BaseException | None], None],
) -> bool:
    """Tee ``http_response``'s unread body: ``on_item`` gets the JSON document or each event's data,
    ``on_end(completed, error)`` the end (``completed``: the body was read to its end). False (nothing
    changed) for a response that is not an unread httpx response."""
    classes = _tee_classes(http_response)
    stream = getattr(http_response, "stream", None)
    if classes is None or stream is None or getattr(http_response, "is_stream_consumed", True):
        return False
    tee_class = next((tee for base, tee in classes if isinstance(stream, base)), None)
    if tee_class is None:
        return False
    headers = http_response.headers
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    event_stream = "text/event-stream" in (headers.get("content-type") or "")
    copy = _Copy(event_stream, encoding, _decoder(http_response, encoding), on_item, on_end)
    http_response.stream = tee_class(stream, copy)
    return True
