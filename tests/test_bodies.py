"""``otel_tokenkpi.bodies``: the tee on an httpx response's byte stream that lets a call read a body the
user reads (``with_streaming_response``). Driven through real ``httpx`` responses whose byte streams
deliver chosen chunks: the user's bytes are unchanged, events are read whole whatever the chunking
(``\\r\\n`` separators, events cut across chunks and across the slices a long stream is read in),
malformed events are skipped, and the end is reported once, complete only when the body was read to
its end."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from otel_tokenkpi import bodies


class Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed += 1


class Seen:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.ends: list[tuple[bool, BaseException | None]] = []

    def item(self, value: Any) -> None:
        self.items.append(value)

    def end(self, completed: bool, error: BaseException | None) -> None:
        self.ends.append((completed, error))


def response(chunks: list[bytes], content_type: str, **headers: str) -> tuple[httpx.Response, Chunks, Seen]:
    stream = Chunks(chunks)
    answer = httpx.Response(200, headers={"content-type": content_type, **headers}, stream=stream)
    seen = Seen()
    assert bodies.watch_body(answer, seen.item, seen.end)
    return answer, stream, seen


def events(*payloads: Any, separator: bytes = b"\n\n") -> bytes:
    out = b""
    for payload in payloads:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out += b"event: x" + separator[: len(separator) // 2] + b"data: " + data.encode() + separator
    return out


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n"])
@pytest.mark.parametrize("size", [1, 7, 64])
def test_events_are_read_whole_however_the_body_is_cut(separator, size, monkeypatch):
    monkeypatch.setattr(bodies, "_SLICE_BYTES", 100)  # read in slices long before the end
    payloads = [{"n": i, "text": "x" * (i % 13)} for i in range(40)]
    body = events(*payloads, "not json", "[DONE]", separator=separator)
    answer, stream, seen = response(cut(body, size), "text/event-stream")
    assert answer.read() == body  # the user's bytes, unchanged
    assert seen.items == payloads  # every event once, in order; the malformed one and [DONE] skipped
    assert seen.ends == [(True, None)] and stream.closed == 1


def test_a_json_document_read_in_pieces(monkeypatch):
    document = {"id": "x", "usage": {"prompt_tokens": 3}}
    answer, _, seen = response(cut(json.dumps(document).encode(), 5), "application/json")
    assert b"".join(answer.iter_bytes(3)) == json.dumps(document).encode()
    assert seen.items == [document] and seen.ends == [(True, None)]


def test_a_compressed_document_is_decoded_as_its_httpx_does():
    document = {"id": "zipped"}
    packed = gzip.compress(json.dumps(document).encode())
    answer, _, seen = response(cut(packed, 4), "application/json", **{"content-encoding": "gzip"})
    assert json.loads(answer.read()) == document
    assert seen.items == [document]


def test_a_body_never_read_ends_incomplete_when_closed():
    answer, stream, seen = response([b'{"id": 1}'], "application/json")
    answer.close()
    answer.close()
    assert seen.items == [] and seen.ends == [(False, None)] and stream.closed == 1


def test_a_body_read_in_part_gives_what_was_seen_as_incomplete():
    body = events({"n": 1}, {"n": 2}, {"n": 3})
    answer, _, seen = response(cut(body, 10), "text/event-stream")
    pieces = answer.iter_bytes()
    next(pieces)
    next(pieces)
    answer.close()
    assert seen.items == [] and seen.ends == [(False, None)]  # no whole event had arrived yet


def test_a_body_over_the_limit_is_dropped_as_unread(monkeypatch):
    monkeypatch.setattr(bodies, "_MAX_BYTES", 50)
    document = {"text": "y" * 200}
    answer, _, seen = response(cut(json.dumps(document).encode(), 16), "application/json")
    assert json.loads(answer.read()) == document  # the user still reads it all
    assert seen.items == [] and seen.ends == [(False, None)]


def test_an_error_mid_body_ends_the_call_with_it():
    class Broken(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'data: {"n": 1}\n\n'
            raise httpx.ReadError("connection lost")

    answer = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())
    seen = Seen()
    assert bodies.watch_body(answer, seen.item, seen.end)
    with pytest.raises(httpx.ReadError):
        answer.read()
    assert seen.items == [{"n": 1}]
    ((completed, error),) = seen.ends
    assert completed is False and isinstance(error, httpx.ReadError)


def test_a_read_body_is_not_watched():
    answer = httpx.Response(200, json={"id": 1})
    assert bodies.watch_body(answer, lambda value: None, lambda completed, error: None) is False
