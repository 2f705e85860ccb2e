"""The OTLP endpoint down (closed port) or black-holed (a listening socket that never answers), with the SDK
that ``instrument()`` builds (BatchSpanProcessor + OTLP exporter, gRPC and HTTP):

* every call returns, and no export ever runs on the calling thread (the batch worker does it);
* memory stays bounded: the batch queue is bounded, so after it fills, further calls retain ~nothing;
* ``shutdown()`` of both providers returns (in bounded time: the exporter's timeout) and leaves no
  non-daemon thread, of ours or of the SDK.

Latency is not asserted here: ``benchmarks/exporter_down.py`` measures it against an in-memory exporter.
Each case runs in a fresh interpreter, since ``instrument()`` sets the global providers once per process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Bytes per call over 1,000 calls. A span retained per call would be ~2.4 KB (its attributes). The queue
# (64 spans) plus the batch being exported (16) may hold more or fewer spans at the second snapshot than
# at the first: up to 80 x 2.4 KB, i.e. ~190 bytes per call of noise either way.
MAX_GROWTH_PER_CALL = 400

HARNESS = textwrap.dedent(
    r"""
    import faulthandler, gc, json, sys, threading, tracemalloc
    faulthandler.dump_traceback_later(100, exit=True)

    import openai
    from opentelemetry import metrics, trace

    import otel_tokenkpi
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

    otel_tokenkpi.instrument()
    provider = trace.get_tracer_provider()
    batch = provider._active_span_processor._span_processors[0].downstream  # TokenKPISpanProcessor(Batch...)
    exporter = batch._batch_processor._exporter
    export_threads = set()
    real_export = exporter.export


    def recording_export(spans):
        export_threads.add(threading.current_thread().name)
        return real_export(spans)


    exporter.export = recording_export
    server = FakeOpenAIServer().start()
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]


    def calls(n):
        for i in range(n):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            if i % 100 == 0:
                server.reset()  # the fake's recorded requests are not ours to count


    calls(100)  # warm-up
    tracemalloc.start()
    # The queue (OTEL_BSP_MAX_QUEUE_SIZE) fills while exports fail or hang; then it holds spans allocated
    # since tracemalloc started, in both snapshots: what differs is what more calls retained.
    calls(150)
    server.reset()
    gc.collect()
    before = tracemalloc.take_snapshot()
    calls(1000)
    server.reset()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    excluded = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(excluded).compare_to(before.filter_traces(excluded), "lineno")
    growth = sum(s.size_diff for s in diff)
    server.stop()

    done = threading.Event()
    def shut_down():
        provider.shutdown()
        metrics.get_meter_provider().shutdown()
        done.set()
    threading.Thread(target=shut_down, daemon=True, name="test-shutdown").start()
    shut_down_in_time = done.wait(60)
    leftover = [
        t.name for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.name != "test-shutdown"
    ]
    print(json.dumps({
        "growth_per_call": growth / 1000,
        "top_growth": [str(s) for s in diff[:5]],
        "export_threads": sorted(export_threads),
        "main_thread": threading.main_thread().name,
        "shut_down_in_time": shut_down_in_time,
        "non_daemon_threads_left": leftover,
    }))
    """
)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


@pytest.fixture
def black_hole() -> Iterator[int]:
    """Listens (the kernel completes handshakes into the backlog) and never accepts, reads or answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        yield int(sock.getsockname()[1])


def run(protocol: str, port: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parent),
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",  # seconds (the SDK's default is 10)
        "OTEL_BSP_MAX_QUEUE_SIZE": "64",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "16",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
    }
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", HARNESS], capture_output=True, text=True, timeout=150, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(result: dict) -> None:
    assert result["export_threads"], "no export was attempted"
    assert result["main_thread"] not in result["export_threads"]  # exports never run on the caller's thread
    assert result["growth_per_call"] < MAX_GROWTH_PER_CALL
    assert result["shut_down_in_time"]
    assert result["non_daemon_threads_left"] == []


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_endpoint_down(protocol, closed_port):
    check(run(protocol, closed_port))


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_endpoint_black_holed(protocol, black_hole):
    check(run(protocol, black_hole))
