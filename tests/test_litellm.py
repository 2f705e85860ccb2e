"""litellm.completion / acompletion / embedding / aembedding: one span per call, whichever way litellm was
imported, with the OpenAI and Anthropic instrumentors on too (litellm calls the openai SDK underneath).

Real litellm, real HTTP, against the fake OpenAI and Anthropic servers.
"""

from __future__ import annotations

import importlib
import json

import _litellm_support as support  # first: sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported
import litellm
import pytest
import tiktoken
from _litellm_support import MESSAGES
from litellm import completion as completion_imported_early  # bound before any instrument()
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi.invocation import ToolDefinition
from otel_tokenkpi.testing import fake_anthropic
from otel_tokenkpi.testing.fake_openai import Reply, ToolCall
from otel_tokenkpi.tool_tokens import count_request_tools

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_litellm_support"]

O200K = tiktoken.get_encoding("o200k_base")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def tokens_of(*texts: str) -> int:
    return sum(len(O200K.encode_ordinary(t)) for t in texts)


def test_plain_call_has_semconv_shape_and_exact_usage(ltelemetry, fake):
    fake.enqueue(Reply(text="Sunny.", prompt_tokens=120, completion_tokens=7, cached_tokens=64, reasoning_tokens=3))
    response = litellm.completion(
        **support.target(fake), messages=MESSAGES, tools=[WEATHER], max_tokens=50, temperature=0.2, seed=7
    )
    assert response.choices[0].message.content == "Sunny."
    span = ltelemetry.span()  # exactly one, from us: the openai SDK call underneath made none
    attrs = dict(span.attributes)
    host, port = fake.url.removeprefix("http://").split(":")
    assert span.name == "chat gpt-4o" and span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == support.SCOPE
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o"  # without litellm's provider prefix
    assert attrs["server.address"] == host and attrs["server.port"] == int(port)
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.response.id"] == response.id
    assert attrs["gen_ai.response.model"] == "gpt-4o"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 64
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
    schema = json.dumps(WEATHER["function"]["parameters"], separators=(",", ":"))
    assert attrs["tokenkpi.context.system_tokens"] == tokens_of("You are brief.")
    definition = ToolDefinition("get_weather", "Current weather for a city.", schema)
    expected = count_request_tools([definition], "openai", "gpt-4o", system_text="You are brief.")
    assert attrs["tokenkpi.context.tool_definitions_tokens"] == expected.total
    assert attrs["tokenkpi.tools.defined_count"] == 1
    assert attrs["tokenkpi.tool_calls.count"] == 0
    assert "tokenkpi.tokens.estimated" not in attrs  # gpt-4o counts exactly offline
    assert attrs["tokenkpi.context.window"] == 128000
    assert attrs["tokenkpi.cost.usd"] > 0
    assert "gen_ai.input.messages" not in attrs  # no content without the opt-in


def test_anthropic_behind_litellm_counts_cache_reads_and_writes_in_input(ltelemetry, afake):
    afake.enqueue(fake_anthropic.Reply(input_tokens=10, cache_read_tokens=100, cache_write_tokens=50, output_tokens=9))
    response = litellm.completion(**support.target(afake), messages=MESSAGES, max_tokens=64, top_k=5)
    attrs = ltelemetry.span().attributes
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "claude-haiku-4-5"
    assert attrs["gen_ai.request.top_k"] == 5
    # litellm's prompt_tokens is already 10 + 100 + 50: not added twice.
    assert response.usage.prompt_tokens == 160
    assert attrs["gen_ai.usage.input_tokens"] == 160
    assert attrs["gen_ai.usage.output_tokens"] == 9
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.usage.cache_write.input_tokens"] == 50
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)  # as litellm spells Anthropic's end_turn
    assert attrs["tokenkpi.tokens.estimated"] is True  # no offline tokenizer for Claude


def test_parallel_tool_calls_are_fan_out(ltelemetry, fake, afake):
    fake.enqueue(Reply(text=None, tool_calls=[ToolCall("get_weather", json.dumps({"city": c})) for c in "ABC"]))
    litellm.completion(**support.target(fake), messages=MESSAGES, tools=[WEATHER])
    calls = [fake_anthropic.ToolCall("get_weather", json.dumps({"city": c})) for c in "AB"]
    afake.enqueue(fake_anthropic.Reply(text=None, tool_calls=calls))
    litellm.completion(**support.target(afake), messages=MESSAGES, tools=[WEATHER], max_tokens=64)
    openai_span, anthropic_span = ltelemetry.spans()
    assert openai_span.attributes["tokenkpi.tool_calls.count"] == 3
    assert openai_span.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert anthropic_span.attributes["tokenkpi.tool_calls.count"] == 2
    assert anthropic_span.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_result_identical_with_and_without_instrumentation(ltelemetry, fake, instrumentors):
    fake.enqueue(Reply(text="Same."))
    with_us = litellm.completion(**support.target(fake), messages=MESSAGES)
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    fake.reset()
    fake.enqueue(Reply(text="Same."))
    without = litellm.completion(**support.target(fake), messages=MESSAGES)
    assert with_us.model_dump(exclude={"created"}) == without.model_dump(exclude={"created"})
    assert len(ltelemetry.spans()) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, litellm.RateLimitError), (500, litellm.InternalServerError), (400, litellm.BadRequestError)],
)
def test_errors_identical_with_and_without_instrumentation(ltelemetry, fake, instrumentors, status, error):
    fake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as with_us:
        litellm.completion(**support.target(fake), messages=MESSAGES)
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    fake.enqueue(Reply(status=status, error_message=f"boom {status}"))
    with pytest.raises(error) as without:
        litellm.completion(**support.target(fake), messages=MESSAGES)
    assert type(with_us.value) is type(without.value)
    assert str(with_us.value) == str(without.value)
    span = ltelemetry.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == error.__name__
    assert span.attributes["tokenkpi.waste.failed_call_tokens"] == 0


def test_anthropic_error_passes_through(ltelemetry, afake):
    afake.enqueue(fake_anthropic.Reply(status=529, error_message="overloaded"))
    with pytest.raises(litellm.InternalServerError) as caught:
        litellm.completion(**support.target(afake), messages=MESSAGES, max_tokens=8)
    assert ltelemetry.span().attributes["error.type"] == type(caught.value).__qualname__


def test_every_import_style_is_one_span(ltelemetry, fake):
    from litellm import completion as completion_imported_late
    from litellm.main import completion as legacy_completion

    for entry in (litellm.completion, completion_imported_late, legacy_completion):
        entry(**support.target(fake), messages=MESSAGES)
    spans = ltelemetry.spans()
    assert len(spans) == 3 and len(fake.requests) == 3
    assert {s.instrumentation_scope.name for s in spans} == {support.SCOPE}


@pytest.mark.skipif(
    support.LITELLM_VERSION < support.DISPATCH,
    reason="litellm < 1.103 has no dispatcher: `from litellm import completion` before instrument() "
    "binds litellm.main.completion itself, which no patch can reach",
)
def test_import_before_instrument_is_one_span(ltelemetry, fake):
    completion_imported_early(**support.target(fake), messages=MESSAGES)
    (span,) = ltelemetry.spans()
    assert span.instrumentation_scope.name == support.SCOPE and len(fake.requests) == 1


@pytest.mark.skipif(
    support.LITELLM_VERSION >= support.DISPATCH, reason="litellm >= 1.103: the dispatcher reaches our patch"
)
def test_import_before_instrument_below_1_103_is_the_openai_sdks_span(ltelemetry, fake, afake):
    """A documented limit below litellm 1.103: ``from litellm import completion`` done before instrument() IS
    the unpatched function, so there is no litellm span. A call litellm routes through the openai SDK still
    reaches that SDK's request path (named by its base URL, as any openai-SDK call); one routed elsewhere
    (Anthropic: litellm's own HTTP client) has no span."""
    completion_imported_early(**support.target(fake), messages=MESSAGES)
    completion_imported_early(**support.target(afake), messages=MESSAGES, max_tokens=8)
    (span,) = ltelemetry.spans()
    assert span.instrumentation_scope.name == "otel_tokenkpi.instrumentors.openai"
    assert span.attributes["gen_ai.usage.input_tokens"] == 10
    assert len(fake.requests) == 1 and len(afake.requests) == 1


def test_positional_model_and_messages_are_read(ltelemetry, fake):
    target = support.target(fake)
    fake.enqueue(Reply(text="Grand.", prompt_tokens=25))  # the two messages plus OpenAI's framing
    litellm.completion(target.pop("model"), MESSAGES, **target)
    attrs = ltelemetry.span().attributes
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["tokenkpi.context.system_tokens"] == tokens_of("You are brief.")
    content = tokens_of(*(m["content"] for m in MESSAGES))  # a first call: all new
    assert attrs["tokenkpi.context.new_tokens"] == content
    assert attrs["tokenkpi.context.unattributed_tokens"] == 25 - content


def test_litellm_retries_are_inside_the_one_span(ltelemetry, fake):
    fake.enqueue(Reply(status=500), Reply(text="second try", prompt_tokens=12, completion_tokens=3))
    response = litellm.completion(**support.target(fake), messages=MESSAGES, num_retries=1)
    assert response.choices[0].message.content == "second try"
    assert len(fake.requests) == 2
    span = ltelemetry.span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["gen_ai.usage.input_tokens"] == 12


async def test_async_call(ltelemetry, fake):
    fake.enqueue(Reply(text="Async.", prompt_tokens=21, completion_tokens=4))
    response = await litellm.acompletion(**support.target(fake), messages=MESSAGES)
    assert response.choices[0].message.content == "Async."
    attrs = ltelemetry.span().attributes
    assert attrs["gen_ai.usage.input_tokens"] == 21 and attrs["gen_ai.usage.output_tokens"] == 4


DIRECT_ASYNC_FLAG = pytest.mark.skipif(
    support.LITELLM_VERSION < (1, 109),
    reason="litellm < 1.109 fails completion(acompletion=True) / embedding(aembedding=True) called directly "
    "(no logging object), with or without instrumentation",
)


@DIRECT_ASYNC_FLAG
async def test_completion_with_acompletion_flag_is_one_async_span(ltelemetry, fake):
    fake.enqueue(Reply(text="Flagged.", prompt_tokens=8))
    pending = litellm.completion(**support.target(fake), messages=MESSAGES, acompletion=True)
    assert ltelemetry.spans() == []  # nothing sent yet: the coroutine is the call
    response = await pending
    assert response.choices[0].message.content == "Flagged."
    assert ltelemetry.span().attributes["gen_ai.usage.input_tokens"] == 8


async def test_async_error_passes_through(ltelemetry, fake):
    fake.enqueue(Reply(status=500))
    with pytest.raises(litellm.InternalServerError):
        await litellm.acompletion(**support.target(fake), messages=MESSAGES)
    assert ltelemetry.span().attributes["error.type"] == "InternalServerError"


@pytest.mark.parametrize("encoding_format", [None, "float"])  # "float": through the openai SDK's embeddings.create
def test_embeddings_are_one_span(ltelemetry, fake, encoding_format):
    extra = {"encoding_format": encoding_format} if encoding_format else {}
    target = {**support.target(fake), "model": "openai/text-embedding-3-small"}
    response = litellm.embedding(**target, input=["alpha", "beta"], **extra)
    assert len(response.data) == 2
    span = ltelemetry.span()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.instrumentation_scope.name == support.SCOPE
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == 16  # the fake bills 8 per input
    assert span.attributes.get("gen_ai.request.encoding_formats") == ((encoding_format,) if encoding_format else None)


async def test_async_embeddings(ltelemetry, fake):
    target = {**support.target(fake), "model": "openai/text-embedding-3-small"}
    await litellm.aembedding(**target, input="alpha")
    await litellm.aembedding(**target, input=["beta", "gamma"])
    spans = ltelemetry.spans()
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in spans] == [8, 16]


@DIRECT_ASYNC_FLAG
async def test_embedding_with_aembedding_flag_is_one_async_span(ltelemetry, fake):
    target = {**support.target(fake), "model": "openai/text-embedding-3-small"}
    await litellm.embedding(**target, input="beta", aembedding=True)
    assert ltelemetry.span().attributes["gen_ai.usage.input_tokens"] == 8


def test_metrics_token_usage_and_duration(ltelemetry, fake):
    fake.enqueue(Reply(prompt_tokens=100, completion_tokens=10), Reply(prompt_tokens=50, completion_tokens=4))
    for _ in range(2):
        litellm.completion(**support.target(fake), messages=MESSAGES)
    usage = {p.attributes["gen_ai.token.type"]: p for p in ltelemetry.metric_points("gen_ai.client.token.usage")}
    assert usage["input"].sum == 150 and usage["input"].count == 2
    assert usage["output"].sum == 14 and usage["output"].count == 2
    assert usage["input"].attributes["gen_ai.provider.name"] == "openai"
    (duration,) = ltelemetry.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 2


def patched_references() -> dict:
    """Every reference the instrumentor patches in this litellm release."""
    refs = {
        "completion": litellm.completion,
        "acompletion": litellm.acompletion,
        "embedding": litellm.embedding,
        "main.completion": litellm.main.completion,
        "main.aembedding": litellm.main.aembedding,
    }
    # What the dispatch modules (litellm >= 1.103 for chat, >= 1.104 for embeddings) captured from litellm.main.
    for module, name in (
        ("litellm.chat_completions.dispatch", "_PYTHON_COMPLETION"),
        ("litellm.chat_completions.dispatch", "_PYTHON_ACOMPLETION"),
        ("litellm.embeddings.dispatch", "_PYTHON_EMBEDDING"),
    ):
        try:
            refs[f"{module}.{name}"] = getattr(importlib.import_module(module), name)
        except ImportError:
            pass
    return refs


def test_uninstrument_restores_every_patched_reference(fake, loaded_data, instrumentors):
    originals = patched_references()
    captured = originals.get("litellm.chat_completions.dispatch._PYTHON_COMPLETION", litellm.main.completion)
    assert captured is originals["main.completion"]  # the dispatcher's reference is litellm.main's function
    instrumentor = instrumentors[0]
    instrumentor.instrument()
    patched = patched_references()
    assert all(patched[name] is not originals[name] for name in originals), patched
    instrumentor.uninstrument()
    restored = patched_references()
    assert all(restored[name] is originals[name] for name in originals), restored
