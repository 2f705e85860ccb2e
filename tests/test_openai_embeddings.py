"""OpenAI embeddings: the real ``openai`` SDK over HTTP against the fake server, instrumented.

The fake bills ``EMBEDDING_TOKENS_PER_INPUT`` (8) input tokens per input item; an embeddings call has no
output tokens and, being a batch of independent inputs, no context utilization.
"""

from __future__ import annotations

from typing import Any

import genai_prices
import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import EMBEDDING_TOKENS_PER_INPUT, FakeOpenAIServer

MODEL = "text-embedding-3-small"
SPAN_NAME = "embeddings text-embedding-3-small"
ONE = "The quick brown fox jumps over the lazy dog."
BATCH = ["first document", "second document", "a third, somewhat longer, document"]

# (input, encoding_format or None, expected input tokens)
CASES = [
    pytest.param(ONE, None, EMBEDDING_TOKENS_PER_INPUT, id="string"),
    pytest.param(BATCH, None, EMBEDDING_TOKENS_PER_INPUT * len(BATCH), id="list"),
    pytest.param(ONE, "float", EMBEDDING_TOKENS_PER_INPUT, id="string-float"),
    pytest.param(BATCH, "base64", EMBEDDING_TOKENS_PER_INPUT * len(BATCH), id="list-base64"),
]


def oracle_cost(input_tokens: int) -> float:
    usage = genai_prices.Usage(input_tokens=input_tokens)
    return float(genai_prices.calc_price(usage, model_ref=MODEL, provider_id="openai").total_price)


def kwargs_for(inputs: Any, encoding_format: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": MODEL, "input": inputs}
    if encoding_format is not None:
        kwargs["encoding_format"] = encoding_format
    return kwargs


def assert_embeddings_span(
    span: Any, fake: FakeOpenAIServer, expected_tokens: int, encoding_format: str | None
) -> None:
    attrs = span.attributes
    assert span.name == SPAN_NAME
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["gen_ai.response.model"] == MODEL
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == int(fake.url.rsplit(":", 1)[1])
    assert attrs["gen_ai.usage.input_tokens"] == expected_tokens
    assert "gen_ai.usage.output_tokens" not in attrs
    assert "tokenkpi.context.utilization" not in attrs
    assert "tokenkpi.tokens.estimated" not in attrs
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(oracle_cost(expected_tokens), rel=1e-9)
    if encoding_format is None:
        assert "gen_ai.request.encoding_formats" not in attrs
    else:
        assert attrs["gen_ai.request.encoding_formats"] == (encoding_format,)
    # Chat-only context attributes do not apply to an embeddings batch.
    assert not [k for k in attrs if k.startswith(("tokenkpi.tool", "tokenkpi.context.system"))]


def input_points(telemetry: Any) -> list[Any]:
    points = telemetry.metric_points("gen_ai.client.token.usage")
    assert not [p for p in points if p.attributes.get("gen_ai.token.type") == "output"]
    return [p for p in points if p.attributes.get("gen_ai.token.type") == "input"]


@pytest.mark.parametrize(("inputs", "encoding_format", "expected_tokens"), CASES)
def test_embeddings_sync(
    fake: FakeOpenAIServer,
    telemetry: Any,
    openai_client: openai.OpenAI,
    inputs: Any,
    encoding_format: str | None,
    expected_tokens: int,
) -> None:
    kwargs = kwargs_for(inputs, encoding_format)
    result = openai_client.embeddings.create(**kwargs)
    OpenAIInstrumentor().uninstrument()
    plain = openai_client.embeddings.create(**kwargs)

    # identical with and without instrumentation (explicit base64 keeps strings in a list[float] field)
    assert result.model_dump(warnings=False) == plain.model_dump(warnings=False)
    assert len(result.data) == (1 if isinstance(inputs, str) else len(inputs))
    assert result.usage.prompt_tokens == expected_tokens
    span = telemetry.span()  # the uninstrumented call made none
    assert_embeddings_span(span, fake, expected_tokens, encoding_format)
    (point,) = input_points(telemetry)
    assert (point.sum, point.count) == (expected_tokens, 1)
    assert point.attributes["gen_ai.operation.name"] == "embeddings"
    assert point.attributes["gen_ai.request.model"] == MODEL


@pytest.mark.parametrize(("inputs", "encoding_format", "expected_tokens"), CASES)
async def test_embeddings_async(
    fake: FakeOpenAIServer,
    telemetry: Any,
    async_openai_client: openai.AsyncOpenAI,
    inputs: Any,
    encoding_format: str | None,
    expected_tokens: int,
) -> None:
    kwargs = kwargs_for(inputs, encoding_format)
    result = await async_openai_client.embeddings.create(**kwargs)
    OpenAIInstrumentor().uninstrument()
    plain = await async_openai_client.embeddings.create(**kwargs)

    assert result.model_dump(warnings=False) == plain.model_dump(warnings=False)
    assert result.usage.prompt_tokens == expected_tokens
    assert_embeddings_span(telemetry.span(), fake, expected_tokens, encoding_format)
    (point,) = input_points(telemetry)
    assert (point.sum, point.count) == (expected_tokens, 1)


async def test_token_usage_metric_sums_sync_and_async(
    fake: FakeOpenAIServer,
    telemetry: Any,
    openai_client: openai.OpenAI,
    async_openai_client: openai.AsyncOpenAI,
) -> None:
    openai_client.embeddings.create(model=MODEL, input=ONE)
    openai_client.embeddings.create(model=MODEL, input=BATCH)
    await async_openai_client.embeddings.create(model=MODEL, input=ONE)
    await async_openai_client.embeddings.create(model=MODEL, input=BATCH)

    per_call = [EMBEDDING_TOKENS_PER_INPUT, EMBEDDING_TOKENS_PER_INPUT * len(BATCH)] * 2
    spans = telemetry.spans()
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in spans] == per_call
    (point,) = input_points(telemetry)  # same attributes for all four calls: one point
    assert (point.sum, point.count) == (sum(per_call), 4)
    durations = telemetry.metric_points("gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 4


def test_embeddings_error(fake: FakeOpenAIServer, telemetry: Any, openai_client: openai.OpenAI) -> None:
    # The fake answers 404 for an unknown path: point the client at one to get a real SDK error.
    broken = openai_client.with_options(base_url=fake.url + "/nope")

    def call() -> BaseException:
        with pytest.raises(openai.NotFoundError) as caught:
            broken.embeddings.create(model=MODEL, input=ONE)
        return caught.value

    error = call()
    OpenAIInstrumentor().uninstrument()
    plain = call()
    assert (type(error), str(error), error.body) == (type(plain), str(plain), plain.body)  # type: ignore[attr-defined]

    span = telemetry.span()
    assert span.name == SPAN_NAME
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "NotFoundError"
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert input_points(telemetry) == []
