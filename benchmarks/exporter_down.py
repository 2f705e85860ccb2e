"""Call latency with the OTLP endpoint black-holed, against an in-memory exporter, measured in the same run.

A black hole (a socket that listens and never answers) is the worst case for an exporter: every export
waits for its full timeout. The SDK's BatchSpanProcessor exports from its own thread with a bounded queue,
so the application's calls should not notice. This measures it: the same instrumented OpenAI chat call
against the local fake server, in alternating rounds with each setup (so machine noise hits both), both
with ``TokenKPISpanProcessor(BatchSpanProcessor(exporter))``:

* baseline: an in-memory span exporter;
* black hole: the OTLP exporter (gRPC or HTTP) pointed at a listening socket that never answers.

Run: ``TIKTOKEN_CACHE_DIR=/tmp/tkcache python benchmarks/exporter_down.py [--protocol grpc|http] [--rounds N]``.
Prints the median latency of each setup and the ratio black hole / baseline (1.0 = no effect).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from typing import Any

import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tokenkpi import TokenKPISpanProcessor, prices, tokens
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]


def black_hole_exporter(protocol: str, port: int) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=2)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter

    return HTTPExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=2)


def provider_with(exporter: Any) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(TokenKPISpanProcessor(BatchSpanProcessor(exporter, max_queue_size=2048)))
    return provider


def round_latencies(client: Any, provider: TracerProvider, calls: int) -> list[float]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())
    try:
        latencies = []
        for _ in range(calls):
            start = time.perf_counter()
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            latencies.append(time.perf_counter() - start)
        return latencies
    finally:
        instrumentor.uninstrument()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200, help="calls per round")
    args = parser.parse_args()
    tokens.start_loading()
    prices.start_loading()
    tokens.wait_until_loaded(30)
    prices.wait_until_loaded(30)

    with socket.socket() as hole, FakeOpenAIServer() as server:
        hole.bind(("127.0.0.1", 0))
        hole.listen(1024)  # never accepted, never answered
        baseline = provider_with(InMemorySpanExporter())
        blackholed = provider_with(black_hole_exporter(args.protocol, hole.getsockname()[1]))
        client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
        round_latencies(client, baseline, 50)  # warm-up: connections, caches
        base: list[float] = []
        hole_latencies: list[float] = []
        for _ in range(args.rounds):
            base += round_latencies(client, baseline, args.calls)
            hole_latencies += round_latencies(client, blackholed, args.calls)
            server.reset()
        base_ms, hole_ms = statistics.median(base) * 1e3, statistics.median(hole_latencies) * 1e3
        print(f"protocol {args.protocol}, {args.rounds} alternating rounds of {args.calls} calls each")
        print(f"in-memory exporter : median {base_ms:.3f} ms per call")
        print(f"black-holed OTLP   : median {hole_ms:.3f} ms per call")
        print(f"ratio black hole / in-memory: {hole_ms / base_ms:.3f}")
        baseline.shutdown()
        blackholed.shutdown()


if __name__ == "__main__":
    main()
