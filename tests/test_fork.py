"""A process that forks (gunicorn pre-fork, multiprocessing "fork"): parent and children keep producing correct
spans, no lock is inherited held, background loading restarts in the child.

Each scenario runs in a fresh interpreter (``HARNESS`` below, started with ``subprocess``), so that the
tokenizer and genai-prices are NOT loaded yet when it forks, and the fork lands exactly where it hurts:

* while the price loader thread is inside ``import genai_prices`` (a meta-path hook holds that import open
  for a moment, as a slow disk would), and while the tokenizer loader has not finished;
* while other threads hold our locks: the engine's state store, the token-count cache, the tokenizer
  loader's lock, the background counter's lock, and the log-once lock.

``instrument()`` waits (bounded) until both loaders finished, so a fork after it finds them done. The loaders
are therefore started directly, as ``instrument()`` starts them, and the first child is forked before the parent
instruments: it instruments itself after the fork (gunicorn's ``post_fork`` pattern), on loaders it inherited
mid-import. A second child, forked once the parent has instrumented and loaded everything, inherits both.

The children (``os.fork()`` and ``multiprocessing`` with the "fork" start method) make real OpenAI SDK calls
to the fake server and report their spans' attributes through a pipe / queue, under a watchdog: a child
that deadlocks is killed and reported, never hangs the suite. The parent then makes the same calls; a
child's spans must match the parent's exactly: exact token counts (the tokenizer loaded in the child) and
the same cost (prices loaded in the child).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

HARNESS = textwrap.dedent(
    r'''
    import faulthandler, importlib.abc, importlib.machinery, importlib.util, json, multiprocessing, os, sys
    import threading, time

    faulthandler.dump_traceback_later(90, exit=True)  # a harness that hangs says where, and ends
    MODE = sys.argv[1]
    PARENT = os.getpid()
    SLOW = {"genai_prices.data_snapshot": threading.Event(), "tiktoken.core": threading.Event()}


    class SlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Holds the loaders' imports (of genai-prices and tiktoken) open for a moment, as a slow disk
        would, in the parent only."""

        def find_spec(self, name, path, target=None):
            if name not in SLOW or os.getpid() != PARENT or SLOW[name].is_set():
                return None
            real = importlib.machinery.PathFinder.find_spec(name, path)
            return importlib.util.spec_from_loader(name, self, origin=real.origin, is_package=False)

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            SLOW[module.__name__].set()
            time.sleep(0.6)
            package = sys.modules[module.__name__.rsplit(".", 1)[0]]
            real = importlib.machinery.PathFinder.find_spec(module.__name__, package.__path__)
            module.__spec__, module.__file__ = real, real.origin
            real.loader.exec_module(module)


    sys.meta_path.insert(0, SlowImport())

    import openai
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_tokenkpi import TokenKPISpanProcessor, _safety, prices, tokens
    from otel_tokenkpi.engine import ENGINE
    from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
    from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply, ToolCall

    if "nowait" in MODE:  # to see the failure the waits prevent
        prices._import_gate.wait_s = tokens._import_gate.wait_s = 0
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TokenKPISpanProcessor(SimpleSpanProcessor(exporter)))
    # What instrument() starts, without its wait for the end: the first fork lands while they import.
    tokens.start_loading()
    prices.start_loading()


    def instrument():
        """instrument() once per process: in the first child after the fork, in the parent after it."""
        instrumentor = OpenAIInstrumentor()
        inherited = instrumentor.is_instrumented_by_opentelemetry
        if not inherited:
            instrumentor.instrument(tracer_provider=provider, meter_provider=MeterProvider())
        return inherited


    server = FakeOpenAIServer().start()
    server.default_reply = Reply(text=None, tool_calls=[ToolCall("lookup", '{"city": "Paris"}')], prompt_tokens=900)
    RESULT = "Paris: 21 degrees, sunny, light wind from the west. " * 60  # > 2 KB: the background counter counts it
    MESSAGES = [
        {"role": "system", "content": "You look up the weather."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": RESULT},
    ]


    def calls():
        """Two calls, each its own trace: attributes that depend on nothing but the call."""
        exporter.clear()
        client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return [
            {k: v for k, v in s.attributes.items() if k.startswith(("tokenkpi.", "gen_ai.usage."))}
            for s in exporter.get_finished_spans()
        ]


    def child_report():
        """What a child sends back: its loaders' state and its spans (bounded waits everywhere)."""
        report = {"tokens_loaded": tokens.wait_until_loaded(8), "prices_loaded": prices.wait_until_loaded(8)}
        done = threading.Event()
        log = lambda: (_safety.log_once("fork-test", message="child logs"), done.set())  # noqa: E731
        threading.Thread(target=log, daemon=True).start()
        report["log_once"] = done.wait(10)
        report["inherited_instrumentation"] = instrument()
        report["spans"] = calls()
        return report


    def hold(lock, holding, release):
        with lock:
            holding.set()
            release.wait(30)


    def hold_our_locks():
        """Threads that hold our locks across the fork; returns the event that lets them go."""
        release, events = threading.Event(), []
        for lock in (ENGINE.store._lock, tokens._cache_lock, tokens._lock, ENGINE._counter._lock, _safety._logged_lock):
            holding = threading.Event()
            threading.Thread(target=hold, args=(lock, holding, release), daemon=True).start()
            events.append(holding)
        assert all(e.wait(5) for e in events)
        return release


    def fork_child():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                payload = json.dumps(child_report())
            except BaseException as exc:
                payload = json.dumps({"error": repr(exc)})
            os.write(write, payload.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            payload = pipe.read()
        os.waitpid(pid, 0)
        return json.loads(payload)


    def mp_target(queue):
        try:
            queue.put(child_report())
        except BaseException as exc:
            queue.put({"error": repr(exc)})


    def mp_child():
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        process = ctx.Process(target=mp_target, args=(queue,))
        process.start()
        report = queue.get(timeout=60)
        process.join(10)
        return report


    assert all(e.wait(10) for e in SLOW.values()), "a loader never reached its import"
    release = hold_our_locks() if "locks" in MODE else threading.Event()
    forked_while_importing = prices._snapshots is None and not tokens.is_loaded("o200k_base")
    children = [fork_child() if "mp" not in MODE else mp_child()]
    release.set()
    assert not instrument()
    assert tokens.wait_until_loaded(30) and prices.wait_until_loaded(30)
    parent_spans = calls()
    children.append(fork_child() if "mp" not in MODE else mp_child())  # a later fork, all loaded
    print(json.dumps({"parent": parent_spans, "children": children, "forked_while_importing": forked_while_importing}))
    '''
)


def run_harness(mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", HARNESS, mode], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(result: dict) -> None:
    parent = result["parent"]
    assert len(parent) == 2
    for attrs in parent:
        assert "tokenkpi.tokens.estimated" not in attrs  # exact
        assert attrs["tokenkpi.cost.usd"] > 0
        assert attrs["tokenkpi.context.tool_results_tokens"] > 500
        assert attrs["tokenkpi.tool_calls.duplicate_count"] == 1
    for child in result["children"]:
        assert "error" not in child, child
        assert child["tokens_loaded"] and child["prices_loaded"] and child["log_once"]
        assert child["spans"] == parent  # exact counts and the same cost as the parent's
    # The child forked mid-loading instrumented itself; the later one inherited the parent's instrumentation.
    assert [child["inherited_instrumentation"] for child in result["children"]] == [False, True]


@pytest.mark.parametrize("mode", ["fork", "fork+locks", "mp", "mp+locks"])
def test_children_forked_mid_loading_produce_exact_spans(mode):
    result = run_harness(mode)
    assert result["forked_while_importing"]  # the fork really landed inside the loaders' imports
    check(result)
