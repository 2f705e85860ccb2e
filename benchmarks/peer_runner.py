"""One configuration of ``peers.py``, run in its own process (and, for peers, its own virtualenv).

    python peer_runner.py CONFIG SHORT_URL STREAM_URL STREAM_SHORT_URL TOOLS_URL

CONFIG is ``plain``/``plain-b`` (no instrumentation), ``tokenkpi``, ``otel-genai``
(opentelemetry-instrumentation-genai-openai), ``openllmetry``
(opentelemetry-instrumentation-openai) or ``openinference``
(openinference-instrumentation-openai). Every configuration gets the same SDK
setup: a TracerProvider with a BatchSpanProcessor on an exporter that drops
everything, and a MeterProvider with a periodic reader on a dropping exporter
(otel-tokenkpi's TokenKPISpanProcessor wraps that same BatchSpanProcessor, as
its README says to). Message content capture is off for all (``peers.py`` sets
each peer's environment variable).

After warming up it prints ``{"ready": true}``, then reads one JSON command per
line from stdin (``{"workload": "short"|"stream"|"stream-short"|"conversation",
"calls": N, "seed": S}``) and answers each with one JSON line of per-call
seconds (wall clock, and CPU time of the process). Only the answers go to stdout; anything else printed goes to stderr.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workloads import (
    NullExporter,
    conversation,
    make_client,
    short_call,
    stream_call,
)

WARM_UP_SEED = 1_000_003  # not a round's seed (random.Random(-n) is Random(n))


def _providers() -> tuple[Any, Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class NullMetricExporter(MetricExporter):  # type: ignore[misc]
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(NullMetricExporter())])
    return TracerProvider(), BatchSpanProcessor(NullExporter()), meter_provider


def instrument(config: str) -> Any:
    """Set up the SDK and the configuration's instrumentation; returns what to shut down."""
    tracer_provider, batch, meter_provider = _providers()
    if config == "tokenkpi":
        from otel_tokenkpi import TokenKPISpanProcessor, prices, tokens
        from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor as TokenKPI

        tokens.start_loading()
        prices.start_loading()
        tokens.wait_until_loaded(30)
        prices.wait_until_loaded(30)
        tracer_provider.add_span_processor(TokenKPISpanProcessor(batch))
        TokenKPI().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        return tracer_provider, meter_provider
    tracer_provider.add_span_processor(batch)
    if config == "otel-genai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as Peer
    elif config == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Peer
    elif config == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor as Peer
    elif config.startswith("plain"):
        return tracer_provider, meter_provider
    else:
        raise SystemExit(f"unknown configuration {config!r}")
    Peer().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return tracer_provider, meter_provider


class TokenizerTally:
    """Counts the tokens otel-tokenkpi's tokenizer encodes, by wrapping the loaded encodings' method."""

    def __init__(self) -> None:
        from otel_tokenkpi import tokens

        self.encoded = 0
        self.cpu_s = 0.0  # CPU seconds spent encoding (in whichever thread encodes: ours is a background one)
        self._originals: dict[str, Any] = {}
        for name, enc in list(tokens._encodings.items()):
            original = enc.encode_ordinary
            self._originals[name] = original

            def counting(text: str, _original: Any = original) -> list[int]:
                start = time.thread_time()
                result = _original(text)
                self.cpu_s += time.thread_time() - start
                self.encoded += len(result)
                return result

            enc.encode_ordinary = counting

    def unique_tokens(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        """Tokens of every distinct text the calls sent (contents, tool-call names and arguments, tool
        definitions), each encoded once: the least a tokenizer must do to count this conversation."""
        texts: set[str] = set()
        for message in messages:
            if isinstance(message.get("content"), str):
                texts.add(message["content"])
            for call in message.get("tool_calls") or ():
                texts.update((call["function"]["name"], call["function"]["arguments"]))
        for tool in tools:
            fn = tool["function"]
            texts.update((fn["name"], fn["description"], json.dumps(fn["parameters"], separators=(",", ":"))))
        encode = self._originals["o200k_base"]
        return sum(len(encode(t)) for t in texts if t)


def run(workload: str, calls: int, seed: int, clients: dict[str, Any], tally: TokenizerTally | None) -> dict[str, Any]:
    timings: list[float] = []
    cpu: list[float] = []  # CPU seconds of this whole process (all its threads) per call: less noisy
    thread: list[float] = []  # CPU seconds of the calling thread only: what the user's request itself pays

    def timed(call: Any) -> Any:
        start_thread, start_cpu, start = time.thread_time(), time.process_time(), time.perf_counter()
        result = call()
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        thread.append(time.thread_time() - start_thread)
        return result

    if workload == "conversation":
        from _workloads import TOOLS

        before, before_cpu = (tally.encoded, tally.cpu_s) if tally else (0, 0.0)
        history = conversation(clients["tools"], random.Random(seed), calls, timed)
        answer: dict[str, Any] = {"timings": timings, "cpu": cpu, "thread": thread}
        if tally is not None:
            answer["encoded_tokens"] = tally.encoded - before
            answer["encode_cpu_s"] = tally.cpu_s - before_cpu
            answer["unique_tokens"] = tally.unique_tokens(history[:-1], TOOLS)  # the last result is never sent
        return answer
    client = clients[workload]
    call = short_call if workload == "short" else stream_call
    for _ in range(calls):
        timed(lambda: call(client))
    return {"timings": timings, "cpu": cpu, "thread": thread}


def paired_stream_cost(calls: int, clients: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """otel-tokenkpi only: seconds added per streamed call, measured in-process by turning the
    instrumentor's switch off and on for alternate calls (paired, so machine noise cancels). Clocks:
    ``cpu``, the whole process's CPU time; ``thread``, the calling thread's; ``delivered``, the calling
    thread's until the last chunk reached the caller (so without the work done once the stream has
    ended: recording the call, and counting the output locally when the stream reported no usage).
    The cross-process comparison cannot resolve a few microseconds per chunk on a busy 2-core machine."""
    from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor

    switch = OpenAIInstrumentor()._recorder.switch  # BaseInstrumentor: one instance per class
    clocks = ("cpu", "thread", "delivered")
    added: dict[str, dict[str, list[float]]] = {c: {"stream": [], "stream-short": []} for c in clocks}
    for i in range(calls):
        for workload in ("stream", "stream-short"):
            times: dict[tuple[str, bool], float] = {}
            for enabled in (True, False) if i % 2 else (False, True):
                switch.enabled = enabled
                start_thread, start_cpu = time.thread_time(), time.process_time()
                last_chunk = stream_call(clients[workload], time.thread_time)
                times["cpu", enabled] = time.process_time() - start_cpu
                times["thread", enabled] = time.thread_time() - start_thread
                times["delivered", enabled] = last_chunk - start_thread
            for clock, by_workload in added.items():
                by_workload[workload].append(times[clock, True] - times[clock, False])
    switch.enabled = True
    return added


def main() -> None:
    config, short_url, stream_url, stream_short_url, tools_url = sys.argv[1:6]
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # peers' prints must not corrupt the answers
    providers = instrument(config)
    clients = {
        "short": make_client(short_url),
        "stream": make_client(stream_url),
        "stream-short": make_client(stream_short_url),
        "tools": make_client(tools_url),
    }
    for workload, calls in (("short", 30), ("stream", 5), ("stream-short", 5), ("conversation", 10)):
        run(workload, calls, WARM_UP_SEED, clients, None)  # warm connections, pydantic and every code path
    tally = TokenizerTally() if config == "tokenkpi" else None
    protocol.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command["workload"] == "paired-stream":
            protocol.write(json.dumps(paired_stream_cost(command["calls"], clients)) + "\n")
            continue
        answer = run(command["workload"], command["calls"], command["seed"], clients, tally)
        protocol.write(json.dumps(answer) + "\n")
    for provider in providers:
        provider.shutdown()


if __name__ == "__main__":
    main()
