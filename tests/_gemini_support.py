"""Fixtures for the google-genai tests: the fake Gemini server, real SDK clients pointed at it, and
the Google GenAI instrumentor recording into in-memory exporters (conftest's ``Telemetry``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
from _telemetry import Telemetry, estimated_tokens, instrumented_with
from google import genai
from google.genai import types

from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.testing.fake_gemini import FakeGeminiServer

MODEL = "gemini-2.5-flash"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# The tests run at the newest SDK and at the floor (tests/matrix.sh). What older releases lack, by version:
GENAI_VERSION = tuple(int(p) for p in version("google-genai").split(".")[:3] if p.isdigit())
# FunctionDeclaration.parameters_json_schema and GenerateContentConfig.response_json_schema (< 1.21: rejected).
HAS_JSON_SCHEMA = GENAI_VERSION >= (1, 21)
# The Gemini API's ``responseId`` reaches ``response_id`` from 1.29 (dropped before): the fake's first reply's id.
RESPONSE_ID = "resp-1" if GENAI_VERSION >= (1, 29) else None
# An in-stream ``{"error": ...}`` event raises from 1.50 (before, it is yielded as an empty chunk).
RAISES_STREAM_ERRORS = GENAI_VERSION >= (1, 50)
# EmbedContentResponse.usage_metadata from 3.1 (before, the Gemini API's embedding usage is dropped).
HAS_EMBED_USAGE = GENAI_VERSION >= (3, 1)


estimate = estimated_tokens  # the provider has no offline tokenizer


def instrumented() -> contextlib.AbstractContextManager[Telemetry]:
    return instrumented_with(GoogleGenAIInstrumentor)


@pytest.fixture(scope="session")
def gemini_server() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer() as fake:
        yield fake


@pytest.fixture
def gemini(gemini_server: FakeGeminiServer) -> FakeGeminiServer:
    gemini_server.reset()
    return gemini_server


@pytest.fixture
def gtelemetry(loaded_data: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Telemetry]:
    monkeypatch.delenv(CAPTURE_ENV, raising=False)
    with instrumented() as telemetry:
        yield telemetry


def make_client(fake: FakeGeminiServer, vertexai: bool = False) -> Any:
    """A real client against the fake; the SDK's retries are off by default (one attempt)."""
    options = types.HttpOptions(base_url=fake.url)
    if vertexai:  # Vertex AI express mode: an API key instead of Google Cloud credentials
        return genai.Client(vertexai=True, api_key="test", http_options=options)
    return genai.Client(api_key="test", http_options=options)


@pytest.fixture
def gclient(gemini: FakeGeminiServer) -> Any:
    return make_client(gemini)
