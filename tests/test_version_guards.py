"""Version guards, the same for all nine instrumentors: an SDK release that lacks a method we patch is
simulated by deleting that method from the real SDK class (what an older release looks like), and the
instrumentor, loaded through its entry point, must warn once naming it, instrument the rest (a real call
over HTTP to the fake server still gets its span) and never raise. Importing an instrumentor module, and
instrumenting, must not raise either when the SDK is not installed at all.

Each case imports its SDK lazily, so this module also runs in the oldest-version venvs of tests/matrix.sh,
which hold only some of the SDKs: a case whose SDK is absent is skipped there.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pytest
from _telemetry import Telemetry

from otel_tokenkpi import _safety
from otel_tokenkpi import semconv as sc

ASK = [{"role": "user", "content": "Describe Paris in a few words."}]


def call_openai() -> None:
    import openai

    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply

    with FakeOpenAIServer() as server:
        server.enqueue(Reply(text="Lovely."))
        client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=ASK)  # type: ignore[arg-type]


def call_anthropic() -> None:
    import anthropic

    from otel_tokenkpi.testing.fake_anthropic import FakeAnthropicServer, Reply

    with FakeAnthropicServer() as server:
        server.enqueue(Reply(text="Lovely."))
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
        client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=ASK)  # type: ignore[arg-type]


def call_google_genai() -> None:
    from google import genai
    from google.genai import types

    from otel_tokenkpi.testing.fake_gemini import FakeGeminiServer, Reply

    with FakeGeminiServer() as server:
        server.enqueue(Reply(text="Lovely."))
        client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.url))
        client.models.generate_content(model="gemini-2.5-flash", contents="Describe Paris in a few words.")


def call_mistral() -> None:
    from mistralai.client import Mistral

    from otel_tokenkpi.testing.fake_mistral import FakeMistralServer, Reply

    with FakeMistralServer() as server:
        server.enqueue(Reply(text="Lovely."))
        Mistral(api_key="test-key", server_url=server.url).chat.complete(model="mistral-small-latest", messages=ASK)


def call_cohere() -> None:
    import cohere

    from otel_tokenkpi.testing.fake_cohere import FakeCohereServer, Reply

    with FakeCohereServer() as server:
        server.enqueue(Reply(text="Lovely."))
        cohere.ClientV2(api_key="co-test", base_url=server.url).chat(model="command-a-03-2025", messages=ASK)


def call_ollama() -> None:
    import ollama

    from otel_tokenkpi.testing.fake_ollama import FakeOllamaServer, Reply

    with FakeOllamaServer() as server:
        server.enqueue(Reply(text="Lovely."))
        ollama.Client(host=server.url).chat(model="llama3.2", messages=ASK)


def call_groq() -> None:
    import groq

    from otel_tokenkpi.testing.fake_groq import FakeGroqServer, Reply

    with FakeGroqServer() as server:
        server.enqueue(Reply(text="Lovely."))
        client = groq.Groq(api_key="gsk_test", base_url=server.url, max_retries=0)
        client.chat.completions.create(model="qwen/qwen3-32b", messages=ASK)  # type: ignore[arg-type]


def call_litellm() -> None:
    import litellm

    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply

    with FakeOpenAIServer() as server:
        server.enqueue(Reply(text="Lovely."))
        litellm.completion(model="openai/gpt-4o", api_base=server.url + "/v1", api_key="sk-test", messages=ASK)


@dataclass(frozen=True)
class Case:
    lib: str  # entry point tokenkpi_<lib>, module otel_tokenkpi.instrumentors.<lib>
    sdk: str  # the SDK's top-level import (hidden in the subprocess test)
    module: str  # where the hidden method lives, as the patch table names it
    cls: str  # "" for a module-level function
    method: str  # the method an "older release" lacks
    call: Callable[[], None] | None  # one real call through a method that is still there
    operation: str = "chat"  # gen_ai.operation.name of that call

    @property
    def target(self) -> str:
        return ".".join(part for part in (self.module, self.cls, self.method) if part)


CASES = [
    # Not the sync Embeddings.create: openai 1.40 builds with_raw_response wrappers of every sync method in OpenAI().
    Case("openai", "openai", "openai.resources.embeddings", "AsyncEmbeddings", "create", call_openai),
    Case("anthropic", "anthropic", "anthropic.resources.messages", "Messages", "stream", call_anthropic),
    Case(
        "google_genai",
        "google.genai",
        "google.genai.models",
        "Models",
        "embed_content",
        call_google_genai,
        "generate_content",
    ),
    # Bedrock patches one method (botocore's _make_api_call, which dispatches by operation name): with it gone
    # there is nothing else to instrument, and no real call can be made, so only "warn once, no raise" applies.
    Case("bedrock", "botocore", "botocore.client", "BaseClient", "_make_api_call", None),
    Case("mistral", "mistralai", "mistralai.client.embeddings", "Embeddings", "create", call_mistral),
    Case("cohere", "cohere", "cohere.v2.client", "V2Client", "embed", call_cohere),
    Case("ollama", "ollama", "ollama._client", "Client", "embeddings", call_ollama),
    Case("groq", "groq", "groq.resources.chat.completions", "AsyncCompletions", "create", call_groq),
    Case("litellm", "litellm", "litellm", "", "embedding", call_litellm),
]


def load_instrumentor(lib: str) -> Any:
    """The instrumentor as ``instrument()`` and ``opentelemetry-instrument`` find it: by entry point."""
    (found,) = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == f"tokenkpi_{lib}"]
    return found.load()()


@pytest.fixture
def quiet_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    # As tests/_litellm_support.py: litellm reads its price map from the package, not the network.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    """log_once is per process: forget what earlier tests logged, so "warns once" is observable here."""
    _safety._reset_logged_for_tests()
    yield
    _safety._reset_logged_for_tests()


@pytest.mark.parametrize("case", CASES, ids=[c.lib for c in CASES])
def test_a_method_missing_from_the_sdk_warns_once_and_the_rest_is_instrumented(
    case: Case, loaded_data: None, quiet_litellm: None, fresh_warnings: None, monkeypatch, caplog
) -> None:
    pytest.importorskip(case.sdk)
    owner = importlib.import_module(case.module)
    if case.cls:
        owner = getattr(owner, case.cls)
    if case.method not in vars(owner):
        pytest.skip(f"{case.target} is not defined on that class in this {case.sdk} release")
    monkeypatch.delattr(owner, case.method)  # what a release without the method looks like

    telemetry = Telemetry()
    instrumentor = load_instrumentor(case.lib)
    with caplog.at_level(logging.WARNING, logger="otel_tokenkpi"):
        for _ in range(2):  # the warning is once per process, not once per instrument()
            instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
        try:
            if case.call is not None:
                case.call()
        finally:
            instrumentor.uninstrument()

    ours = [r for r in caplog.records if r.name == "otel_tokenkpi" and r.levelno >= logging.WARNING]
    naming_it = [r for r in ours if f"{case.target} not found" in r.getMessage()]
    assert len(naming_it) == 1, [r.getMessage() for r in ours]
    assert not [r for r in ours if "internal error" in r.getMessage()], [r.getMessage() for r in ours]
    assert not hasattr(owner, case.method)  # we did not put anything in its place

    ours = instrumentor.instrumentation_scope
    spans = [s for s in telemetry.spans() if s.instrumentation_scope and s.instrumentation_scope.name == ours]
    if case.call is None:
        assert spans == []
        return
    assert len(spans) == 1, [s.name for s in telemetry.spans()]
    attributes = spans[0].attributes or {}
    assert attributes[sc.OPERATION_NAME] == case.operation
    assert attributes[sc.USAGE_INPUT_TOKENS] == 10  # every fake's default usage: 10 in, 5 out
    assert attributes[sc.USAGE_OUTPUT_TOKENS] == 5


HIDE_AND_INSTRUMENT = textwrap.dedent(
    """
    import sys
    sys.modules[{sdk!r}] = None  # "not installed": importing it raises ImportError
    import importlib
    from importlib.metadata import entry_points
    from opentelemetry.sdk.trace import TracerProvider

    module = importlib.import_module("otel_tokenkpi.instrumentors.{lib}")
    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "tokenkpi_{lib}"]
    instrumentor = ep.load()()
    instrumentor.instrument(tracer_provider=TracerProvider())
    instrumentor.uninstrument()
    import otel_tokenkpi
    otel_tokenkpi.instrument(tracer_provider=TracerProvider())
    otel_tokenkpi.uninstrument()
    print("OK")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.lib for c in CASES])
def test_importing_and_instrumenting_never_raise_without_the_sdk(case: Case) -> None:
    script = HIDE_AND_INSTRUMENT.format(sdk=case.sdk, lib=case.lib)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OTEL_SDK_DISABLED": "true"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("OK")
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
