"""Zero-code: ``opentelemetry-instrument python app.py`` with otel-tokenkpi installed.

Each test runs a small agent (APP below: two chat calls under one root span, the second answering
with the same tool call as the first, so duplicate-tool-call waste is planted) under the real
``opentelemetry-instrument`` in a fresh interpreter. Its system prompt has a real agent's size, so the
re-sent prefix of the second call is one gpt-4o's prompt cache could have served (uncached re-sent
waste), and the fake bills what OpenAI would (content plus message framing). The app loads nothing
itself: exact counts and prices from its first call show that the zero-code setup waited for them.
The child gets the standard ``OTEL_*`` environment pointing at a real :class:`OtlpReceiver` started
here, and the real openai SDK talks to the real fake server. The receiver is read only after the
child exited (its exit handlers flush and shut down the SDK), so "nothing arrived" is a real negative.

The opentelemetry-distro cases need ``opentelemetry-distro`` importable by the child only: the test
env must keep ours the only distro installed. ``tests/run.sh`` installs it into a side directory
and exports that directory as ``TOKENKPI_TEST_OTEL_DISTRO_DIR``; the child gets it on PYTHONPATH.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tiktoken

try:  # repo root on sys.path (python -m pytest)
    from tests.otlp_receiver import OtlpReceiver
except ImportError:  # plain `pytest`: conftest puts tests/ on sys.path
    from otlp_receiver import OtlpReceiver  # type: ignore[no-redef]

from _planted_waste import SYSTEM  # an agent's system prompt of real size: 2,000 o200k tokens

from otel_tokenkpi import cache_rules, tokens
from otel_tokenkpi.instrumentors._shapes import compact_json
from otel_tokenkpi.invocation import ToolDefinition
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall
from otel_tokenkpi.tool_tokens import count_request_tools

pytestmark = pytest.mark.slow

Rx, Fake = OtlpReceiver, FakeOpenAIServer  # short names for test signatures
DISTRO_DIR_ENV = "TOKENKPI_TEST_OTEL_DISTRO_DIR"
MARK = "RESULT "
INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")
HEADERS = "x-honeycomb-team=key123,x-honeycomb-dataset=ds1"

ASK = "What's the weather in Paris?"
ARGS = '{"city": "Paris"}'
RESULT = '{"temp": 21, "sky": "clear"}'
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
OUT = 20  # scripted completion tokens of each call
O200K = tiktoken.get_encoding("o200k_base")  # gpt-4o's encoding


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


@dataclass(frozen=True)
class Figures:
    """What APP's two gpt-4o calls must show, from the library's own rules (each checked on its own
    against providers' documents and billed requests: tests/test_tool_tokens.py, tests/test_cache_rules.py)."""

    tool_defs: int  # WEATHER as OpenAI bills it: its rendered function in the ``namespace functions`` block
    new_1: int  # call 1: all its content is new
    resent_2: int  # call 2: everything up to its assistant turn
    uncached_2: int  # of that, what gpt-4o's prompt cache could have served (nothing was served)
    duplicate: int  # the repeated tool call in the 2nd response
    p1: int  # billed input of call 1 and call 2: content plus OpenAI's message framing
    p2: int

    @property
    def waste_2(self) -> int:
        return self.duplicate + self.uncached_2


def cost(billed_input: int) -> float:
    """genai-prices (bundled): gpt-4o $2.50 in / $10.00 out per Mtok."""
    return (billed_input * 2.5 + OUT * 10.0) / 1_000_000


@functools.cache
def figures() -> Figures:
    tokens.start_loading()
    assert tokens.wait_until_loaded(30)  # exact counts here, as in the child (instrument() waits for its data)
    tool = ToolDefinition(WEATHER["name"], WEATHER["description"], compact_json(WEATHER["parameters"]))
    counted = count_request_tools([tool], "openai", "gpt-4o", system_text=SYSTEM)
    assert counted.exact
    new_1 = n(SYSTEM) + n(ASK) + counted.total
    resent_2 = new_1 + n("get_weather") + n(ARGS)
    rule = cache_rules.rule_for("openai", "gpt-4o")
    assert rule is not None and resent_2 >= rule.min_tokens  # SYSTEM makes the re-sent prefix cacheable
    # Billed input: content plus 3 tokens per message and 3 for the reply (OpenAI's documented framing;
    # the tools' own framing is in counted.total). Call 1 sends 2 messages, call 2 four.
    p1, p2 = new_1 + 3 * 2 + 3, resent_2 + n(RESULT) + 3 * 4 + 3
    duplicate = n("get_weather") + n(ARGS)
    return Figures(counted.total, new_1, resent_2, rule.cacheable(resent_2), duplicate, p1, p2)


APP = textwrap.dedent(
    f"""
    import json, os
    import openai
    import otel_tokenkpi
    from opentelemetry import trace

    # No explicit loading: the zero-code setup waits for the tokenizer data and prices itself.
    client = openai.OpenAI(api_key="sk-test", base_url=os.environ["FAKE_URL"] + "/v1", max_retries=0)
    model = os.environ.get("APP_MODEL", "gpt-4o")
    tools = [{{"type": "function", "function": {WEATHER!r}}}]
    messages = [{{"role": "system", "content": {SYSTEM!r}}}, {{"role": "user", "content": {ASK!r}}}]
    with trace.get_tracer("app").start_as_current_span("agent"), otel_tokenkpi.attributes(team="search"):
        first = client.chat.completions.create(model=model, messages=messages, tools=tools)
        call = first.choices[0].message.tool_calls[0]
        messages += [first.choices[0].message, {{"role": "tool", "tool_call_id": call.id, "content": {RESULT!r}}}]
        second = client.chat.completions.create(model=model, messages=messages, tools=tools)
        streamed = ""
        if os.environ.get("APP_STREAM"):
            chunks = client.chat.completions.create(model=model, messages=messages[1:2], stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    from otel_tokenkpi import sdk_setup as setup, tokens
    from otel_tokenkpi.engine import ENGINE
    provider = trace.get_tracer_provider()
    print("{MARK}" + json.dumps({{
        "tool_calls": [m.choices[0].message.tool_calls[0].function.name for m in (first, second)],
        "streamed": streamed,
        "provider": type(provider).__name__,
        "processors": [type(p).__name__ for p in setup._span_processors(provider)],
        "exempt_tools": sorted(ENGINE.exempt_tools),
        "state": [ENGINE.store.budget_bytes, ENGINE.store.ttl_s],
        "download": tokens._download_allowed(),
    }}), flush=True)
    """
)


@pytest.fixture
def rx() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def script_conversation(fake: FakeOpenAIServer) -> None:
    """Call 1 asks for get_weather(Paris); call 2, with that call and its result in the history,
    asks for exactly the same again: a duplicate tool call. Each bills what OpenAI would bill."""
    f = figures()
    fake.enqueue(
        Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS, "c1")], prompt_tokens=f.p1, completion_tokens=OUT),
        Reply(text=None, tool_calls=[ToolCall("get_weather", ARGS, "c2")], prompt_tokens=f.p2, completion_tokens=OUT),
    )


def child_env(fake: FakeOpenAIServer, rx: OtlpReceiver | None, protocol: str = "grpc", **settings: str) -> dict:
    """The parent's environment without any OTEL_* / OPENAI_* setting, OTLP to ``rx``, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env.pop("PYTHONPATH", None)
    env["TIKTOKEN_CACHE_DIR"] = os.environ["TIKTOKEN_CACHE_DIR"]
    env["FAKE_URL"] = fake.url
    env["OTEL_SERVICE_NAME"] = "zero-code-app"
    if rx is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = rx.http_endpoint if protocol == "http/protobuf" else rx.grpc_endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    env.update(settings)
    return env


def run_app(env: dict[str, str], cwd: Path) -> tuple[dict[str, Any], str, str]:
    """``opentelemetry-instrument python app.py``; returns (the app's RESULT json, stdout, stderr)."""
    app = cwd / "app.py"
    app.write_text(APP)
    proc = subprocess.run(
        [INSTRUMENT, sys.executable, str(app)], env=env, cwd=cwd, capture_output=True, text=True, timeout=90
    )
    assert proc.returncode == 0, f"app failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    results = [line[len(MARK) :] for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert len(results) == 1, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(results[0]), proc.stdout, proc.stderr


def chat_spans(rx: OtlpReceiver) -> list[dict[str, Any]]:
    return [s for s in rx.spans() if s["name"].startswith("chat ")]


def root_span(rx: OtlpReceiver) -> dict[str, Any]:
    (root,) = [s for s in rx.spans() if s["name"] == "agent"]
    return root


def waste_metric(rx: OtlpReceiver) -> dict[str, float]:
    """tokenkpi.waste.tokens by kind (the last cumulative point of each)."""
    return {p["attributes"]["tokenkpi.waste.kind"]: p["value"] for p in rx.metrics().get("tokenkpi.waste.tokens", [])}


def waste_by_kind() -> dict[str, int]:
    """The tokenkpi.waste.tokens metric APP must produce: the duplicate and the cacheable re-sent prefix."""
    f = figures()
    return {"duplicate_tool_call": f.duplicate, "uncached_resent": f.uncached_2}


def assert_waste_on_calls(rx: OtlpReceiver) -> None:
    f = figures()
    first, second = (s["attributes"] for s in chat_spans(rx))
    for attrs, billed in ((first, f.p1), (second, f.p2)):
        assert "tokenkpi.tokens.estimated" not in attrs  # exact from the first call: instrument() waited
        assert attrs["gen_ai.usage.input_tokens"] == billed
        assert attrs["tokenkpi.cost.usd"] == pytest.approx(cost(billed), rel=1e-12)  # priced from the first call
        assert attrs["tokenkpi.context.tool_definitions_tokens"] == f.tool_defs
        assert attrs["tokenkpi.context.system_tokens"] == n(SYSTEM)
        # The breakdown reconciles with the bill; the rest is the message framing.
        parts = (attrs[f"tokenkpi.context.{part}_tokens"] for part in ("resent", "new", "unattributed"))
        assert sum(parts) == billed
    assert first["tokenkpi.tool_calls.count"] == 1
    assert first["tokenkpi.tool_calls.duplicate_count"] == 0
    assert (first["tokenkpi.context.resent_tokens"], first["tokenkpi.context.new_tokens"]) == (0, f.new_1)
    assert first["tokenkpi.context.unattributed_tokens"] == 3 * 2 + 3
    assert first["tokenkpi.waste.uncached_resent_tokens"] == 0
    assert first["tokenkpi.waste.tokens"] == 0
    assert second["tokenkpi.tool_calls.duplicate_count"] == 1
    assert second["tokenkpi.waste.duplicate_tool_call_tokens"] == f.duplicate
    assert (second["tokenkpi.context.resent_tokens"], second["tokenkpi.context.new_tokens"]) == (f.resent_2, n(RESULT))
    assert second["tokenkpi.context.unattributed_tokens"] == 3 * 4 + 3
    assert second["tokenkpi.waste.uncached_resent_tokens"] == f.uncached_2 < f.resent_2  # 128-token cache steps
    assert second["tokenkpi.waste.tokens"] == f.waste_2
    assert second["tokenkpi.waste.ratio"] == pytest.approx(f.waste_2 / (f.p2 + OUT), rel=1e-12)
    assert second["team"] == "search"


def assert_rollups_on_root(rx: OtlpReceiver) -> None:
    f = figures()
    root = root_span(rx)["attributes"]
    assert root["tokenkpi.trace.llm_calls"] == 2
    assert root["tokenkpi.trace.input_tokens"] == f.p1 + f.p2
    assert root["tokenkpi.trace.output_tokens"] == 2 * OUT
    assert root["tokenkpi.trace.tool_calls"] == 2
    assert root["tokenkpi.trace.duplicate_tool_calls"] == 1
    assert root["tokenkpi.trace.max_tool_fanout"] == 1
    assert root["tokenkpi.trace.waste.tokens"] == f.waste_2


# -- ours is the only distro: picked with no setting ---------------------------------------------------


def test_ours_is_the_only_distro_in_the_test_env() -> None:
    """Precondition of every test below that sets no OTEL_PYTHON_DISTRO / _CONFIGURATOR."""
    assert importlib.util.find_spec("opentelemetry.distro") is None, "opentelemetry-distro must not be installed"


@pytest.mark.parametrize(
    ("protocol", "compression"), [("grpc", "gzip"), ("http/protobuf", "gzip"), ("http/protobuf", "none")]
)
def test_spans_with_waste_and_rollups_reach_the_backend(
    protocol: str, compression: str, rx: Rx, fake: Fake, tmp_path: Path
) -> None:
    script_conversation(fake)
    env = child_env(
        fake,
        rx,
        protocol,
        OTEL_EXPORTER_OTLP_HEADERS=HEADERS,
        OTEL_EXPORTER_OTLP_COMPRESSION=compression,
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=staging",
    )
    out, _, _ = run_app(env, tmp_path)
    assert out["tool_calls"] == ["get_weather", "get_weather"]
    assert out["provider"] == "TracerProvider"
    assert out["processors"] == ["TokenKPISpanProcessor"]

    assert [s["name"] for s in rx.spans()] == ["chat gpt-4o", "chat gpt-4o", "agent"]
    assert_waste_on_calls(rx)
    assert_rollups_on_root(rx)
    root = root_span(rx)
    assert all(s["parent_span_id"] == root["span_id"] for s in chat_spans(rx))
    assert root["resource"]["service.name"] == "zero-code-app"
    assert root["resource"]["deployment.environment.name"] == "staging"
    assert root["resource"]["telemetry.auto.version"]  # set by opentelemetry-instrument's configurator call

    transport = "http" if protocol == "http/protobuf" else "grpc"
    for signal in ("traces", "metrics"):
        requests = rx.requests(signal)
        assert requests, f"no {signal} export arrived"
        for req in requests:
            assert req.transport == transport
            assert req.headers["x-honeycomb-team"] == "key123"
            assert req.headers["x-honeycomb-dataset"] == "ds1"
            if transport == "http":  # gRPC's compression is transparent to the servicer: it arrived, decoded
                assert req.headers.get("content-encoding") == (compression if compression == "gzip" else None)
    assert waste_metric(rx) == waste_by_kind()
    usage = rx.metrics()["gen_ai.client.token.usage"]
    assert {(p["attributes"]["gen_ai.token.type"], p["sum"]) for p in usage} == {
        ("input", figures().p1 + figures().p2),
        ("output", 2 * OUT),
    }


def test_sampler_always_off_exports_no_spans_but_metrics_count(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    script_conversation(fake)
    out, _, _ = run_app(child_env(fake, rx, OTEL_TRACES_SAMPLER="always_off"), tmp_path)
    assert out["tool_calls"] == ["get_weather", "get_weather"]
    assert rx.spans() == []
    assert waste_metric(rx) == waste_by_kind()


def test_sampler_arg_from_env(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    script_conversation(fake)
    env = child_env(fake, rx, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    run_app(env, tmp_path)
    assert rx.spans() == []  # ratio 0: nothing sampled
    assert waste_metric(rx) == waste_by_kind()


def test_sdk_disabled_exports_nothing_and_the_app_runs(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    script_conversation(fake)
    out, _, _ = run_app(child_env(fake, rx, OTEL_SDK_DISABLED="true"), tmp_path)
    assert out["tool_calls"] == ["get_weather", "get_weather"]
    assert out["provider"] == "ProxyTracerProvider"
    assert len(fake.requests) == 2
    assert rx.requests() == []


@pytest.mark.parametrize(
    ("disabled", "chat_count"),
    [("tokenkpi_openai", 0), ("openai, tokenkpi_anthropic", 2), ("*", 0)],
)
def test_disabled_instrumentations_by_entry_point_name(
    disabled: str, chat_count: int, rx: Rx, fake: Fake, tmp_path: Path
) -> None:
    script_conversation(fake)
    out, _, _ = run_app(child_env(fake, rx, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled), tmp_path)
    assert out["tool_calls"] == ["get_weather", "get_weather"]
    assert len(chat_spans(rx)) == chat_count
    assert [s["name"] for s in rx.spans() if s["name"] == "agent"] == ["agent"]  # the SDK is still set up


# -- OTEL_INSTRUMENTATION_TOKENKPI_* ---------------------------------------------------------------------


def test_exempt_tools_env_makes_the_duplicate_not_count(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    script_conversation(fake)
    env = child_env(fake, rx, OTEL_INSTRUMENTATION_TOKENKPI_EXEMPT_TOOLS="poll_job, get_weather")
    out, _, _ = run_app(env, tmp_path)
    assert out["exempt_tools"] == ["get_weather", "poll_job"]
    second = chat_spans(rx)[1]["attributes"]
    assert second["tokenkpi.tool_calls.count"] == 1
    assert second["tokenkpi.tool_calls.duplicate_count"] == 0
    assert second["tokenkpi.waste.duplicate_tool_call_tokens"] == 0
    assert root_span(rx)["attributes"]["tokenkpi.trace.duplicate_tool_calls"] == 0
    assert "duplicate_tool_call" not in waste_metric(rx)


def test_every_env_option_takes_effect(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    script_conversation(fake)
    fake.enqueue(Reply(text="Sunny.", prompt_tokens=12, completion_tokens=2))
    env = child_env(
        fake,
        rx,
        APP_MODEL="prod-chat",
        APP_STREAM="1",
        OTEL_INSTRUMENTATION_TOKENKPI_MODEL_ALIASES="other=gpt-4o-mini, prod-chat=gpt-4o",
        OTEL_INSTRUMENTATION_TOKENKPI_INJECT_STREAM_USAGE="true",
        OTEL_INSTRUMENTATION_TOKENKPI_ALLOW_TOKENIZER_DOWNLOAD="1",
        OTEL_INSTRUMENTATION_TOKENKPI_CONSOLE="TRUE",
        OTEL_INSTRUMENTATION_TOKENKPI_STATE_BUDGET_BYTES="65536",
        OTEL_INSTRUMENTATION_TOKENKPI_STATE_TTL_S="90.5",
        OTEL_INSTRUMENTATION_TOKENKPI_METRIC_USER_ATTRIBUTES="team",
    )
    out, stdout, _ = run_app(env, tmp_path)
    assert out["streamed"] == "Sunny."
    assert out["state"] == [65536, 90.5]
    assert out["download"] is True
    assert out["processors"] == ["TokenKPISpanProcessor", "TokenKPISpanProcessor"]  # OTLP and console
    # inject_stream_usage: the stream asked for usage, so its span has exact usage, not an estimate
    assert fake.requests[2].body["stream_options"] == {"include_usage": True}
    spans = chat_spans(rx)
    assert [s["name"] for s in spans] == ["chat prod-chat"] * 3
    assert spans[2]["attributes"]["gen_ai.usage.input_tokens"] == 12  # the server's figures, not a local count
    assert spans[2]["attributes"]["gen_ai.usage.output_tokens"] == 2
    # model_aliases: prod-chat is priced and sized as gpt-4o
    assert spans[1]["attributes"]["tokenkpi.cost.usd"] == pytest.approx(cost(figures().p2), rel=1e-12)
    assert spans[1]["attributes"]["tokenkpi.context.window"] == 128000
    # ... and judged as gpt-4o: its cache rule applies (1,024 tokens, then 128-token steps), so the second
    # call's re-sent context has an uncached figure
    assert [s["attributes"].get("tokenkpi.waste.uncached_resent_tokens") for s in spans] == [0, 1920, 0]
    # console: the spans were printed too
    assert stdout.count('"name": "chat prod-chat"') == 3
    # metric_user_attributes: "team" joins the tokenkpi.* metrics
    points = rx.metrics()["tokenkpi.waste.tokens"]
    assert {(p["attributes"]["tokenkpi.waste.kind"], p["attributes"].get("team")) for p in points} == {
        ("duplicate_tool_call", "search"),
        ("uncached_resent", "search"),
    }


def test_bad_env_values_are_logged_once_by_name_and_defaults_used(rx: Rx, fake: Fake, tmp_path: Path) -> None:
    script_conversation(fake)
    env = child_env(
        fake,
        rx,
        OTEL_INSTRUMENTATION_TOKENKPI_STATE_TTL_S="soon",
        OTEL_INSTRUMENTATION_TOKENKPI_STATE_BUDGET_BYTES="-5",
        OTEL_INSTRUMENTATION_TOKENKPI_MODEL_ALIASES="gpt-4o",
        OTEL_INSTRUMENTATION_TOKENKPI_CONSOLE="maybe",
        OTEL_INSTRUMENTATION_TOKENKPI_EXEMPT_TOOLS="",  # empty: unset, not an error
    )
    out, _, stderr = run_app(env, tmp_path)
    assert out["state"] == [4 * 1024 * 1024, 1800.0]  # the defaults
    assert out["processors"] == ["TokenKPISpanProcessor"]  # no console
    assert out["exempt_tools"] == []
    for name in ("STATE_TTL_S", "STATE_BUDGET_BYTES", "MODEL_ALIASES", "CONSOLE"):
        assert stderr.count(f"OTEL_INSTRUMENTATION_TOKENKPI_{name}=") == 1, stderr
    assert "EXEMPT_TOOLS" not in stderr
    assert_waste_on_calls(rx)  # everything else works as usual


# -- beside opentelemetry-distro: only one configurator runs -------------------------------------------


@pytest.fixture
def distro_dir() -> str:
    path = os.environ.get(DISTRO_DIR_ENV)
    if not path:
        pytest.skip(f"{DISTRO_DIR_ENV} is not set: tests/run.sh installs opentelemetry-distro beside the test env")
    return path


@pytest.mark.parametrize(
    "selection",
    [{"OTEL_PYTHON_CONFIGURATOR": "tokenkpi"}, {"OTEL_PYTHON_DISTRO": "tokenkpi"}],
    ids=["configurator", "distro"],
)
def test_selecting_ours_beside_opentelemetry_distro(
    selection: dict[str, str], distro_dir: str, rx: Rx, fake: Fake, tmp_path: Path
) -> None:
    script_conversation(fake)
    out, _, stderr = run_app(child_env(fake, rx, PYTHONPATH=distro_dir, **selection), tmp_path)
    assert "Configuration of configurator not loaded" in stderr  # theirs was installed, and skipped
    assert out["processors"] == ["TokenKPISpanProcessor"]
    assert_waste_on_calls(rx)
    assert_rollups_on_root(rx)


@pytest.mark.parametrize(
    "selection",
    [{"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}, {}],
    ids=["theirs", "unset"],
)
def test_their_configurator_still_gives_per_call_attributes_and_metrics(
    selection: dict[str, str], distro_dir: str, rx: Rx, fake: Fake, tmp_path: Path
) -> None:
    script_conversation(fake)
    out, _, stderr = run_app(child_env(fake, rx, PYTHONPATH=distro_dir, **selection), tmp_path)
    ours_won = "Configuration of configurator not loaded" in stderr
    theirs_won = "Configuration of tokenkpi not loaded" in stderr
    assert ours_won != theirs_won, stderr  # exactly one configurator ran
    if selection:
        assert theirs_won
    assert out["processors"] == (["TokenKPISpanProcessor"] if ours_won else ["BatchSpanProcessor"])
    assert_waste_on_calls(rx)
    assert waste_metric(rx) == waste_by_kind()
    if theirs_won:  # no roll-ups without our processor
        assert not any(key.startswith("tokenkpi.trace.") for key in root_span(rx)["attributes"])
    else:
        assert_rollups_on_root(rx)
