"""TokenKPISpanProcessor alone (no ``instrument()``): it starts loading the tokenizer data and prices
when it is built, and the first foreign span waits for them, bounded by ``load_timeout_s``.

Each case runs in a fresh process, the only honest cold start: nothing loaded yet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from otel_tokenkpi import TokenKPISpanProcessor, tokens
from otel_tokenkpi import semconv as sc

TESTS = Path(__file__).parent
ASK = "Weather in Paris today?"


def first_span_in_a_fresh_process(load_timeout_s: float, block_tokenizer: bool) -> dict[str, Any]:
    code = (
        f"import json, _foreign_support as s; print(json.dumps(s.cold_start({load_timeout_s!r}, {block_tokenizer!r})))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=TESTS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_first_foreign_span_of_a_process_is_exact_priced_and_has_utilization() -> None:
    attributes = first_span_in_a_fresh_process(load_timeout_s=60.0, block_tokenizer=False)
    o200k = tiktoken.get_encoding("o200k_base")
    assert attributes[sc.CONTEXT_NEW_TOKENS] == len(o200k.encode_ordinary(ASK))
    assert sc.TOKENS_ESTIMATED not in attributes
    assert attributes[sc.CONTEXT_WINDOW] == 128000
    assert attributes[sc.CONTEXT_UTILIZATION] == 1000 / 128000
    assert attributes[sc.COST_USD] > 0


def test_the_wait_is_bounded_a_slower_load_leaves_the_first_span_estimated() -> None:
    attributes = first_span_in_a_fresh_process(load_timeout_s=0.2, block_tokenizer=True)
    assert attributes[sc.TOKENS_ESTIMATED] is True
    assert attributes[sc.CONTEXT_NEW_TOKENS] == tokens.estimate_tokens(ASK)


@pytest.mark.parametrize("value", [-1, "5", True, float("nan")])
def test_load_timeout_must_be_a_number_of_seconds(value: Any) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    with pytest.raises(TypeError, match="load_timeout_s"):
        TokenKPISpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()), load_timeout_s=value)
