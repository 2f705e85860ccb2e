"""Fixtures and helpers for the Bedrock tests: the fake Bedrock Runtime, a real boto3 client pointed at
it, and the Bedrock instrumentor recording into conftest's in-memory :class:`Telemetry`.

Test modules import the fixtures by name (pytest finds fixtures in a module's namespace)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from _telemetry import Telemetry
from botocore.config import Config

from otel_tokenkpi import tokens
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.testing.fake_bedrock import FakeBedrockServer

# What test modules star-import: the fixtures (constants and helpers are imported by name).
__all__ = ["bedrock_server", "capturing", "client", "fake", "telemetry"]

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
NO_RETRIES = Config(retries={"total_max_attempts": 1})


def _botocore_models_prompt_caching() -> bool:
    """Older botocore (1.34.116, our floor) has no cachePoint / cacheReadInputTokens in its bedrock-runtime
    model: it rejects the first and drops the second from responses (what the SDK returns, so what we record)."""
    import botocore.session

    usage = botocore.session.get_session().get_service_model("bedrock-runtime").shape_for("TokenUsage")
    return "cacheReadInputTokens" in usage.members


needs_prompt_caching = pytest.mark.skipif(
    not _botocore_models_prompt_caching(), reason="this botocore's bedrock-runtime model has no prompt caching"
)


def make_client(url: str, config: Config = NO_RETRIES) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=config,
    )


def estimated(*texts: str) -> int:
    """What the engine counts for texts of a non-OpenAI model: the estimator, part by part."""
    return sum(tokens.estimate_tokens(t) for t in texts if t)


def without_request_ids(response: dict[str, Any]) -> dict[str, Any]:
    """A response minus what differs per call (request id, date and connection headers)."""
    response = copy.copy(response)
    response.pop("ResponseMetadata", None)
    return response


@pytest.fixture(scope="session")
def bedrock_server() -> Iterator[FakeBedrockServer]:
    with FakeBedrockServer() as fake:
        yield fake


@pytest.fixture
def fake(bedrock_server: FakeBedrockServer) -> FakeBedrockServer:
    bedrock_server.reset()
    return bedrock_server


@pytest.fixture
def client(fake: FakeBedrockServer) -> Any:
    return make_client(fake.url)


@pytest.fixture
def telemetry(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    """The Bedrock instrumentor recording into in-memory exporters (content capture off)."""
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    with instrumented() as t:
        yield t


@pytest.fixture
def capturing(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    """Same, with content capture on (the Recorder reads the switch when instrumented)."""
    monkeypatch.setenv(CAPTURE_ENV, "true")
    with instrumented() as t:
        yield t


class instrumented:
    """``with instrumented() as telemetry:``: instrument, and always uninstrument afterwards."""

    def __enter__(self) -> Telemetry:
        self.telemetry = Telemetry()
        BedrockInstrumentor().instrument(
            tracer_provider=self.telemetry.tracer_provider, meter_provider=self.telemetry.meter_provider
        )
        return self.telemetry

    def __exit__(self, *exc_info: object) -> None:
        BedrockInstrumentor().uninstrument()
