"""The waste engine's own cost: per call as history grows, through the processor, and in memory.

Three measurements, no network and no client SDK (``overhead.py`` times whole calls):

1. Per-call cost over a 50-turn tool-calling agent loop. Each turn re-sends the
   history and adds an assistant tool call and a fresh ~2 KB tool result. Old
   ContextItem objects are kept between turns, the way an adapter's IdentityMemo
   reuses them, so re-sent history is never re-tokenized. Reported per decile of
   turns (median over repetitions, each a fresh conversation with fresh objects);
   the target is a flat cost: last decile / first decile close to 1.
2. Spans/s of plain INTERNAL spans (nested, so local roots occur) through
   ``TokenKPISpanProcessor(SimpleSpanProcessor(noop))`` vs the bare
   ``SimpleSpanProcessor(noop)``: alternating blocks in one run, paired ratios.
3. Memory: a million small calls over 100,000 conversations (ids cycling, some
   requests repeated): RSS growth after a warm-up, the store's size, calls/s.

Ratios are against baselines measured in the same run, because absolute times
drift on a shared machine. Exits 1 when a target is clearly missed, so it can
serve as a check; ``--quick`` scales the work down 20x for CI.

    python benchmarks/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _workloads import NullExporter  # noqa: E402 - benchmarks/ is sys.path[0] when run as a script

MODEL = "gpt-4o"
PARAMS: dict[str, Any] = {"gen_ai.request.model": MODEL, "gen_ai.request.temperature": 0.2}
TURNS = 50
MAX_DECILE_RATIO = 1.5
MAX_PROCESSOR_RATIO = 1.10
MAX_RSS_GROWTH_MB = 50.0

WORDS = (
    "the model context token window cache agent tool result search page document section answer request history "
    "system user assistant message function call argument value price cost waste retry limit stream chunk usage "
    "budget team metric trace span export backend query filter 2024 v1.2 config: {key} [list] (note) -- ok."
).split()


def words(rng: random.Random, chars: int) -> str:
    """Fresh text of about ``chars`` characters, so no token count is cached from an earlier run."""
    out: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


def ensure_tiktoken_cache() -> None:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    if Path("/tmp/tkcache").is_dir() and any(Path("/tmp/tkcache").iterdir()):
        os.environ["TIKTOKEN_CACHE_DIR"] = "/tmp/tkcache"
        return
    from seed_tiktoken_cache import seed

    os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiktoken-")
    seed(os.environ["TIKTOKEN_CACHE_DIR"])


# -- 1. per-call cost over a growing conversation ------------------------------------------------
def agent_conversation(
    rng: random.Random, conversation_id: str, turns: int, prepare: bool = False
) -> tuple[list[float], bool]:
    """One agent loop; returns the engine's seconds per turn and whether every count was exact.

    With ``prepare`` the call follows the lifecycle's path: ``ENGINE.prepare`` at call start counts the
    new context in the background while the HTTP call is in flight (here: waited for, untimed), and
    only ``prepare`` plus ``call_attributes(record, prepared)`` are timed.
    """
    from otel_tokenkpi import semconv as sc
    from otel_tokenkpi.engine import ENGINE
    from otel_tokenkpi.invocation import (
        CallRequest,
        CallResult,
        CallSurroundings,
        ContextItem,
        FinishedCall,
        OutputMessage,
        ToolCall,
        ToolDefinition,
        Usage,
    )

    tools = [
        ToolDefinition(
            "search_docs",
            "Search the documentation and return the matching page.",
            '{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}',
        )
    ]
    messages = [
        ContextItem("system", "You are a research agent. Use search_docs until you can answer."),
        ContextItem("user", f"Summarise everything the docs say about caching ({conversation_id})."),
    ]
    timings: list[float] = []
    exact = True
    input_tokens = 0
    for turn in range(turns):
        request = CallRequest("chat", "openai", MODEL, messages=messages, tools=tools, params=PARAMS)
        call_id = f"call_{conversation_id}_{turn}"
        arguments = f'{{"query": "{rng.choice(WORDS)} page {turn}"}}'
        cache_read = input_tokens // 1024 * 1024  # the provider caches the previous prefix in 1024-token blocks
        input_tokens = 60 + turn * 470
        result = CallResult(
            response_id=f"resp_{turn}",
            response_model="gpt-4o-2024-08-06",
            outputs=[OutputMessage("", [ToolCall("search_docs", arguments, call_id)], "tool_calls")],
            usage=Usage(input_tokens=input_tokens, output_tokens=20, cache_read_tokens=cache_read),
        )
        record = FinishedCall(
            request, result, surroundings=CallSurroundings(conversation_id=conversation_id, started_at=time.time())
        )
        prepared, elapsed = None, 0.0
        if prepare:
            start = time.perf_counter()
            prepared = ENGINE.prepare(request)
            elapsed = time.perf_counter() - start
            if prepared is not None:
                prepared.result()  # the HTTP round trip would take longer than this
        start = time.perf_counter()
        attrs = ENGINE.call_attributes(record, prepared)
        timings.append(elapsed + time.perf_counter() - start)
        exact = exact and not attrs.get(sc.TOKENS_ESTIMATED, False)
        # The next request: the same list grows; earlier ContextItems are the same objects (IdentityMemo).
        messages = [
            *messages,
            ContextItem("assistant", "", [ToolCall("search_docs", arguments, call_id)]),
            ContextItem("tool", words(rng, 2048), tool_call_id=call_id),
        ]
    return timings, exact


@dataclass
class GrowthResult:
    decile_us: list[float]
    ratio: float
    exact: bool
    repetitions: int


def measure_growth(repetitions: int, prepare: bool = False) -> GrowthResult:
    rng = random.Random(11)
    agent_conversation(rng, "warm-up", 10, prepare)
    per_turn: list[list[float]] = [[] for _ in range(TURNS)]
    exact = True
    for rep in range(repetitions):
        timings, rep_exact = agent_conversation(rng, f"c1-{rep}-{prepare}", TURNS, prepare)
        exact = exact and rep_exact
        for turn, seconds in enumerate(timings):
            per_turn[turn].append(seconds)
    turn_medians = [statistics.median(samples) for samples in per_turn]
    deciles = [statistics.median(turn_medians[i : i + 10]) * 1e6 for i in range(0, TURNS, 10)]
    return GrowthResult(deciles, deciles[-1] / deciles[0], exact, repetitions)


# -- 2. the processor on non-GenAI spans ---------------------------------------------------------
SPANS_PER_TRACE = 5


def emit_traces(tracer: Any, traces: int) -> None:
    """Traces of 5 INTERNAL spans: a root, two children, a grandchild, and a separate root (a local root too)."""
    for i in range(traces):
        with tracer.start_as_current_span("handle_request", attributes={"http.route": "/items", "item.index": i}):
            with (
                tracer.start_as_current_span("load", attributes={"db.system": "sqlite", "rows": 3}),
                tracer.start_as_current_span("parse", attributes={"format": "json"}),
            ):
                pass
            with tracer.start_as_current_span("render", attributes={"template": "items.html"}):
                pass
        with tracer.start_as_current_span("housekeeping", attributes={"job": "cleanup"}):
            pass


@dataclass
class ProcessorResult:
    plain_spans_s: float
    wrapped_spans_s: float
    ratio: float  # median of paired (wrapped time / plain time): > 1 means the processor costs
    pairs: int


def measure_processor(pairs: int, traces_per_block: int) -> ProcessorResult:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from otel_tokenkpi import TokenKPISpanProcessor

    plain_provider, wrapped_provider = TracerProvider(), TracerProvider()
    plain_provider.add_span_processor(SimpleSpanProcessor(NullExporter()))
    wrapped_provider.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(NullExporter())))
    tracers = {"plain": plain_provider.get_tracer("bench"), "wrapped": wrapped_provider.get_tracer("bench")}

    def block(kind: str) -> float:
        start = time.perf_counter()
        emit_traces(tracers[kind], traces_per_block)
        return time.perf_counter() - start

    for kind in tracers:  # warm up both paths
        block(kind)
    plain: list[float] = []
    wrapped: list[float] = []
    for index in range(pairs):
        order = ("plain", "wrapped") if index % 2 == 0 else ("wrapped", "plain")
        times = {kind: block(kind) for kind in order}
        plain.append(times["plain"])
        wrapped.append(times["wrapped"])
    plain_provider.shutdown()
    wrapped_provider.shutdown()
    spans = traces_per_block * SPANS_PER_TRACE
    return ProcessorResult(
        plain_spans_s=spans / statistics.median(plain),
        wrapped_spans_s=spans / statistics.median(wrapped),
        ratio=statistics.median(w / p for w, p in zip(wrapped, plain, strict=True)),
        pairs=pairs,
    )


# -- 3. memory over many conversations -----------------------------------------------------------
def rss_bytes() -> int:
    """Current resident set size (/proc/self/statm), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class MemoryResult:
    calls: int
    conversations: int
    rss_growth_mb: float
    peak_rss_growth_mb: float
    store_bytes: int
    store_len: int
    calls_per_s: float
    repeated: int


def small_record(rng: random.Random, conversation: int, step: int) -> Any:
    """A fresh 2-4 message request, as an adapter builds one for a call in a short conversation."""
    from otel_tokenkpi.invocation import (
        CallRequest,
        CallResult,
        CallSurroundings,
        ContextItem,
        FinishedCall,
        OutputMessage,
        ToolCall,
        Usage,
    )

    messages = [
        ContextItem("system", "You answer questions about the product catalogue."),
        ContextItem("user", f"Question {conversation}.{step}: {words(rng, 60)}"),
    ]
    if step % 3 >= 1:
        call = ToolCall("lookup", f'{{"sku": "{conversation}-{step}"}}', f"call_{conversation}_{step}")
        messages.append(ContextItem("assistant", "", [call]))
    if step % 3 == 2:
        messages.append(ContextItem("tool", words(rng, 120), tool_call_id=f"call_{conversation}_{step}"))
    request = CallRequest("chat", "openai", MODEL, messages=messages, params=PARAMS)
    result = CallResult(
        response_model="gpt-4o-2024-08-06",
        outputs=[OutputMessage(words(rng, 40), [], "stop")],
        usage=Usage(input_tokens=40 + 20 * len(messages), output_tokens=12),
    )
    return FinishedCall(
        request, result, surroundings=CallSurroundings(conversation_id=f"conv-{conversation}", started_at=time.time())
    )


def measure_memory(calls: int, conversations: int, warm_up: int, repeat_every: int = 10) -> MemoryResult:
    from otel_tokenkpi import semconv as sc
    from otel_tokenkpi.engine import ENGINE

    rng = random.Random(5)
    engine_seconds = 0.0
    repeated = 0
    rss_start = peak_start = 0
    previous = None
    for i in range(warm_up + calls):
        if i == warm_up:
            gc.collect()
            rss_start, peak_start = rss_bytes(), peak_rss_bytes()
            engine_seconds = 0.0
            repeated = 0
        if previous is not None and i % repeat_every == 0:
            # Re-send the previous request unchanged in its conversation (a retry loop, a double submit).
            record = previous
            record.surroundings = type(record.surroundings)(
                conversation_id=record.surroundings.conversation_id, started_at=time.time()
            )
        else:
            record = small_record(rng, i % conversations, i // conversations)
        start = time.perf_counter()
        attrs = ENGINE.call_attributes(record)
        engine_seconds += time.perf_counter() - start
        repeated += attrs.get(sc.WASTE_REPEATED_REQUEST_TOKENS, 0) > 0
        previous = record
    gc.collect()
    return MemoryResult(
        calls=calls,
        conversations=conversations,
        rss_growth_mb=(rss_bytes() - rss_start) / 2**20,
        peak_rss_growth_mb=(peak_rss_bytes() - peak_start) / 2**20,
        store_bytes=ENGINE.store.size_bytes,
        store_len=len(ENGINE.store),
        calls_per_s=calls / engine_seconds,
        repeated=repeated,
    )


# -- report --------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20x less work (for CI)")
    args = parser.parse_args()
    scale = 20 if args.quick else 1

    ensure_tiktoken_cache()
    from otel_tokenkpi import prices, tokens

    tokens.start_loading()
    prices.start_loading()
    if not (tokens.wait_until_loaded(30) and prices.wait_until_loaded(30)):
        print("warning: encodings or prices not loaded; counts are estimates", file=sys.stderr)

    growth = measure_growth(repetitions=max(3, 40 // scale))
    prepared = measure_growth(repetitions=max(3, 40 // scale), prepare=True)
    processor = measure_processor(pairs=max(8, 30 // scale), traces_per_block=max(100, 1000 // scale))
    memory = measure_memory(calls=1_000_000 // scale, conversations=100_000 // scale, warm_up=10_000 // scale)

    checks = {
        "decile ratio": growth.ratio <= MAX_DECILE_RATIO,
        "processor ratio": processor.ratio <= MAX_PROCESSOR_RATIO,
        "RSS growth": memory.rss_growth_mb <= MAX_RSS_GROWTH_MB,
    }

    def verdict(name: str) -> str:
        return "ok" if checks[name] else "MISSED"

    def deciles(result: GrowthResult) -> str:
        return ", ".join(f"{10 * d + 1}-{10 * d + 10}: {us:.0f}" for d, us in enumerate(result.decile_us))

    print(f"\nmode: {'quick' if args.quick else 'full'}; counts exact: {growth.exact and prepared.exact}\n")
    print("| measurement | figure | target | verdict |")
    print("|---|---|---|---|")
    print(
        f"| engine us/call by turns ({growth.repetitions} conversations x {TURNS} turns) | {deciles(growth)} | flat | |"
    )
    print(
        f"| last/first decile | {growth.ratio:.2f} | <= {MAX_DECILE_RATIO} (flat = 1.0) | {verdict('decile ratio')} |"
    )
    print(f"| same, lifecycle path (prepare + call_attributes(record, prepared)) | {deciles(prepared)} | flat | |")
    print(f"| last/first decile, lifecycle path (not checked) | {prepared.ratio:.2f} | flat = 1.0 | |")
    print(
        f"| non-GenAI spans/s, bare vs TokenKPISpanProcessor ({processor.pairs} block pairs) | "
        f"{processor.plain_spans_s:,.0f} vs {processor.wrapped_spans_s:,.0f} | | |"
    )
    print(
        f"| processor time ratio (median of pairs) | {processor.ratio:.3f} | <= 1.05 (fail > {MAX_PROCESSOR_RATIO}) "
        f"| {verdict('processor ratio')} |"
    )
    print(
        f"| RSS growth after warm-up ({memory.calls:,} calls, {memory.conversations:,} conversations) | "
        f"{memory.rss_growth_mb:.1f} MB (peak {memory.peak_rss_growth_mb:.1f} MB) | < {MAX_RSS_GROWTH_MB:.0f} MB | "
        f"{verdict('RSS growth')} |"
    )
    print(f"| engine store | {memory.store_bytes:,} bytes, {memory.store_len:,} entries | bounded | |")
    print(f"| engine calls/s (small requests) | {memory.calls_per_s:,.0f} | | |")
    print(f"| repeated requests detected | {memory.repeated:,} | > 0 | |")
    missed = [name for name, ok in checks.items() if not ok]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
