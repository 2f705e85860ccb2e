"""Smoke test of ``benchmarks/peers.py --quick``: otel-tokenkpi against the uninstrumented baseline.

Runs the real script (fake servers, runner processes, our instrumentor) with no peer venvs, and checks the
shape of what it reports, never the timings (those belong to the benchmark, not to a test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("short", "stream", "stream-short", "conversation")
STAT_KEYS = {"median_us", "p95_us", "added_median_us", "added_p95_us", "round_iqr_us"}


@pytest.mark.slow
def test_quick_run_reports_every_workload_and_target(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", "")}
    if not env["TIKTOKEN_CACHE_DIR"]:
        del env["TIKTOKEN_CACHE_DIR"]  # the script seeds a temporary cache itself
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "peers.py"),
            "--quick",
            "--configs",
            "plain,tokenkpi",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())

    for metric in ("wall", "cpu", "thread"):
        configs = summary[metric]["configs"]
        assert set(configs) == {"plain", "tokenkpi"}
        for stats in configs.values():
            for workload in WORKLOADS:
                assert set(stats[workload]) >= STAT_KEYS
            assert set(stats["conversation"]) >= {"first_turns_added_us", "last_turns_added_us"}
            assert set(stats["per_chunk"]) == {"marginal_us", "upper_bound_us"}
        # No peers ran: only the targets that need none are judged.
        targets = [t["target"] for t in summary[metric]["targets"]]
        assert len(targets) == 2 and targets[0].startswith("streamed chunk") and targets[1].startswith("tokenizer")

    # 2 rounds x 5 turns; the last tool result is never sent; tokens of each distinct text counted once.
    assert len(summary["raw"]["timings"]["tokenkpi"]["conversation"]) == 2
    assert all(len(turns) == 5 for turns in summary["raw"]["timings"]["tokenkpi"]["conversation"])
    tokenizer = summary["tokenizer"]
    assert tokenizer["unique_tokens"] > 0 and tokenizer["encoded_tokens"] > 0
    assert tokenizer["ratio"] == pytest.approx(tokenizer["encoded_tokens"] / tokenizer["unique_tokens"])
    assert tokenizer["encode_cpu_us_per_call"] > 0
    assert set(summary["paired_chunk"]) == {"cpu", "thread", "delivered"}
    for paired in summary["paired_chunk"].values():
        assert paired["pairs"] == 2 * 2  # --quick: 2 rounds x 2 stream calls

    assert "| short chat call | uninstrumented |" in proc.stdout
    assert "| short chat call | **otel-tokenkpi** |" in proc.stdout
    assert "### CPU time of the client process per call" in proc.stdout
    assert "### CPU time of the calling thread per call" in proc.stdout


def test_get_rare_reads_what_getattr_reads() -> None:
    """The per-chunk speed-up found with this benchmark (``get_rare`` avoids pydantic's costly
    missing-attribute path) must read the same values: declared fields, extras, dicts, plain objects."""
    import openai.types.chat as chat

    from otel_tokenkpi.instrumentors._shapes import get_rare

    chunk = chat.ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "choices": [],
            "created": 1,
            "model": "m",
            "object": "chat.completion.chunk",
            "x_groq": {"usage": 1},
        }
    )
    assert get_rare(chunk, "x_groq") == {"usage": 1}  # an extra field of the openai SDK's model
    assert get_rare(chunk, "model") == "m"  # a declared one
    assert get_rare(chunk, "absent") is None
    assert get_rare({"x_groq": 2}, "x_groq") == 2
    assert get_rare(type("Obj", (), {"x_groq": 3})(), "x_groq") == 3
    assert get_rare(None, "x_groq") is None
