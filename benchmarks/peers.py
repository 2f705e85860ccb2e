"""Overhead side by side with peer instrumentations: same fake server, same workloads, one run, alternating.

Configurations, each a long-lived process (peers in their own pinned virtualenvs, see ``_venvs.py``):

- ``plain`` and ``plain-b``: no instrumentation (two copies: their difference is the measurement noise);
- ``tokenkpi``: otel-tokenkpi (this checkout);
- ``otel-genai``: the official OpenTelemetry ``opentelemetry-instrumentation-genai-openai``;
- ``openllmetry``: OpenLLMetry's ``opentelemetry-instrumentation-openai``;
- ``openinference``: OpenInference's ``openinference-instrumentation-openai``.

Every round runs each workload once per configuration, configurations in a rotated order, while the
others wait; so drift and bursts of load on the machine hit every configuration alike. Workloads
(``_workloads.py``): a short chat call, streamed calls of 200 and of 20 chunks, and a 50-turn
tool-calling conversation whose history grows to ~100k tokens. Added cost = a configuration's
statistic minus the same statistic of ``plain``; the chunk cost is the slope between the 200- and
20-chunk streams. For otel-tokenkpi the runner also counts the tokens its tokenizer encodes over each
conversation, against the tokens of the conversation's distinct texts encoded once.

    python benchmarks/peers.py [--rounds 30] [--quick] [--configs plain,tokenkpi] [--json out.json]

The first run creates the peers' venvs (pip, a minute or two).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import _venvs  # noqa: E402
from _peer_report import summarize, tables  # noqa: E402
from _workloads import SHORT_STREAM_CHUNKS, STREAM_CHUNKS, start_server  # noqa: E402

CONFIGS = ("plain", "plain-b", "tokenkpi", *_venvs.PEERS)
# With --base-python: otel-tokenkpi as installed in another interpreter (e.g. a venv of an earlier commit),
# measured in the same run as this checkout's, for a before/after comparison.
BASE_CONFIG = "tokenkpi-base"
WORKLOADS = ("short", "stream", "stream-short", "conversation")
RUNNER = ROOT / "benchmarks" / "peer_runner.py"
# Message content capture off, in each instrumentation's own terms.
CONTENT_OFF = {
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",  # ours and the official one
    "TRACELOOP_TRACE_CONTENT": "false",  # OpenLLMetry
    "OPENINFERENCE_HIDE_INPUTS": "true",  # OpenInference
    "OPENINFERENCE_HIDE_OUTPUTS": "true",
}


class Runner:
    """A configuration's process: sends it commands, reads its answers."""

    def __init__(self, config: str, python: str, urls: list[str], env: dict[str, str]) -> None:
        self.config = config
        runs_as = "tokenkpi" if config == BASE_CONFIG else config  # the base is otel-tokenkpi, elsewhere
        self.proc = subprocess.Popen(
            [python, str(RUNNER), runs_as, *urls], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        hello = self._read()
        if not hello.get("ready"):
            raise RuntimeError(f"{config}: runner did not start: {hello}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.config}: runner exited with {self.proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, workload: str, calls: int, seed: int) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"workload": workload, "calls": calls, "seed": seed}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def runner_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_", "OPENINFERENCE_"))}
    env.update(CONTENT_OFF)
    env["PYTHONPATH"] = str(ROOT / "benchmarks")
    if not env.get("TIKTOKEN_CACHE_DIR"):
        from seed_tiktoken_cache import seed

        env["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="tiktoken-")
        seed(env["TIKTOKEN_CACHE_DIR"])
    return env


def _run_round(
    r: int, runners: list[Runner], calls: dict[str, int], raw: dict[str, Any], tokenizer: list[dict[str, float]]
) -> None:
    """Round ``r``: every workload once per configuration, in an order rotated (and reversed every other
    round) so that drift and bursts of load hit every configuration alike."""
    shift = r % len(runners)
    order = runners[shift:] + runners[:shift]
    if r % 2:
        order.reverse()
    for workload in WORKLOADS:
        for runner in order:
            answer = runner.run(workload, calls[workload], seed=r)
            for metric, by_config in raw.items():
                by_config[runner.config][workload].append(answer[metric])
            if "encoded_tokens" in answer:
                keys = ("encoded_tokens", "unique_tokens", "encode_cpu_s")
                tokenizer.append({k: answer[k] for k in keys} | {"calls": len(answer["cpu"])})


def measure(configs: list[str], rounds: int, calls: dict[str, int], base_python: str | None = None) -> dict[str, Any]:
    """Run every round; returns raw per-call timings and tokenizer tallies per configuration."""
    pythons = {config: base_python or "" if config == BASE_CONFIG else _venvs.ensure(config) for config in configs}
    env = runner_env()
    servers = [start_server(kind) for kind in ("text", "stream", "stream-short", "tools")]
    runners: list[Runner] = []
    raw: dict[str, Any] = {m: {c: {w: [] for w in WORKLOADS} for c in configs} for m in ("timings", "cpu", "thread")}
    tokenizer: list[dict[str, float]] = []
    # otel-tokenkpi (and the base build, when measured), in-process, per clock
    clocks = ("cpu", "thread", "delivered")
    paired: dict[str, dict[str, dict[str, list[float]]]] = {
        config: {c: {"stream": [], "stream-short": []} for c in clocks}
        for config in configs
        if config in ("tokenkpi", BASE_CONFIG)
    }
    try:
        for config in configs:  # one at a time: imports and warm-up stay out of each other's way
            runners.append(Runner(config, pythons[config], [url for _, url in servers], env))
        for r in range(rounds):
            _run_round(r, runners, calls, raw, tokenizer)
            for runner in runners:
                if runner.config in paired:
                    for clock, by_workload in runner.run("paired-stream", calls["stream"], seed=r).items():
                        for workload, diffs in by_workload.items():
                            paired[runner.config][clock][workload].extend(diffs)
            print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        for runner in runners:
            runner.close()
        for proc, _ in servers:
            proc.kill()
    versions = {c: _venvs.installed_version(c) for c in configs if c in _venvs.PEERS}
    return {
        "raw": raw,
        "tokenizer": tokenizer,
        "versions": versions,
        "paired_stream": paired.get("tokenkpi", {}),
        "paired_stream_base": paired.get(BASE_CONFIG, {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--short-calls", type=int, default=60)
    parser.add_argument("--stream-calls", type=int, default=10)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds, few calls, 5 turns")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    parser.add_argument("--json", type=Path, help="also write the summary (and raw timings) here")
    parser.add_argument(
        "--base-python",
        help=f"an interpreter with another otel-tokenkpi installed (a venv of an earlier commit): adds {BASE_CONFIG!r}",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.short_calls, args.stream_calls, args.turns = 2, 5, 2, 5
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if args.base_python and BASE_CONFIG not in configs:
        configs.append(BASE_CONFIG)
    unknown = set(configs) - set(CONFIGS) - ({BASE_CONFIG} if args.base_python else set())
    if unknown or "plain" not in configs:
        parser.error(f"--configs needs 'plain' and names from {CONFIGS}; unknown: {sorted(unknown)}")
    calls = {"short": args.short_calls, "stream": args.stream_calls, "stream-short": args.stream_calls}
    calls["conversation"] = args.turns
    started = time.monotonic()
    measured = measure(configs, args.rounds, calls, args.base_python)
    summary = summarize(measured, chunks=(STREAM_CHUNKS, SHORT_STREAM_CHUNKS))
    summary["run"] = {
        "rounds": args.rounds,
        "calls": calls,
        "configs": configs,
        "seconds": round(time.monotonic() - started, 1),
        "command": "python benchmarks/peers.py " + " ".join(sys.argv[1:]),
    }
    print(tables(summary))
    if args.json is not None:
        args.json.write_text(json.dumps({**summary, "raw": measured["raw"]}, indent=1))


if __name__ == "__main__":
    main()
