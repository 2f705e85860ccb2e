"""Shared fixtures: offline tokenizer data, the fake OpenAI server, and an
instrumented OpenAI SDK recording into in-memory SDK exporters."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _telemetry import Telemetry, instrumented_with
from seed_tiktoken_cache import seed

from otel_tokenkpi import prices, tokens
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

# The provider fixture modules reach a test module through its ``pytest_plugins`` after the module has
# imported helpers from them: marked here, before any test module is imported, they are imported with
# pytest's assertion rewriting (and pytest does not warn that it is too late to rewrite them).
pytest.register_assert_rewrite(*(path.stem for path in Path(__file__).parent.glob("_*_support.py")))


def pytest_configure(config: Any) -> None:
    # Tests never reach the network: tiktoken reads a seeded cache dir.
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiktoken-cache-")
    seed(os.environ["TIKTOKEN_CACHE_DIR"])
    os.environ.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)


@pytest.fixture(scope="session")
def loaded_data() -> None:
    """Exact token counts and prices from the first call on."""
    tokens.start_loading()
    prices.start_loading()
    assert tokens.wait_until_loaded(30)
    assert prices.wait_until_loaded(30)


@pytest.fixture(scope="session")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    return server


@pytest.fixture
def telemetry(loaded_data: None) -> Iterator[Telemetry]:
    from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor

    with instrumented_with(OpenAIInstrumentor) as t:
        yield t


@pytest.fixture
def openai_client(fake: FakeOpenAIServer) -> Any:
    import openai

    return openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)


@pytest.fixture
def async_openai_client(fake: FakeOpenAIServer) -> Any:
    import openai

    return openai.AsyncOpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0)
