"""litellm streams (``CustomStreamWrapper``), sync and async: each way of consuming, leaving or losing
one ends the one span exactly once, with what was seen. The stream is consumed after the call
returned, outside the call's context: the OpenAI and Anthropic instrumentors, also on, still add
no span of their own.
"""

from __future__ import annotations

import gc
import json

import _litellm_support as support  # first: sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported
import litellm
import pytest
import tiktoken
from _litellm_support import MESSAGES, USAGE
from litellm.exceptions import MidStreamFallbackError
from opentelemetry.trace import StatusCode

from otel_tokenkpi.testing import fake_anthropic
from otel_tokenkpi.testing.fake_openai import Reply, ToolCall

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_litellm_support"]

CustomStreamWrapper = litellm.CustomStreamWrapper  # litellm.litellm_core_utils.streaming_handler's, or litellm.utils'
ANSWER = "Paris is bright, old and full of cafes."
O200K = tiktoken.get_encoding("o200k_base")


def text_of(chunks: list) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_openai_stream_with_usage_is_exact(ltelemetry, fake):
    fake.enqueue(Reply(text=ANSWER, prompt_tokens=31, completion_tokens=12, cached_tokens=16))
    stream = litellm.completion(**support.target(fake), messages=MESSAGES, stream=True, stream_options=USAGE)
    assert isinstance(stream, CustomStreamWrapper)
    assert ltelemetry.spans() == []  # the span lasts as long as the stream
    assert text_of(list(stream)) == ANSWER
    attrs = ltelemetry.span().attributes
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 31
    assert attrs["gen_ai.usage.output_tokens"] == 12
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 16
    assert "tokenkpi.tokens.estimated" not in attrs


def test_stream_without_usage_counts_output_locally(ltelemetry, fake):
    fake.enqueue(Reply(text=ANSWER))
    for _ in litellm.completion(**support.target(fake), messages=MESSAGES, stream=True):
        pass
    attrs = ltelemetry.span().attributes
    assert attrs["gen_ai.usage.output_tokens"] == len(O200K.encode_ordinary(ANSWER))
    assert attrs["tokenkpi.tokens.estimated"] is True  # input framing is estimated


def test_anthropic_stream_usage_has_cache_reads_and_writes(ltelemetry, afake):
    afake.enqueue(fake_anthropic.Reply(text=ANSWER, input_tokens=10, cache_read_tokens=30, cache_write_tokens=20))
    stream = litellm.completion(
        **support.target(afake), messages=MESSAGES, max_tokens=64, stream=True, stream_options=USAGE
    )
    assert text_of(list(stream)) == ANSWER
    span = ltelemetry.span()
    assert span.instrumentation_scope.name == support.SCOPE
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.usage.input_tokens"] == 60
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 30
    assert span.attributes["gen_ai.usage.cache_write.input_tokens"] == 20
    assert span.attributes["gen_ai.usage.output_tokens"] == 5


def test_chunks_identical_with_and_without_instrumentation(ltelemetry, fake, instrumentors):
    fake.enqueue(Reply(text=ANSWER, text_chunks=4))
    with_us = list(litellm.completion(**support.target(fake), messages=MESSAGES, stream=True, stream_options=USAGE))
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    fake.reset()
    fake.enqueue(Reply(text=ANSWER, text_chunks=4))
    without = list(litellm.completion(**support.target(fake), messages=MESSAGES, stream=True, stream_options=USAGE))

    def dumps(chunks: list) -> list:
        return [c.model_dump(exclude={"created", "usage"}) for c in chunks]

    assert dumps(with_us) == dumps(without)
    assert len(ltelemetry.spans()) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_streamed_parallel_tool_calls_are_assembled(ltelemetry, fake, afake, provider):
    args = [json.dumps({"city": c}) for c in ("Paris", "Rome")]
    if provider == "openai":
        server = fake
        fake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", a) for a in args]))
    else:
        server = afake
        afake.enqueue(
            fake_anthropic.Reply(text=None, tool_calls=[fake_anthropic.ToolCall("get_weather", a) for a in args])
        )
    for _ in litellm.completion(**support.target(server), messages=MESSAGES, max_tokens=64, stream=True):
        pass
    attrs = ltelemetry.span().attributes
    assert attrs["tokenkpi.tool_calls.count"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_streamed_tool_call_arguments_reach_the_engine(ltelemetry, fake):
    """The same tool call twice in one streamed reply: a duplicate, so the assembled arguments are right."""
    fake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", '{"city": "Paris"}')] * 2))
    list(litellm.completion(**support.target(fake), messages=MESSAGES, stream=True))
    assert ltelemetry.span().attributes["tokenkpi.tool_calls.duplicate_count"] == 1


def test_context_manager_keeps_the_proxy_and_ends_on_exit(ltelemetry, fake):
    fake.enqueue(Reply(text=ANSWER, text_chunks=6))
    with litellm.completion(**support.target(fake), messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, CustomStreamWrapper) and type(stream) is not CustomStreamWrapper
        next(stream)
        assert ltelemetry.spans() == []
    assert len(ltelemetry.spans()) == 1  # at the exit, not at garbage collection


@pytest.mark.skipif(support.LITELLM_VERSION < (1, 108), reason="litellm < 1.108: CustomStreamWrapper has no close()")
def test_close_early_ends_once_with_partial_output(ltelemetry, fake):
    fake.enqueue(Reply(text="one two three four five six", text_chunks=6))
    stream = litellm.completion(**support.target(fake), messages=MESSAGES, stream=True)
    seen = [next(stream) for _ in range(3)]
    stream.close()
    stream.close()
    assert text_of(seen) != "one two three four five six"
    span = ltelemetry.span()
    assert "gen_ai.usage.output_tokens" not in span.attributes  # left early: not all of it was seen
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.attributes["gen_ai.response.id"] == seen[0].id


def test_abandoned_stream_ends_at_garbage_collection(ltelemetry, fake):
    fake.enqueue(Reply(text=ANSWER))
    stream = litellm.completion(**support.target(fake), messages=MESSAGES, stream=True)
    next(stream)
    assert ltelemetry.spans() == []
    del stream
    gc.collect()
    assert len(ltelemetry.spans()) == 1


def test_connection_cut_mid_stream_is_the_same_error(ltelemetry, fake, instrumentors):
    def consume() -> BaseException:
        fake.enqueue(Reply(text="alpha beta gamma delta epsilon", cut_stream_after=3))
        with pytest.raises(MidStreamFallbackError) as caught:
            for _ in litellm.completion(**support.target(fake), messages=MESSAGES, stream=True):
                pass
        return caught.value

    with_us = consume()
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    without = consume()
    assert type(with_us) is type(without) and str(with_us) == str(without)
    span = ltelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "MidStreamFallbackError"
    assert "gen_ai.usage.output_tokens" not in span.attributes


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_async_stream_iterated(ltelemetry, fake, afake, provider):
    server = fake if provider == "openai" else afake
    reply = Reply if provider == "openai" else fake_anthropic.Reply
    server.enqueue(reply(text=ANSWER))
    stream = await litellm.acompletion(
        **support.target(server), messages=MESSAGES, max_tokens=64, stream=True, stream_options=USAGE
    )
    assert ltelemetry.spans() == []
    assert text_of([c async for c in stream]) == ANSWER
    span = ltelemetry.span()
    assert span.instrumentation_scope.name == support.SCOPE
    assert span.attributes["gen_ai.usage.output_tokens"] == 5
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)


async def test_async_context_manager_and_aclose(ltelemetry, fake):
    fake.enqueue(Reply(text=ANSWER), Reply(text=ANSWER))
    async with await litellm.acompletion(**support.target(fake), messages=MESSAGES, stream=True) as stream:
        assert type(stream) is not CustomStreamWrapper
        await stream.__anext__()
    assert len(ltelemetry.spans()) == 1
    stream = await litellm.acompletion(**support.target(fake), messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.aclose()
    assert len(ltelemetry.spans()) == 2
    assert "gen_ai.usage.output_tokens" not in ltelemetry.spans()[1].attributes


async def test_async_stream_error_is_recorded(ltelemetry, fake):
    fake.enqueue(Reply(text="alpha beta gamma delta epsilon", cut_stream_after=3))
    stream = await litellm.acompletion(**support.target(fake), messages=MESSAGES, stream=True)
    with pytest.raises(MidStreamFallbackError):
        async for _ in stream:
            pass
    assert ltelemetry.span().attributes["error.type"] == "MidStreamFallbackError"
