"""The README's demo runs as written and prints what its tokens bought."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert [row[2] for row in rows] == ["236", "318", "360", "360", "-", "392"]  # the scripted usage
    # Call 2 asks for the weather again with its arguments reordered: a duplicate tool call.
    assert int(rows[1][6]) == n("get_weather") + n('{"unit": "C", "city": "Paris"}')
    # Call 3 sends the duplicate's result back (duplicate waste once) and is cut off at max_tokens.
    assert int(rows[2][6]) == n(json.dumps(get_weather("Paris", "C")))
    assert int(rows[2][7]) == int(rows[2][3]) == 24
    # Call 4 repeats call 3's request: all of its input and output.
    assert int(rows[3][8]) == 360 + 24 and int(rows[3][10]) == 384
    # Call 6 (the retry of failed call 5): re-sent history minus the 256 tokens served from the cache.
    assert rows[4][1] == "error" and int(rows[5][4]) == 256 and int(rows[5][5]) == 35
    (task,) = [line for line in lines if line.startswith("task travel-assistant")]
    assert "6 model calls" in task and "outcome success" in task


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
