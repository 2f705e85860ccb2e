"""Added cost per call: instrumented vs plain, measured in the same run.

Workloads, both through the real ``openai`` SDK against the fake server
(run in a separate process so its JSON work does not share our GIL):

- short: one chat call with a system and a user message;
- conversation: a 50-turn tool-calling agent loop whose history grows to
  ~100k tokens (each turn adds a tool call and a ~2k-token tool result).

Each call runs twice, plain and instrumented (the instrumentor's switch off
and on), in alternating order, so machine noise hits both sides alike. Reports
medians, the added microseconds per call, and the ratio to the plain call.
Workloads and the fake-server setup live in ``_workloads.py`` (shared with
``peers.py``, which compares against other instrumentations).

    python benchmarks/overhead.py [--rounds 12] [--short-calls 50]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _workloads import NullExporter, conversation, short_call, start_server  # noqa: E402


class Pairs:
    """Runs each call twice, plain and instrumented, in alternating order, and
    keeps the two timings side by side (a paired comparison cancels most of
    the drift of a noisy machine).

    "Plain" turns the instrumentor's switch off: the wrappers stay installed
    and return straight to the SDK (the state of a wrapper bound before
    ``uninstrument()``). Patching and unpatching around every call would time
    the first call after each patch (cold method caches) instead of the
    steady state. The price of a disabled wrapper is reported separately.
    """

    def __init__(self, instrumentor: Any) -> None:
        self.switch = instrumentor._recorder.switch
        self.plain: list[float] = []
        self.instrumented: list[float] = []
        self._flip = False

    def _timed(self, call: Any, instrumented: bool) -> Any:
        self.switch.enabled = instrumented
        start = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - start
        (self.instrumented if instrumented else self.plain).append(elapsed)
        return result

    def run(self, call: Any) -> Any:
        self._flip = not self._flip
        first = self._timed(call, self._flip)
        self._timed(call, not self._flip)
        self.switch.enabled = True
        return first

    def added(self, start: int = 0, stop: int | None = None) -> float:
        pairs = list(zip(self.instrumented, self.plain, strict=True))[start:stop]
        return statistics.median(i - p for i, p in pairs)


def disabled_wrapper_cost(instrumentor: Any, client: Any) -> float:
    """Seconds a switched-off wrapper adds to a call (vs the unpatched method)."""
    import openai

    resource = client.chat.completions
    wrapped = vars(openai.resources.chat.completions.Completions)["create"]
    instrumentor._recorder.switch.enabled = False
    try:
        n = 20000
        unpatched = wrapped.__wrapped__.__get__(resource)
        patched = wrapped.__get__(resource)

        def loop(fn: Any) -> float:
            start = time.perf_counter()
            for _ in range(n):
                try:
                    fn()  # no arguments: the SDK raises at once, so only the call path is timed
                except TypeError:
                    pass
            return (time.perf_counter() - start) / n

        return statistics.median(loop(patched) - loop(unpatched) for _ in range(5))
    finally:
        instrumentor._recorder.switch.enabled = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--short-calls", type=int, default=50)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()

    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        from seed_tiktoken_cache import seed

        os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiktoken-")
        seed(os.environ["TIKTOKEN_CACHE_DIR"])

    import openai
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_tokenkpi import TokenKPISpanProcessor, prices, tokens
    from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor

    tokens.start_loading()
    prices.start_loading()
    tokens.wait_until_loaded(30)
    prices.wait_until_loaded(30)
    provider = TracerProvider()
    provider.add_span_processor(TokenKPISpanProcessor(BatchSpanProcessor(NullExporter())))
    instrumentor = OpenAIInstrumentor()

    text_proc, text_url = start_server("text")
    tool_proc, tool_url = start_server("tools")
    try:
        short_client = openai.OpenAI(api_key="sk-bench", base_url=text_url + "/v1", max_retries=0)
        tool_client = openai.OpenAI(api_key="sk-bench", base_url=tool_url + "/v1", max_retries=0)
        for _ in range(20):  # warm up connections, pydantic and our code paths
            short_call(short_client)
        instrumentor.instrument(tracer_provider=provider)
        short = Pairs(instrumentor)
        turns = [Pairs(instrumentor) for _ in range(args.turns)]
        rng = random.Random(7)
        for _ in range(args.rounds):
            for _ in range(args.short_calls):
                short.run(lambda: short_call(short_client))
            per_round = Pairs(instrumentor)
            conversation(tool_client, rng, args.turns, per_round.run)
            for i, (t_inst, t_plain) in enumerate(zip(per_round.instrumented, per_round.plain, strict=True)):
                turns[i].instrumented.append(t_inst)
                turns[i].plain.append(t_plain)
        wrapper_cost = disabled_wrapper_cost(instrumentor, short_client)
    finally:
        instrumentor.uninstrument()
        for proc in (text_proc, tool_proc):
            proc.kill()
        provider.shutdown()

    def us(seconds: float) -> float:
        return seconds * 1e6

    plain_short = statistics.median(short.plain)
    added_short = short.added()
    per_turn_added = [t.added() for t in turns]
    plain_turn = statistics.median(x for t in turns for x in t.plain)
    added_turn = statistics.median(per_turn_added)
    print(f"rounds={args.rounds} short_calls/round={args.short_calls} turns={args.turns} (paired, alternating order)")
    print("| workload | plain median (us) | added median (us) | ratio instrumented/plain |")
    print("|---|---|---|---|")
    print(f"| short chat call | {us(plain_short):.0f} | {us(added_short):.0f} | {1 + added_short / plain_short:.3f} |")
    print(
        f"| {args.turns}-turn conversation, per call | {us(plain_turn):.0f} | {us(added_turn):.0f} | "
        f"{1 + added_turn / plain_turn:.3f} |"
    )
    first, last = per_turn_added[:10], per_turn_added[-10:]
    print(
        f"conversation added per call: turns 1-10 median {us(statistics.median(first)):.0f} us, "
        f"last 10 turns median {us(statistics.median(last)):.0f} us"
    )
    print(f"a switched-off wrapper adds {us(wrapper_cost):.2f} us per call (included in 'plain' above)")


if __name__ == "__main__":
    main()
