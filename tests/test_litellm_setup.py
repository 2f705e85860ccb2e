"""How the LiteLLM instrumentor is loaded and names things: no litellm import from instrument() (patched
when the user imports it), the entry point, provider names, fallbacks, content capture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import _litellm_support as support  # first: sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported
import litellm
import pytest
from _litellm_support import MESSAGES
from _telemetry import Telemetry

from otel_tokenkpi.instrumentors.litellm import LiteLLMInstrumentor, _base_request
from otel_tokenkpi.testing.fake_openai import Reply

# Fixtures of the provider's support module (fake server, client, telemetry).
pytest_plugins = ["_litellm_support"]

# Runs in a fresh interpreter: litellm is already imported in this one.
IMPORT_LATER = textwrap.dedent(
    """
    import json, os, sys
    from importlib.metadata import entry_points
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    (entry,) = entry_points(group="opentelemetry_instrumentor", name="tokenkpi_litellm")
    Instrumentor = entry.load()
    first = Instrumentor()
    first.instrument(tracer_provider=provider)
    first.uninstrument()  # its import hook stays registered (wrapt cannot remove one) and must stay quiet

    class Second(Instrumentor):  # BaseInstrumentor is a singleton per class
        pass

    second = Second()
    second.instrument(tracer_provider=provider)
    facts = {"imported_by_instrument": "litellm" in sys.modules}
    import litellm

    facts["wrapped_once"] = type(litellm.completion.__wrapped__).__name__ == "function"
    with FakeOpenAIServer() as server:
        call = dict(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                    api_base=server.url + "/v1", api_key="sk-test")
        litellm.completion(**call)
        facts["spans_after_import"] = len(exporter.get_finished_spans())
        second.uninstrument()
        facts["restored"] = type(litellm.completion).__name__ == "function"
        litellm.completion(**call)
        facts["spans_after_uninstrument"] = len(exporter.get_finished_spans())
        second.instrument(tracer_provider=provider)  # litellm already imported: patched at once
        litellm.completion(**call)
        facts["spans_after_reinstrument"] = len(exporter.get_finished_spans())
    print(json.dumps(facts))
    """
)


def test_instrument_never_imports_litellm_and_patches_it_on_import():
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_LATER], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts == {
        "imported_by_instrument": False,
        "wrapped_once": True,
        "spans_after_import": 1,
        "restored": True,
        "spans_after_uninstrument": 1,
        "spans_after_reinstrument": 2,
    }


@pytest.mark.parametrize(
    ("model", "provider", "request_model"),
    [
        ("openai/gpt-4o", "openai", "gpt-4o"),
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("azure/my-deployment", "azure.ai.openai", "my-deployment"),
        ("anthropic/claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
        (
            "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("vertex_ai/gemini-2.5-flash", "gcp.vertex_ai", "gemini-2.5-flash"),
        ("gemini/gemini-2.5-flash", "gcp.gemini", "gemini-2.5-flash"),
        ("mistral/mistral-large-latest", "mistral_ai", "mistral-large-latest"),
        ("groq/llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant"),
        ("cohere_chat/command-r", "cohere", "command-r"),
        ("ollama_chat/llama3", "ollama", "llama3"),
        ("deepseek/deepseek-chat", "deepseek", "deepseek-chat"),
        ("xai/grok-2", "x_ai", "grok-2"),
        ("together_ai/meta-llama/Llama-3-8b", "together_ai", "meta-llama/Llama-3-8b"),  # not in semconv: litellm's
    ],
)
def test_provider_and_model_as_litellm_routes_them(model, provider, request_model):
    request = _base_request("chat", {"model": model})
    assert (request.provider, request.model) == (provider, request_model)


def test_custom_llm_provider_argument_routes_too():
    request = _base_request("chat", {"model": "my-model", "custom_llm_provider": "groq"})
    assert (request.provider, request.model) == ("groq", "my-model")


def test_fallback_is_inside_the_one_span(ltelemetry, fake):
    fake.enqueue(Reply(status=500), Reply(text="from the fallback"))
    response = litellm.completion(**support.target(fake), messages=MESSAGES, fallbacks=["openai/gpt-4o-mini"])
    assert response.choices[0].message.content == "from the fallback"
    assert [r.body["model"] for r in fake.requests] == ["gpt-4o", "gpt-4o-mini"]
    span = ltelemetry.span()
    assert span.attributes["gen_ai.request.model"] == "gpt-4o"
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert "error.type" not in span.attributes


def test_content_capture_is_opt_in(loaded_data, fake, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    telemetry = Telemetry()
    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        fake.enqueue(Reply(text="Bright."))
        litellm.completion(**support.target(fake), messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    attrs = telemetry.span().attributes
    inputs = json.loads(attrs["gen_ai.input.messages"])
    assert [m["role"] for m in inputs] == ["system", "user"]
    assert inputs[1]["parts"] == [{"type": "text", "content": MESSAGES[1]["content"]}]
    (output,) = json.loads(attrs["gen_ai.output.messages"])
    assert output["parts"] == [{"type": "text", "content": "Bright."}] and output["finish_reason"] == "stop"
