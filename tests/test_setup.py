"""``otel_tokenkpi.instrument()`` / ``uninstrument()``: the one-liner, end to end.

``instrument()`` sets GLOBAL OpenTelemetry providers, which a process can set only once, so every
test here runs its scenario in a fresh interpreter (``subprocess.run([sys.executable, "-c", ...])``).
The child gets the standard ``OTEL_*`` environment pointing at a real :class:`OtlpReceiver` started
in this process, and a real ``openai`` client pointing at the real fake server (``FAKE_URL``). The
child prints one ``RESULT {json}`` line; tests assert on it and on what the receiver got. A receiver
is read only after the child has exited, so everything the child's SDK was going to export (its
exit handlers flush and shut down the providers) has arrived: "nothing arrived" is a real negative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # repo root on sys.path (python -m pytest)
    from tests.otlp_receiver import OtlpReceiver
except ImportError:  # plain `pytest`: conftest puts tests/ on sys.path
    from otlp_receiver import OtlpReceiver  # type: ignore[no-redef]

from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.slow

Rx, Fake = OtlpReceiver, FakeOpenAIServer  # short names for test signatures

MARK = "RESULT "
SCOPE = "otel_tokenkpi.instrumentors.openai"
# Every instrumentor of this distribution whose library the test environment installs.
ALL_OURS = [
    "AnthropicInstrumentor",
    "BedrockInstrumentor",
    "CohereInstrumentor",
    "GoogleGenAIInstrumentor",
    "GroqInstrumentor",
    "LiteLLMInstrumentor",
    "MistralInstrumentor",
    "OllamaInstrumentor",
    "OpenAIInstrumentor",
]
HEADERS = "x-honeycomb-team=key123,x-honeycomb-dataset=ds1"
# The fake's default reply: 10 prompt tokens, 5 completion tokens, finish reason "stop", text "ok".
# genai-prices (bundled data): gpt-4o-mini $0.15 / $0.60 per Mtok, gpt-4o $2.50 / $10.00; both 128k.
GPT_4O_MINI_COST = (10 * 0.15 + 5 * 0.6) / 1_000_000  # 4.5e-06
GPT_4O_COST = (10 * 2.5 + 5 * 10.0) / 1_000_000  # 7.5e-05
CONTEXT_WINDOW = 128000
TOKEN_BUCKETS = [float(4**i) for i in range(14)]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]

PRELUDE = textwrap.dedent(
    """
    import json, logging, os, sys
    import openai
    from opentelemetry import metrics, trace
    import otel_tokenkpi
    from otel_tokenkpi import prices, tokens
    from otel_tokenkpi import sdk_setup as tk_setup

    client = openai.OpenAI(api_key="sk-test", base_url=os.environ["FAKE_URL"] + "/v1", max_retries=0)

    def chat(model="gpt-4o-mini", **kw):
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], **kw
        )

    def wait_loaded():
        assert tokens.wait_until_loaded(30), "tiktoken data did not load"
        assert prices.wait_until_loaded(30), "genai-prices did not load"

    def flush():
        tp, mp = trace.get_tracer_provider(), metrics.get_meter_provider()
        if hasattr(tp, "force_flush"):
            assert tp.force_flush(10000), "tracer provider flush timed out"
        if hasattr(mp, "force_flush"):
            assert mp.force_flush(10000), "meter provider flush timed out"

    def emit(obj):
        print("RESULT " + json.dumps(obj), flush=True)

    def log_to_stderr(level):
        logging.basicConfig(level=level, stream=sys.stderr, format="LOG|%(name)s|%(levelname)s|%(message)s")
    """
)


# -- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def rx() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def child_env(fake: FakeOpenAIServer, **settings: str) -> dict[str, str]:
    """The parent's environment without any OTEL_* / OPENAI_* setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env["TIKTOKEN_CACHE_DIR"] = os.environ["TIKTOKEN_CACHE_DIR"]
    env["FAKE_URL"] = fake.url
    env.update(settings)
    return env


def otlp_env(rx: OtlpReceiver, protocol: str = "http/protobuf", **more: str) -> dict[str, str]:
    endpoint = rx.http_endpoint if protocol == "http/protobuf" else rx.grpc_endpoint
    return {
        "OTEL_SERVICE_NAME": "svc-x",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        **more,
    }


def run_child(script: str, env: dict[str, str], cwd: Path) -> tuple[dict[str, Any], str, str]:
    """Run PRELUDE + script in a fresh interpreter; return (its RESULT json, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    results = [line[len(MARK) :] for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert len(results) == 1, proc.stdout
    return json.loads(results[0]), proc.stdout, proc.stderr


def log_lines(stderr: str, logger: str, level: str) -> list[str]:
    """Lines of the child's ``LOG|name|LEVEL|message`` logging format for one logger and level."""
    prefix = f"LOG|{logger}|{level}|"
    return [line[len(prefix) :] for line in stderr.splitlines() if line.startswith(prefix)]


def console_objects(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects ConsoleSpanExporter printed (every stdout JSON object but the RESULT line)."""
    text = "\n".join(line for line in stdout.splitlines() if not line.startswith(MARK))
    decoder, objects, pos = json.JSONDecoder(), [], 0
    while (start := text.find("{", pos)) != -1:
        obj, pos = decoder.raw_decode(text, start)
        objects.append(obj)
    return objects


def histogram_summary(points: list[dict[str, Any]], key: str) -> set[tuple[Any, float, int]]:
    """{(attribute ``key``, sum, count)} of histogram points. A set: cumulative points exported by
    the flush and again by the exit-time shutdown are the same point."""
    return {(p["attributes"].get(key), p["sum"], p["count"]) for p in points}


# -- (a), (b): providers created from the standard OTEL_* environment -----------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_instrument_creates_providers_from_env(protocol: str, rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(
        fake,
        **otlp_env(
            rx,
            protocol,
            OTEL_EXPORTER_OTLP_HEADERS=HEADERS,
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=staging",
        ),
    )
    out, _, _ = run_child(
        """
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        otel_tokenkpi.instrument()
        wait_loaded()
        r = chat()
        flush()
        tp = trace.get_tracer_provider()
        emit({
            "content": r.choices[0].message.content,
            "sdk_tracer_provider": isinstance(tp, TracerProvider),
            "sdk_meter_provider": isinstance(metrics.get_meter_provider(), MeterProvider),
            "created_is_global": tk_setup._created_tracer_provider is tp,
            "processors": [
                [type(p).__name__, type(p.downstream).__name__] for p in tk_setup._span_processors(tp)
            ],
        })
        """,
        env,
        tmp_path,
    )
    assert out == {
        "content": "ok",
        "sdk_tracer_provider": True,
        "sdk_meter_provider": True,
        "created_is_global": True,
        "processors": [["TokenKPISpanProcessor", "BatchSpanProcessor"]],
    }
    assert len(fake.requests) == 1

    spans = rx.spans()
    assert len(spans) == 1, [s["name"] for s in spans]
    span = spans[0]
    assert span["name"] == "chat gpt-4o-mini"
    assert span["kind"] == "CLIENT"
    assert span["scope"] == SCOPE
    assert span["parent_span_id"] == ""
    assert span["resource"]["service.name"] == "svc-x"
    assert span["resource"]["deployment.environment.name"] == "staging"
    attrs = span["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.usage.input_tokens"] == 10
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["tokenkpi.context.window"] == CONTEXT_WINDOW
    assert attrs["tokenkpi.context.utilization"] == pytest.approx(10 / CONTEXT_WINDOW, rel=1e-12)
    assert attrs["tokenkpi.cost.usd"] == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert attrs["tokenkpi.tools.defined_count"] == 0
    assert attrs["tokenkpi.tool_calls.count"] == 0
    assert "tokenkpi.tokens.estimated" not in attrs  # tiktoken data was loaded: exact counts

    transport = "http" if protocol == "http/protobuf" else "grpc"
    for signal in ("traces", "metrics"):
        requests = rx.requests(signal)
        assert requests, f"no {signal} export arrived"
        for req in requests:
            assert req.transport == transport
            assert req.headers["x-honeycomb-team"] == "key123"
            assert req.headers["x-honeycomb-dataset"] == "ds1"

    m = rx.metrics()
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= set(m)
    usage = m["gen_ai.client.token.usage"]
    assert histogram_summary(usage, "gen_ai.token.type") == {("input", 10.0, 1), ("output", 5.0, 1)}
    for point in usage:
        assert point["unit"] == "{token}"
        assert point["bounds"] == TOKEN_BUCKETS
        assert point["resource"]["service.name"] == "svc-x"
        assert point["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
        assert point["attributes"]["gen_ai.operation.name"] == "chat"
    duration = m["gen_ai.client.operation.duration"]
    assert {p["count"] for p in duration} == {1}
    assert all(p["unit"] == "s" and p["sum"] > 0 for p in duration)
    assert all(p["bounds"] == DURATION_BUCKETS for p in duration)


def test_sampler_from_env_drops_spans_but_keeps_metrics(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_TRACES_SAMPLER="always_off"))
    out, _, _ = run_child(
        """
        otel_tokenkpi.instrument()
        wait_loaded()
        r = chat()
        flush()
        emit({"content": r.choices[0].message.content})
        """,
        env,
        tmp_path,
    )
    assert out == {"content": "ok"}
    assert rx.spans() == []
    usage = rx.metrics()["gen_ai.client.token.usage"]
    assert histogram_summary(usage, "gen_ai.token.type") == {("input", 10.0, 1), ("output", 5.0, 1)}


# -- (c): console exporter -------------------------------------------------------------------------


def test_console_traces_exporter_prints_span_json(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none"))
    out, stdout, _ = run_child(
        """
        otel_tokenkpi.instrument()
        wait_loaded()
        r = chat()
        flush()
        emit({"content": r.choices[0].message.content})
        """,
        env,
        tmp_path,
    )
    assert out == {"content": "ok"}
    assert '"name": "chat gpt-4o-mini"' in stdout
    assert '"tokenkpi.context.window": 128000' in stdout
    objects = console_objects(stdout)
    assert [o["name"] for o in objects] == ["chat gpt-4o-mini"]
    span = objects[0]
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["attributes"]["tokenkpi.cost.usd"] == pytest.approx(GPT_4O_MINI_COST, rel=1e-12)
    assert span["attributes"]["gen_ai.usage.input_tokens"] == 10
    assert span["resource"]["attributes"]["service.name"] == "svc-x"
    # console replaced the default otlp exporter: nothing went to the endpoint
    assert rx.requests() == []


def test_console_option_adds_console_beside_otlp(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_METRICS_EXPORTER="none"))
    _, stdout, _ = run_child(
        """
        otel_tokenkpi.instrument(console=True)
        wait_loaded()
        chat()
        flush()
        emit({})
        """,
        env,
        tmp_path,
    )
    assert [o["name"] for o in console_objects(stdout)] == ["chat gpt-4o-mini"]
    assert [s["name"] for s in rx.spans()] == ["chat gpt-4o-mini"]


# -- (d): idempotent -------------------------------------------------------------------------------


def test_instrument_twice_is_idempotent(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_METRICS_EXPORTER="none"))
    out, _, stderr = run_child(
        """
        import wrapt
        from openai.resources.chat.completions import Completions
        log_to_stderr(logging.DEBUG)
        original = Completions.__dict__["create"]
        otel_tokenkpi.instrument()
        tp_first = trace.get_tracer_provider()
        otel_tokenkpi.instrument()
        wait_loaded()
        chat()
        chat()
        flush()
        tp = trace.get_tracer_provider()
        patched = Completions.__dict__["create"]
        emit({
            "same_provider": tp is tp_first and tk_setup._created_tracer_provider is tp,
            "instrumentors": sorted(type(i).__name__ for i in tk_setup._instrumentors),
            "processors": [type(p).__name__ for p in tk_setup._span_processors(tp)],
            "patched_once": isinstance(patched, wrapt.FunctionWrapper) and patched.__wrapped__ is original,
        })
        """,
        env,
        tmp_path,
    )
    assert out == {
        "same_provider": True,
        "instrumentors": ALL_OURS,
        "processors": ["TokenKPISpanProcessor"],
        "patched_once": True,
    }
    spans = rx.spans()
    assert [s["name"] for s in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert [s["attributes"]["gen_ai.response.id"] for s in spans] == ["chatcmpl-1", "chatcmpl-2"]
    assert len({s["span_id"] for s in spans}) == 2
    assert len({s["trace_id"] for s in spans}) == 2  # two root calls, no span nested in another
    assert "Overriding of current TracerProvider is not allowed" not in stderr
    assert "Attempting to instrument while already instrumented" not in stderr


# -- (e): uninstrument ------------------------------------------------------------------------------

_PATCHED_METHODS = """
import openai.resources.chat.completions as _chat
import openai.resources.responses as _responses
import openai.resources.embeddings as _embeddings
import openai._base_client as _base
TARGETS = [
    (_base.SyncAPIClient, "request"), (_base.SyncAPIClient, "_sleep_for_retry"),
    (_base.AsyncAPIClient, "request"), (_base.AsyncAPIClient, "_sleep_for_retry"),
    (_chat.Completions, "create"), (_chat.Completions, "parse"), (_chat.Completions, "stream"),
    (_chat.AsyncCompletions, "create"), (_chat.AsyncCompletions, "parse"), (_chat.AsyncCompletions, "stream"),
    (_responses.Responses, "create"), (_responses.Responses, "parse"), (_responses.Responses, "stream"),
    (_responses.AsyncResponses, "create"), (_responses.AsyncResponses, "parse"),
    (_responses.AsyncResponses, "stream"),
    (_embeddings.Embeddings, "create"), (_embeddings.AsyncEmbeddings, "create"),
]
def methods():
    return [cls.__dict__[name] for cls, name in TARGETS]
"""


def test_uninstrument_restores_methods_and_instrument_works_again(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_METRICS_EXPORTER="none"))
    out, _, _ = run_child(
        _PATCHED_METHODS
        + textwrap.dedent(
            """
        import wrapt
        from openai.resources.chat.completions import Completions
        originals = methods()
        otel_tokenkpi.instrument()
        wait_loaded()
        wrapped_while_on = sum(isinstance(m, wrapt.FunctionWrapper) for m in methods())
        chat("gpt-4o-mini")                                      # span
        raw = client.chat.completions.with_raw_response          # binds the wrapped create now
        otel_tokenkpi.uninstrument()
        restored = [a is b for a, b in zip(methods(), originals)]
        proxies_left = sum(isinstance(m, wrapt.FunctionWrapper) for m in methods())
        create = Completions.create
        chat("gpt-4o")                                           # no span
        raw_reply = raw.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]).parse()
        otel_tokenkpi.instrument()
        wait_loaded()
        chat("gpt-4.1-mini")                                     # span again
        flush()
        emit({
            "targets": len(originals),
            "wrapped_while_on": wrapped_while_on,
            "restored": restored,
            "proxies_left": proxies_left,
            # openai's own @required_args (functools.wraps) sets __wrapped__ on the plain function:
            # after uninstrument() it must be that one, not ours.
            "wrapped_attr_is_openais": create.__wrapped__ is originals[4].__wrapped__,
            "raw_content": raw_reply.choices[0].message.content,
            "instrumentors": len(tk_setup._instrumentors),
        })
        """
        ),
        env,
        tmp_path,
    )
    n = out["targets"]
    assert n == 18
    assert out == {
        "targets": 18,
        "wrapped_while_on": 18,
        "restored": [True] * n,
        "proxies_left": 0,
        "wrapped_attr_is_openais": True,
        "raw_content": "ok",
        "instrumentors": len(ALL_OURS),
    }
    assert len(fake.requests) == 4
    # gpt-4o (plain call) and gpt-4.1 (a with_raw_response bound before uninstrument) made no span
    assert [s["name"] for s in rx.spans()] == ["chat gpt-4o-mini", "chat gpt-4.1-mini"]


# -- (f): a TracerProvider the user configured -----------------------------------------------------


@pytest.mark.parametrize("user_wraps", [False, True], ids=["plain", "already-wrapped"])
def test_user_tracer_provider_is_kept(user_wraps: bool, rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx), USER_WRAPS="1" if user_wraps else "")
    out, _, stderr = run_child(
        """
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from otel_tokenkpi import TokenKPISpanProcessor
        log_to_stderr(logging.INFO)
        exporter = InMemorySpanExporter()
        user_tp = TracerProvider()
        processor = SimpleSpanProcessor(exporter)
        wrap = bool(os.environ["USER_WRAPS"])
        user_tp.add_span_processor(TokenKPISpanProcessor(processor) if wrap else processor)
        trace.set_tracer_provider(user_tp)
        before = tk_setup._span_processors(user_tp)
        otel_tokenkpi.instrument()
        otel_tokenkpi.instrument()
        wait_loaded()
        chat()
        emit({
            "kept": trace.get_tracer_provider() is user_tp,
            "processors_unchanged": tk_setup._span_processors(user_tp) == before,
            "created": tk_setup._created_tracer_provider is not None,
            "meter_provider": type(metrics.get_meter_provider()).__name__,
            "spans": [
                {"name": s.name, "window": s.attributes.get("tokenkpi.context.window"),
                 "cost": s.attributes.get("tokenkpi.cost.usd")}
                for s in exporter.get_finished_spans()
            ],
        })
        """,
        env,
        tmp_path,
    )
    assert out["kept"] is True
    assert out["processors_unchanged"] is True
    assert out["created"] is False
    assert out["meter_provider"] == "_ProxyMeterProvider"  # no SDK of ours was set up
    assert out["spans"] == [
        {"name": "chat gpt-4o-mini", "window": CONTEXT_WINDOW, "cost": pytest.approx(GPT_4O_MINI_COST)}
    ]
    assert rx.requests() == []  # nothing of ours exported anywhere
    info = log_lines(stderr, "otel_tokenkpi", "INFO")
    if user_wraps:
        assert info == []
    else:
        assert len(info) == 1, stderr
        assert "TokenKPISpanProcessor(BatchSpanProcessor(exporter))" in info[0]
        assert "add_span_processor" in info[0]


def test_explicit_tracer_provider_option_sets_no_global(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx))
    out, _, stderr = run_child(
        """
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        log_to_stderr(logging.INFO)
        exporter = InMemorySpanExporter()
        mine = TracerProvider()
        mine.add_span_processor(SimpleSpanProcessor(exporter))
        otel_tokenkpi.instrument(tracer_provider=mine)
        wait_loaded()
        chat()
        emit({
            "global": type(trace.get_tracer_provider()).__name__,
            "spans": [s.name for s in exporter.get_finished_spans()],
        })
        """,
        env,
        tmp_path,
    )
    assert out == {"global": "ProxyTracerProvider", "spans": ["chat gpt-4o-mini"]}
    assert rx.requests("traces") == []
    assert log_lines(stderr, "otel_tokenkpi", "INFO") == []


def test_user_non_sdk_tracer_provider_is_left_alone(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    """Any provider the user set counts as configured, not only an SDK TracerProvider: no second
    pipeline, no refused ``set_tracer_provider`` ("Overriding of current TracerProvider...")."""
    env = child_env(fake, **otlp_env(rx, OTEL_METRICS_EXPORTER="none"))
    out, _, stderr = run_child(
        """
        log_to_stderr(logging.INFO)
        user_tp = trace.NoOpTracerProvider()
        trace.set_tracer_provider(user_tp)
        otel_tokenkpi.instrument()
        r = chat()
        emit({
            "kept": trace.get_tracer_provider() is user_tp,
            "created": tk_setup._created_tracer_provider is not None,
            "content": r.choices[0].message.content,
        })
        """,
        env,
        tmp_path,
    )
    assert out == {"kept": True, "created": False, "content": "ok"}
    assert log_lines(stderr, "opentelemetry.trace", "WARNING") == []


# -- (g): OTEL_PYTHON_DISABLED_INSTRUMENTATIONS -----------------------------------------------------


@pytest.mark.parametrize(
    ("disabled", "spans"),
    [
        ("tokenkpi_openai", 0),
        ("flask, tokenkpi_openai ", 0),
        ("openai", 1),  # the official OpenAI instrumentation's entry-point name is not ours
    ],
)
def test_disabled_instrumentations(disabled: str, spans: int, rx: Rx, fake: Fake, tmp_path: Path) -> None:
    """Only the named instrumentor is skipped; the other libraries' ones still run."""
    env = child_env(
        fake,
        **otlp_env(rx, OTEL_METRICS_EXPORTER="none", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled),
    )
    out, _, _ = run_child(
        """
        otel_tokenkpi.instrument()
        wait_loaded()
        r = chat()
        trace.get_tracer("user").start_span("marker").end()   # proves the export pipeline works
        flush()
        emit({"content": r.choices[0].message.content, "instrumentors": len(tk_setup._instrumentors)})
        """,
        env,
        tmp_path,
    )
    assert out == {"content": "ok", "instrumentors": len(ALL_OURS) - 1 + spans}
    expected = ["chat gpt-4o-mini"] * spans + ["marker"]
    assert [s["name"] for s in rx.spans()] == expected


# -- (h): OTEL_SDK_DISABLED -------------------------------------------------------------------------


def test_sdk_disabled_creates_no_provider(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_SDK_DISABLED="true"))
    out, _, stderr = run_child(
        """
        otel_tokenkpi.instrument()
        wait_loaded()
        r = chat()
        s = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True},
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
        flush()
        emit({
            "content": r.choices[0].message.content,
            "input_tokens": r.usage.prompt_tokens,
            "streamed": streamed,
            "tracer_provider": type(trace.get_tracer_provider()).__name__,
            "meter_provider": type(metrics.get_meter_provider()).__name__,
            "created": tk_setup._created_tracer_provider is not None,
            "span_context_valid": trace.get_tracer("x").start_span("y").get_span_context().is_valid,
        })
        """,
        env,
        tmp_path,
    )
    assert out == {
        "content": "ok",
        "input_tokens": 10,
        "streamed": "ok",
        "tracer_provider": "ProxyTracerProvider",
        "meter_provider": "_ProxyMeterProvider",
        "created": False,
        "span_context_valid": False,
    }
    assert len(fake.requests) == 2
    assert rx.requests() == []
    assert "Traceback" not in stderr


# -- (i): options -----------------------------------------------------------------------------------


def test_option_validation_raises_before_any_side_effect(fake: Fake, tmp_path: Path) -> None:
    out, _, _ = run_child(
        """
        errors = []
        for kwargs in ({"bogus": 1}, {"model_aliases": "x"}, {"model_aliases": {"a": 1}},
                       {"model_aliases": {"gpt-4o": "x"}, "zzz": 2}):
            try:
                otel_tokenkpi.instrument(**kwargs)
            except TypeError as exc:
                errors.append(str(exc))
            else:
                errors.append(None)
        emit({
            "errors": errors,
            "instrumentors": len(tk_setup._instrumentors),
            "tracer_provider": type(trace.get_tracer_provider()).__name__,
        })
        """,
        child_env(fake),
        tmp_path,
    )
    bogus, aliases_str, aliases_value, mixed = out["errors"]
    assert bogus is not None and "bogus" in bogus
    assert aliases_str is not None and "model_aliases" in aliases_str
    assert aliases_value is not None and "model_aliases" in aliases_value
    assert mixed is not None and "zzz" in mixed
    assert out["instrumentors"] == 0
    assert out["tracer_provider"] == "ProxyTracerProvider"


def test_model_aliases_price_a_deployment_name(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_METRICS_EXPORTER="none"))
    run_child(
        """
        otel_tokenkpi.instrument(model_aliases={"My-Deploy": "gpt-4o"})
        wait_loaded()
        chat("my-deploy")
        chat("other-deploy")
        flush()
        emit({})
        """,
        env,
        tmp_path,
    )
    spans = {s["name"]: s["attributes"] for s in rx.spans()}
    assert set(spans) == {"chat my-deploy", "chat other-deploy"}
    aliased = spans["chat my-deploy"]
    assert aliased["gen_ai.response.model"] == "my-deploy"
    assert aliased["tokenkpi.context.window"] == CONTEXT_WINDOW
    assert aliased["tokenkpi.cost.usd"] == pytest.approx(GPT_4O_COST, rel=1e-12)  # gpt-4o's, not -mini's
    # Counted and judged as gpt-4o too: its tokenizer (exact, not the estimate) and its prompt-cache rule.
    assert "tokenkpi.tokens.estimated" not in aliased
    assert aliased["tokenkpi.context.new_tokens"] == 1  # "hi" in o200k_base
    assert aliased["tokenkpi.waste.uncached_resent_tokens"] == 0
    unknown = spans["chat other-deploy"]
    assert "tokenkpi.context.window" not in unknown
    assert "tokenkpi.cost.usd" not in unknown
    assert unknown["gen_ai.usage.input_tokens"] == 10
    assert unknown["tokenkpi.tokens.estimated"] is True
    assert "tokenkpi.waste.uncached_resent_tokens" not in unknown


def test_inject_stream_usage_option_reaches_the_adapter(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    env = child_env(fake, **otlp_env(rx, OTEL_METRICS_EXPORTER="none"))
    out, _, _ = run_child(
        """
        def stream(model):
            s = chat(model, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in s if c.choices)

        otel_tokenkpi.instrument()
        wait_loaded()
        plain = stream("gpt-4o-mini")
        otel_tokenkpi.uninstrument()
        otel_tokenkpi.instrument(inject_stream_usage=True)
        injected = stream("gpt-4o")
        flush()
        emit({"plain": plain, "injected": injected})
        """,
        env,
        tmp_path,
    )
    assert out == {"plain": "ok", "injected": "ok"}
    assert [r.body and r.body.get("stream_options") for r in fake.requests] == [None, {"include_usage": True}]
    spans = {s["name"]: s["attributes"] for s in rx.spans()}
    assert set(spans) == {"chat gpt-4o-mini", "chat gpt-4o"}
    estimated = spans["chat gpt-4o-mini"]  # no usage in the stream: counted locally, flagged
    assert estimated["tokenkpi.tokens.estimated"] is True
    assert estimated["gen_ai.usage.output_tokens"] == 1  # "ok"
    exact = spans["chat gpt-4o"]
    assert "tokenkpi.tokens.estimated" not in exact
    assert exact["gen_ai.usage.input_tokens"] == 10
    assert exact["gen_ai.usage.output_tokens"] == 5
    assert exact["tokenkpi.cost.usd"] == pytest.approx(GPT_4O_COST, rel=1e-12)


# -- (j): adapters only from THIS distribution's entry points --------------------------------------

_FOREIGN_MODULE = """
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

class ForeignInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ()

    def _instrument(self, **kwargs):
        import os
        os.environ["FOREIGN_INSTRUMENTED"] = "1"

    def _uninstrument(self, **kwargs):
        pass
"""


def _install_dist(site: Path, name: str, entry_points: str, metadata_name: str | None) -> None:
    """A real (tiny) installed distribution: a dist-info directory on sys.path."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    header = f"Name: {metadata_name}\n" if metadata_name is not None else ""
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\n{header}Version: 1.0\n")
    (info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{entry_points}\n")


_ENTRY_POINT_PROBE = """
import importlib.metadata as md
group = [(ep.name, ep.dist.metadata["Name"]) for ep in md.entry_points(group="opentelemetry_instrumentor")]
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
otel_tokenkpi.instrument()
emit({
    "group": sorted(group, key=str),
    "instrumentors": sorted(type(i).__name__ for i in tk_setup._instrumentors),
    "ours": all(type(i).__module__.startswith("otel_tokenkpi.instrumentors.") for i in tk_setup._instrumentors),
    "foreign_loaded": "foreign_mod" in sys.modules,
    "foreign_instrumented": os.environ.get("FOREIGN_INSTRUMENTED"),
})
"""


def test_only_this_distributions_entry_points(fake: Fake, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "foreign_mod.py").write_text(_FOREIGN_MODULE)
    _install_dist(site, "foreign-pkg", "foreign = foreign_mod:ForeignInstrumentor", "foreign-pkg")
    # Same entry-point name as ours, other distribution: still not ours.
    _install_dist(site, "impostor", "tokenkpi_openai = foreign_mod:ForeignInstrumentor", "impostor")
    env = child_env(fake, PYTHONPATH=str(site), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    out, _, _ = run_child(_ENTRY_POINT_PROBE, env, tmp_path)
    assert out == {
        "group": [
            ["foreign", "foreign-pkg"],
            ["tokenkpi_anthropic", "otel-tokenkpi"],
            ["tokenkpi_bedrock", "otel-tokenkpi"],
            ["tokenkpi_cohere", "otel-tokenkpi"],
            ["tokenkpi_google_genai", "otel-tokenkpi"],
            ["tokenkpi_groq", "otel-tokenkpi"],
            ["tokenkpi_litellm", "otel-tokenkpi"],
            ["tokenkpi_mistral", "otel-tokenkpi"],
            ["tokenkpi_ollama", "otel-tokenkpi"],
            ["tokenkpi_openai", "impostor"],
            ["tokenkpi_openai", "otel-tokenkpi"],
        ],
        "instrumentors": ALL_OURS,
        "ours": True,
        "foreign_loaded": False,
        "foreign_instrumented": None,
    }


def test_foreign_distribution_without_name_does_not_break_instrument(fake: Fake, tmp_path: Path) -> None:
    """A broken foreign dist-info (METADATA without Name) in the entry-point group must not make
    ``instrument()`` raise into the user's app."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "foreign_mod.py").write_text(_FOREIGN_MODULE)
    _install_dist(site, "broken", "broken = foreign_mod:ForeignInstrumentor", None)
    env = child_env(fake, PYTHONPATH=str(site), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    out, _, _ = run_child(_ENTRY_POINT_PROBE, env, tmp_path)
    assert out["instrumentors"] == ALL_OURS
    assert out["foreign_loaded"] is False
