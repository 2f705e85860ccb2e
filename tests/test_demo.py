"""The README's demo runs as written and prints what its tokens bought."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken

from otel_tokenkpi.demo import get_weather

REPO = Path(__file__).resolve().parents[1]
O200K = tiktoken.get_encoding("o200k_base")


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


def test_the_demo_prints_waste_per_call_and_the_task_roll_up():
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "agent_waste_demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [row[2] for row in rows] == ["1231", "1316", "1360", "1360", "-", "1394"]  # the scripted usage
    # Call 2 asks for the weather again with its arguments reordered: a duplicate tool call.
    assert int(rows[1][6]) == n("get_weather") + n('{"unit": "C", "city": "Paris"}')
    # Call 3 sends the duplicate's result back (duplicate waste once) and is cut off at max_tokens.
    assert int(rows[2][6]) == n(json.dumps(get_weather("Paris", "C")))
    assert int(rows[2][7]) == int(rows[2][3]) == 24
    # Call 4 repeats call 3's request: all of its input and output; the cache served its prefix.
    assert int(rows[3][8]) == 1360 + 24 and int(rows[3][10]) == 1384 and int(rows[3][4]) == 1280
    # Calls 2, 3 and 6 re-send a prefix the cache could have served (from 1,024 tokens, in 128-token
    # steps) but a time stamp at the top of the system prompt made every new request's prefix new.
    assert [int(rows[i][5]) for i in (1, 2, 5)] == [1152, 1280, 1280]
    assert rows[4][1] == "error" and int(rows[5][4]) == 0
    (task,) = [line for line in lines if line.startswith("task travel-assistant")]
    assert "6 model calls" in task and "outcome success" in task


# Messages each call sends (OpenAI: system + conversation; Anthropic: the system prompt is a parameter).
_MESSAGES = {"openai": [2, 5, 7, 7, 9, 9], "anthropic": [2, 4, 6, 6, 8, 8]}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_every_scripted_figure_is_what_the_provider_would_bill(provider, loaded_data):
    """Each call's billed input is its content (the span's own parts) plus 3 tokens per message and 3 for
    the reply, OpenAI's documented framing; cached tokens follow the provider's cache rules."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_tokenkpi import cache_rules, demo

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert demo.run_agent(provider, tracer_provider=tracer_provider) == demo.ANSWER
    calls = [s.attributes for s in exporter.get_finished_spans() if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(calls) == 6
    rule = cache_rules.rule_for(provider, demo.MODELS[provider])
    assert rule is not None and rule.min_tokens == 1024  # both demo models cache from 1,024 tokens
    for index, (attrs, messages) in enumerate(zip(calls, _MESSAGES[provider], strict=True)):
        if index == 4:  # the HTTP 500: nothing billed
            assert attrs["error.type"] == "InternalServerError" and "gen_ai.usage.input_tokens" not in attrs
            continue
        content = attrs["tokenkpi.context.resent_tokens"] + attrs["tokenkpi.context.new_tokens"]
        assert attrs["tokenkpi.context.unattributed_tokens"] == 3 * messages + 3
        assert attrs["gen_ai.usage.input_tokens"] == content + 3 * messages + 3
        cached = attrs.get("gen_ai.usage.cache_read.input_tokens", 0)
        if index == 3 and provider == "openai":  # the byte-for-byte repeat of call 3: its prefix was seen
            assert cached == demo.openai_cached_tokens(attrs["gen_ai.usage.input_tokens"]) == 1280
        else:  # a new prefix every time (the time stamp), or no cache_control at all (Anthropic)
            assert cached == 0
        if index in (1, 2, 5):
            resent = attrs["tokenkpi.context.resent_tokens"]
            assert resent >= 1024 and attrs["tokenkpi.waste.uncached_resent_tokens"] == rule.cacheable(resent)
        assert ("tokenkpi.tokens.estimated" in attrs) is (provider == "anthropic")  # no public Claude tokenizer


def test_the_quickstart_runs_as_written_without_a_key_and_prints_its_span():
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.rstrip().endswith("\nok")  # the fake server's default reply
    span = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert span["name"] == "chat gpt-4o-mini"
    attrs = span["attributes"]
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (10, 5)
    assert attrs["tokenkpi.context.new_tokens"] == n("Say hi.")
    assert attrs["tokenkpi.waste.tokens"] == 0
