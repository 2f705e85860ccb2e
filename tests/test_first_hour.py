"""The first hour of a new user, as they meet it: the quickstart, the demo and the command, run as subprocesses
with nothing listening on the OTLP ports (or a closed port named), and what they print.

Every run gets an environment without any OTEL_* / OPENAI_* setting unless the test sets one. "No retry log"
is asserted on stderr as a whole: the SDK's exporters would print "Transient error ... retrying" there, and
a run that never attempted an export (console only) prints nothing at all.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver

from otel_tokenkpi.version import __version__

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("otel-tokenkpi")


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env.update(settings)
    return env


def run(argv: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=clean_env(**settings), capture_output=True, text=True, timeout=120, cwd=REPO)


def python(code: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-c", textwrap.dedent(code)], **settings)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


def nothing_answers(port: int) -> str:
    return (
        f"otel-tokenkpi: nothing answers at the OTLP endpoint 127.0.0.1:{port} (connection refused); telemetry for "
        "it is dropped until it does. Start a collector there or set OTEL_EXPORTER_OTLP_ENDPOINT "
        "(OTEL_TRACES_EXPORTER=none / OTEL_METRICS_EXPORTER=none: no export)"
    )


# -- item 1: console mode and an endpoint that does not answer ------------------------------------------


def test_the_quickstart_prints_its_span_and_nothing_else():
    done = run([sys.executable, "examples/quickstart.py"])
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no OTLP export was attempted: no retry log, no warning
    span = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert span["name"] == "chat gpt-4o-mini"
    assert span["attributes"]["gen_ai.usage.input_tokens"] == 10
    assert done.stdout.rstrip().endswith("\nok")


PIPELINE = """
    import json, os, otel_tokenkpi
    from opentelemetry import metrics, trace
    otel_tokenkpi.instrument(console={console})
    chain = [p.downstream for p in trace.get_tracer_provider()._active_span_processor._span_processors]
    exporters = [type(getattr(p, "span_exporter", None) or p._batch_processor._exporter).__name__ for p in chain]
    readers = [type(r._exporter).__name__ for r in metrics.get_meter_provider()._metric_readers]
    print(json.dumps({{"spans": exporters, "metrics": readers}}), flush=True)
    os._exit(0)  # no exit-time export to the endpoints named here
"""


@pytest.mark.parametrize(
    ("console", "settings", "spans", "metrics"),
    [
        (True, {}, ["ConsoleSpanExporter"], []),  # console only: nothing listens on a laptop's localhost
        (True, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, ["GuardedSpanExporter", "ConsoleSpanExporter"],
         ["GuardedMetricExporter"]),
        (True, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
         ["GuardedSpanExporter", "ConsoleSpanExporter"], []),
        (True, {"OTEL_METRICS_EXPORTER": "console"}, ["ConsoleSpanExporter"], ["ConsoleMetricExporter"]),
        (True, {"OTEL_TRACES_EXPORTER": "otlp"}, ["GuardedSpanExporter", "ConsoleSpanExporter"], []),
        (False, {}, ["GuardedSpanExporter"], ["GuardedMetricExporter"]),  # the spec's default: OTLP
        (False, {"OTEL_TRACES_EXPORTER": "console"}, ["ConsoleSpanExporter"], ["GuardedMetricExporter"]),
    ],
)  # fmt: skip
def test_where_instrument_sends_spans_and_metrics(console, settings, spans, metrics):
    done = python(PIPELINE.format(console=console), **settings)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"spans": spans, "metrics": metrics}


def test_zero_code_console_mode_prints_spans_and_sends_nothing():
    app = "import runpy; runpy.run_path('examples/quickstart.py', run_name='__main__')"
    instrument = str(Path(sys.executable).with_name("opentelemetry-instrument"))
    done = run([instrument, sys.executable, "-c", app], OTEL_INSTRUMENTATION_TOKENKPI_CONSOLE="true")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.count('"name": "chat gpt-4o-mini"') == 1


CALL_AND_EXIT = """
    import openai, otel_tokenkpi
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer
    otel_tokenkpi.instrument()
    server = FakeOpenAIServer().start()
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    print(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
          .choices[0].message.content)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("traces", ["console", "otlp"])
def test_an_endpoint_that_does_not_answer_is_one_line_and_no_retries(traces, protocol, closed_port):
    done = python(
        CALL_AND_EXIT,
        OTEL_TRACES_EXPORTER=traces,  # metrics stay on the default, OTLP, as the spec says
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port}",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("ok")
    assert done.stderr.splitlines() == [nothing_answers(closed_port)]  # traces and metrics: one line


# -- item 3: `otel-tokenkpi demo --otlp` with nothing listening ---------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_demo_says_when_its_spans_were_not_sent(protocol, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    done = run([str(SCRIPT), "demo", "--otlp", url, "--otlp-protocol", protocol])
    assert done.returncode == 1
    sent_to = url if protocol == "grpc" else url + "/v1/traces"
    assert done.stderr.splitlines() == [
        f"otel-tokenkpi: error: the spans were not sent to {sent_to} (OTLP {protocol}): connection refused"
    ]
    assert "task travel-assistant: 6 model calls" in done.stdout  # the table is still printed
    assert "Spans sent to" not in done.stdout


def test_the_demo_says_where_its_spans_went_when_they_arrived():
    with OtlpReceiver() as receiver:
        done = run([str(SCRIPT), "demo", "--otlp", receiver.http_endpoint])
        assert len(receiver.wait_for_spans(7)) == 7
    assert done.returncode == 0 and done.stderr == ""
    assert f"Spans sent to {receiver.http_endpoint}/v1/traces (OTLP http/protobuf)" in done.stdout


# -- item 2: the demo prints no instrumentor warnings ---------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_demo_prints_no_warnings(provider):
    done = run([str(SCRIPT), "demo", "--provider", provider])
    assert done.returncode == 0
    assert done.stderr == ""


def test_a_missing_provider_sdk_is_one_clear_line():
    done = python(
        """
        import sys
        sys.modules["anthropic"] = None  # as if it were not installed: importing it raises ImportError
        from otel_tokenkpi.cli import main
        sys.exit(main(["demo", "--provider", "anthropic"]))
        """
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("otel-tokenkpi: error: the anthropic demo needs the anthropic SDK (")
    assert line.endswith("pip install 'otel-tokenkpi[anthropic]'")


def test_the_demo_leaves_an_instrumentation_it_did_not_start_alone():
    done = python(
        """
        import sys, otel_tokenkpi
        from otel_tokenkpi.cli import main
        from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
        otel_tokenkpi.instrument()
        code = main(["demo"])
        print("still instrumented:", OpenAIInstrumentor().is_instrumented_by_opentelemetry)
        sys.exit(code)
        """,
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "otel-tokenkpi: error: the openai SDK is already instrumented in this process (otel_tokenkpi.instrument() "
        "or opentelemetry-instrument); run the demo in a process of its own"
    ]
    assert "still instrumented: True" in done.stdout


# -- item 5: the command's polish ---------------------------------------------------------------------------


def test_version():
    done = run([str(SCRIPT), "--version"])
    assert (done.returncode, done.stdout) == (0, f"otel-tokenkpi {__version__}\n")


@pytest.mark.parametrize(
    ("argv", "usage", "unrecognized"),
    [
        (["demo", "--provder", "openai"], "usage: otel-tokenkpi demo [-h] [--provider {openai,anthropic}]",
         "--provder openai"),
        (["report", "spans.jsonl", "--team"], "usage: otel-tokenkpi report [-h]", "--team"),
    ],
)  # fmt: skip
def test_a_bad_flag_shows_the_subcommands_usage(argv, usage, unrecognized):
    done = run([str(SCRIPT), *argv])
    assert done.returncode == 2
    assert done.stderr.startswith(usage)
    assert done.stderr.splitlines()[-1] == f"otel-tokenkpi {argv[0]}: error: unrecognized arguments: {unrecognized}"


def test_counts_of_one_are_singular(tmp_path):
    path = tmp_path / "spans.jsonl"
    path.write_text('{"resourceSpans": []}\nnot json\n')
    done = run([str(SCRIPT), "report", str(path)])
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "otel-tokenkpi: 1 malformed line skipped; the report above is from the other 1 line"
    )


UNPRICED = """
    import openai, otel_tokenkpi
    from otel_tokenkpi import prices
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    otel_tokenkpi.instrument(tracer_provider=provider, {options})
    assert prices.wait_until_loaded(30)
    server = FakeOpenAIServer().start()
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="prod-chat", messages=[{{"role": "user", "content": "hi"}}])
    print([s.attributes.get("tokenkpi.cost.usd") for s in spans.get_finished_spans()])
"""


def test_an_unpriced_model_is_named_once_with_the_alias_fix():
    done = python(UNPRICED.format(options=""), OTEL_METRICS_EXPORTER="none")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[None, None, None]"
    assert done.stderr.splitlines() == [
        "otel-tokenkpi: no price known for model 'prod-chat' (openai): its spans get no tokenkpi.cost.usd or context "
        "window. If it is a deployment name or an alias, map it to a priced model: "
        "instrument(model_aliases={'prod-chat': 'gpt-4o'}) or "
        "OTEL_INSTRUMENTATION_TOKENKPI_MODEL_ALIASES=prod-chat=gpt-4o"
    ]
    aliased = python(
        UNPRICED.format(options="model_aliases={'prod-chat': 'gpt-4o-mini'}"), OTEL_METRICS_EXPORTER="none"
    )
    assert aliased.returncode == 0, aliased.stderr
    assert aliased.stderr == ""
    assert aliased.stdout.splitlines()[-1] == str([4.5e-06] * 3)  # 10 in, 5 out at gpt-4o-mini's rates
