"""The README's demo runs as written and prints what its tokens bought."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tiktoken

REPO = Path(__file__).resolve().parents[1]
O200K = tiktoken.get_encoding("o200k_base")


def n(text: str) -> int:
    return len(O200K.encode_ordinary(text))


def test_the_demo_prints_waste_per_call_and_the_task_roll_up():
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "agent_demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [int(row[1]) for row in rows] == [182, 279, 322]  # the scripted usage
    # Call 2 asks for the weather again with its arguments reordered: a duplicate tool call.
    assert int(rows[1][5]) == n("get_weather") + n('{"unit": "C", "city": "Paris"}')
    assert [int(row[6]) for row in rows] == [int(row[4]) + int(row[5]) for row in rows]  # waste = its kinds here
    (task,) = [line for line in lines if line.startswith("task travel-assistant")]
    assert "3 calls" in task and "outcome success" in task
