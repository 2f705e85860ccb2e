"""Streams abandoned mid-way, many times over, through every streaming instrumentor.

A user leaves a stream in four ways: ``break`` out of the loop, ``close()``, dropping it unread (garbage
collection), or an exception raised in the loop body. Each path must end the call's span exactly once,
and nothing of ours may outlive the stream: no span, no ``ModelCall``, no proxy, no per-stream memory.

How it is measured:

* A span processor records the span id of every ``on_start`` and ``on_end`` in ``array('Q')`` (8 bytes
  each, no Python int kept alive); sorted started ids == sorted ended ids means every span that started
  ended once, and only once.
* Live objects: after ``gc.collect()`` no ``ModelCall`` or stream proxy may remain.
* Memory (``tracemalloc``): after a warm-up, a snapshot; then N more abandoned streams, ``gc.collect()``,
  a second snapshot (the last 1,000 of the 10,000). Allocations made by this file (the recording arrays)
  are filtered out. The HTTP
  client is replaced every ``BATCH`` streams, because an abandoned, unclosed response keeps its pooled
  connection busy (an httpx property, with or without us): a snapshot taken between batches sees no open
  connection. Bound: ``MAX_GROWTH_PER_STREAM`` = 256 bytes per stream, averaged over 1,000 streams. A
  leaked SDK span with its ~25 attributes is several KB, a leaked ``ModelCall`` with its record and proxy
  over 1 KB, so any per-stream leak of ours breaks the bound by far; what the bound allows, 256 KB in
  all, is one-off growth (bounded caches, the interpreter's free lists).

The 10,000-stream run uses the OpenAI fake (the cheapest SDK); every other streaming instrumentor gets
500 streams (``slow``), and a 16-stream pass of each runs in the default suite.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import tracemalloc
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import _cohere_support as cohere_support
import _groq_support as groq_support
import _litellm_support as litellm_support
import _mistral_support as mistral_support
import _ollama_support as ollama_support
import anthropic
import litellm
import openai
import pytest
from _bedrock_support import make_client as make_bedrock_client
from _gemini_support import make_client as make_gemini_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.instrumentors.cohere import CohereInstrumentor
from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.instrumentors.litellm import LiteLLMInstrumentor
from otel_tokenkpi.instrumentors.mistral import MistralInstrumentor
from otel_tokenkpi.instrumentors.ollama import OllamaInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.lifecycle import ModelCall
from otel_tokenkpi.streams import AsyncStreamProxy, SyncStreamProxy
from otel_tokenkpi.testing import (
    fake_anthropic,
    fake_bedrock,
    fake_cohere,
    fake_gemini,
    fake_groq,
    fake_mistral,
    fake_ollama,
    fake_openai,
)

BATCH = 100  # streams per HTTP client (see the module docstring)
MAX_GROWTH_PER_STREAM = 256  # bytes; see the module docstring
TEXT = "one two three four five six seven eight"
USER = [{"role": "user", "content": "Count to eight, please."}]
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


class SpanEnds(SpanProcessor):
    """Records every span id at start and at end, in flat arrays (nothing kept alive)."""

    def __init__(self) -> None:
        self.started = array("Q")
        self.ended = array("Q")

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.context.span_id)  # type: ignore[union-attr]

    def assert_each_ended_once(self) -> int:
        """Every started span ended exactly once; returns how many there were."""
        assert len(set(self.started)) == len(self.started) > 0  # unique ids: equal sorted lists = one end each
        assert sorted(self.started) == sorted(self.ended)
        return len(self.started)


# -- the four ways to abandon a stream ------------------------------------------------------------


def leave_by_break(stream: Any) -> None:
    for index, _ in enumerate(stream):
        if index == 1:
            break


def leave_by_close(stream: Any) -> None:
    next(iter(stream))
    stream.close()


def leave_unread(stream: Any) -> None:
    del stream  # garbage collection is the only signal


def leave_by_consumer_error(stream: Any) -> None:
    try:
        for index, _ in enumerate(stream):
            if index == 1:
                raise LookupError("the consumer failed")
    except LookupError:
        pass


LEAVE = (leave_by_break, leave_by_close, leave_unread, leave_by_consumer_error)


# -- every streaming instrumentor -----------------------------------------------------------------


@dataclass(frozen=True)
class Streamer:
    make_server: Callable[[], Any]
    reply: Callable[[], Any]  # the server's default reply: several chunks of text
    instrumentors: tuple[type, ...]
    make_client: Callable[[Any], Any]
    open_stream: Callable[[Any], Any]  # client -> the stream the user iterates


def _bedrock_stream(client: Any) -> Any:
    messages = [{"role": "user", "content": [{"text": "Count to eight."}]}]
    return client.converse_stream(modelId=BEDROCK_MODEL, messages=messages)["stream"]


STREAMERS: dict[str, Streamer] = {
    "openai": Streamer(
        fake_openai.FakeOpenAIServer,
        lambda: fake_openai.Reply(text=TEXT),
        (OpenAIInstrumentor,),
        lambda s: openai.OpenAI(api_key="sk-test", base_url=s.url + "/v1", max_retries=0),
        lambda c: c.chat.completions.create(model="gpt-4o", messages=USER, stream=True),
    ),
    "anthropic": Streamer(
        fake_anthropic.FakeAnthropicServer,
        lambda: fake_anthropic.Reply(text=TEXT),
        (AnthropicInstrumentor,),
        lambda s: anthropic.Anthropic(api_key="sk-ant-test", base_url=s.url, max_retries=0),
        lambda c: c.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=USER, stream=True),
    ),
    "gemini": Streamer(
        fake_gemini.FakeGeminiServer,
        lambda: fake_gemini.Reply(text=TEXT),
        (GoogleGenAIInstrumentor,),
        make_gemini_client,
        lambda c: c.models.generate_content_stream(model="gemini-2.5-flash", contents="Count to eight."),
    ),
    "bedrock": Streamer(
        fake_bedrock.FakeBedrockServer,
        lambda: fake_bedrock.Reply(text=TEXT),
        (BedrockInstrumentor,),
        lambda s: make_bedrock_client(s.url),
        _bedrock_stream,
    ),
    "mistral": Streamer(
        fake_mistral.FakeMistralServer,
        lambda: fake_mistral.Reply(text=TEXT),
        (MistralInstrumentor,),
        mistral_support.make_client,
        lambda c: c.chat.stream(model=mistral_support.MODEL, messages=USER),
    ),
    "cohere": Streamer(
        fake_cohere.FakeCohereServer,
        lambda: fake_cohere.Reply(text=TEXT),
        (CohereInstrumentor,),
        cohere_support.make_client,
        lambda c: c.chat_stream(model=cohere_support.MODEL, messages=USER),
    ),
    "ollama": Streamer(
        fake_ollama.FakeOllamaServer,
        lambda: fake_ollama.Reply(text=TEXT),
        (OllamaInstrumentor,),
        ollama_support.make_client,
        lambda c: c.chat(ollama_support.MODEL, USER, stream=True),
    ),
    "groq": Streamer(
        fake_groq.FakeGroqServer,
        lambda: fake_groq.Reply(text=TEXT),
        (GroqInstrumentor,),
        groq_support.make_client,
        lambda c: c.chat.completions.create(model=groq_support.MODEL, messages=USER, stream=True),
    ),
    "litellm": Streamer(
        fake_openai.FakeOpenAIServer,
        lambda: fake_openai.Reply(text=TEXT),
        (LiteLLMInstrumentor, OpenAIInstrumentor),
        lambda s: {  # litellm caches its own client per endpoint: hand it ours, renewed per batch
            **litellm_support.target(s),
            "client": openai.OpenAI(api_key="sk-test", base_url=s.url + "/v1", max_retries=0),
        },
        lambda target: litellm.completion(**target, messages=USER, stream=True),
    ),
}


class Harness:
    """One instrumented provider with a span-end recorder; streams opened and abandoned in turn."""

    def __init__(self, streamer: Streamer, server: Any) -> None:
        self.streamer, self.server = streamer, server
        self.ends = SpanEnds()
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.ends)
        self.instrumentors = [cls() for cls in streamer.instrumentors]
        for instrumentor in self.instrumentors:
            instrumentor.instrument(tracer_provider=self.provider, meter_provider=MeterProvider())
        self.client: Any = None
        self.opened = 0
        self.requests = 0  # model requests the fake received (a lazy stream left unread sends none)
        self.modes = itertools.cycle(LEAVE)

    def run(self, count: int) -> None:
        gc.disable()  # see young_garbage_collected()
        try:
            for _ in range(count):
                if self.opened % BATCH == 0:
                    self.new_client()
                next(self.modes)(self.streamer.open_stream(self.client))
                self.opened += 1
                young_garbage_collected()
        finally:
            gc.enable()

    def new_client(self) -> None:
        self.client = None  # the old client and its connections go first
        self.requests += len(self.server.requests)
        self.server.reset()  # forget recorded requests: the fake's memory, not ours
        gc.collect()
        self.client = self.streamer.make_client(self.server)

    def calls_made(self) -> int:
        """Model requests sent so far. A lazy stream (a generator that sends its request on first
        ``next()``) left unread sends none: Gemini's has no span then, Cohere's has one (its wrapped
        method returns the generator), so spans lie between requests sent and streams opened."""
        return self.requests + len(self.server.requests)

    def close(self) -> None:
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        self.client = None
        self.provider.shutdown()


@pytest.fixture
def harness(request: pytest.FixtureRequest, loaded_data: None) -> Iterator[Callable[[str], Harness]]:
    made: list[tuple[Harness, Any]] = []

    def make(label: str) -> Harness:
        streamer = STREAMERS[label]
        server = streamer.make_server().start()
        server.default_reply = streamer.reply()
        made.append((Harness(streamer, server), server))
        return made[-1][0]

    yield make
    for h, server in made:
        h.close()
        server.stop()


def young_garbage_collected() -> None:
    """Collect the cycles an abandoned stream leaves, here rather than whenever the GC next runs.

    A stainless SDK stream (openai, anthropic, groq, ...) is a reference cycle (it holds its own generator),
    so an abandoned one is freed by the cyclic GC, at whatever allocation triggers it. With httpx/httpcore
    (groq's client) that can be inside the connection pool's lock, and the stream's finalizer then takes
    the same lock: the process hangs. That happens without any instrumentation (httpcore's bug, not ours);
    collecting explicitly after each stream keeps this test about our spans. Our proxy holds no cycle: its
    span ends when the user drops it."""
    gc.collect(1)


def live_objects_of_ours(provider: TracerProvider) -> list[str]:
    """``ModelCall``s and stream proxies still alive whose span came from ``provider`` (objects other test
    modules still hold are not this test's business)."""
    gc.collect()
    processor = provider._active_span_processor
    live = []
    for obj in gc.get_objects():
        if isinstance(obj, (SyncStreamProxy, AsyncStreamProxy)):
            owner = getattr(obj, "_self_owner", None)
        elif isinstance(obj, ModelCall):
            owner = obj
        else:
            continue
        if getattr(getattr(owner, "span", None), "_span_processor", None) is processor:
            live.append(type(obj).__name__)
    return live


def memory_growth_per_stream(h: Harness, streams: int) -> float:
    """tracemalloc growth over ``streams`` more abandoned streams, allocations of this file excluded."""
    excluded = [tracemalloc.Filter(False, __file__), tracemalloc.Filter(False, tracemalloc.__file__)]
    tracemalloc.start()
    try:
        h.new_client()
        h.client = None
        gc.collect()
        before = tracemalloc.take_snapshot().filter_traces(excluded)
        h.run(streams)
        h.new_client()
        h.client = None
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(excluded)
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return growth / streams


@pytest.mark.parametrize("label", list(STREAMERS))
def test_abandoned_streams_end_their_span_once(harness, label):
    h = harness(label)
    h.run(16)
    assert h.calls_made() >= 12  # at least the three modes that read
    assert h.calls_made() <= h.ends.assert_each_ended_once() <= 16
    assert live_objects_of_ours(h.provider) == []


@pytest.mark.slow
@pytest.mark.parametrize("label", [label for label in STREAMERS if label != "openai"])
def test_500_abandoned_streams_per_instrumentor(harness, label):
    h = harness(label)
    h.run(500)
    assert h.calls_made() >= 375
    assert h.calls_made() <= h.ends.assert_each_ended_once() <= 500
    assert live_objects_of_ours(h.provider) == []


@pytest.mark.slow
def test_10000_abandoned_openai_streams_end_once_and_memory_stays_flat(harness):
    h = harness("openai")
    h.run(200)  # warm-up: imports, caches, price resolution, connection machinery
    h.run(8800)
    growth = memory_growth_per_stream(h, 1000)
    assert h.calls_made() == h.ends.assert_each_ended_once() == 10_000
    assert live_objects_of_ours(h.provider) == []
    assert growth < MAX_GROWTH_PER_STREAM, f"{growth:.0f} bytes retained per abandoned stream"


@pytest.mark.slow
def test_async_openai_streams_abandoned_mid_way(loaded_data):
    """The async proxy: break, ``await close()``, unread, consumer error; 1,000 streams."""
    with fake_openai.FakeOpenAIServer() as server:
        server.default_reply = fake_openai.Reply(text=TEXT)
        ends = SpanEnds()
        provider = TracerProvider()
        provider.add_span_processor(ends)
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())
        try:
            asyncio.run(_abandon_async_streams(server, 1000))
        finally:
            instrumentor.uninstrument()
    assert ends.assert_each_ended_once() == 1000
    assert live_objects_of_ours(provider) == []


async def _abandon_async_streams(server: Any, count: int) -> None:
    client: Any = None
    for index in range(count):
        if index % BATCH == 0:
            if client is not None:
                await client.close()
            client = openai.AsyncOpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
            server.reset()
        stream = await client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        mode, seen = index % 4, 0
        if mode == 0:
            async for _ in stream:
                seen += 1
                if seen == 2:
                    break
        elif mode == 1:
            await stream.__anext__()
            await stream.close()
        elif mode == 3:
            try:
                async for _ in stream:
                    seen += 1
                    if seen == 2:
                        raise LookupError("the consumer failed")
            except LookupError:
                pass
        del stream  # mode 2: never read, garbage collected
    await client.close()
