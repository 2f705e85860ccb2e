"""``otel-tokenkpi report`` at fleet scale: spans read per CPU second, and memory against file size.

Generates span files in a temporary directory (never in git; removed at the end) with
``_span_file.write_span_file``, the shapes the report must handle with the attribute sets otel-tokenkpi
really writes:

- **fleet**: a fleet's Collector file output without the example's filter: agent traces with the HTTP, ASGI,
  database and cache spans that common auto-instrumentation writes around them (about a quarter of the spans
  are ones the report reads). ``--spans`` of them (1,000,000 by default, ~1.1 GB); the headline figure.
- **report**: the same fleet through the Collector example's ``filter/genai`` (GenAI spans, roll-ups, late
  outcomes only: two thirds are read, each ~2 KB). Same span count.
- a quarter-size fleet file, to see memory against file size, and a gzip'd copy of it.

Every read runs in its own process (``_report_runner.py``), timed by its own CPU clock (user + system) around
the read only. Engines: otel-tokenkpi's two readers (``msgspec``, the ``[fast]`` extra; ``python``, the
standard library's json) and the reader before this change (``previous``, from git); and, for the choice of
engine, parse-only floors (``parse:json``, ``parse:orjson``, ``parse:msgspec``: every line parsed, nothing
else) and DuckDB's JSON reader summing one attribute in SQL, on a 100,000-span slice. Ratios are between
engines in the same run, as machines drift; the headline pair (msgspec, python on the fleet file) is
repeated, alternating, until ``--repeats`` or the ``--max-seconds`` budget, whichever comes first.

Every otel-tokenkpi read must find exactly the generator's totals (model calls, tokens, waste per kind,
outermost tasks, successes with late outcomes): the script exits 1 otherwise. It reports the target (at
least 200,000 spans per CPU second on the fleet file, memory flat in file size) without failing on it:
timing belongs to this script, not to a test. ``--quick`` is a smoke run on tiny files.

    python benchmarks/report_throughput.py [--spans 1000000] [--repeats 3] [--max-seconds 1200] [--json OUT]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _span_file import Expected, write_span_file  # noqa: E402 - benchmarks/ is on sys.path

TARGET_SPANS_PER_CPU_S = 200_000
PREVIOUS_COMMIT = "c154935"  # the last commit with the reader this change replaced
PREVIOUS_MODULES = ("report.py", "_otlp_json.py", "_progress.py", "semconv.py")
SLICE_SPANS = 100_000


def generate(path: Path, spans: int, *, unfiltered: bool, seed: int = 7) -> Expected:
    started = time.perf_counter()
    with open(path, "w", encoding="utf-8") as out:
        expected = write_span_file(out, spans, seed=seed, unfiltered=unfiltered)
    size = path.stat().st_size / 2**20
    print(f"  {path.name}: {expected.spans:,} spans, {size:,.0f} MiB in {time.perf_counter() - started:.0f} s")
    return expected


def previous_reader(directory: Path) -> str | None:
    """The reader before this change, copied from git into ``directory/previous_report``; None without git."""
    package = directory / "previous_report"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in PREVIOUS_MODULES:
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{PREVIOUS_COMMIT}:otel_tokenkpi/{module}"], capture_output=True
        )
        if shown.returncode != 0:
            return None
        (package / module).write_bytes(shown.stdout)
    return f"previous:{directory}"


def measure(engine: str, path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "_report_runner.py"), engine, str(path)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{engine} on {path.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(result: dict[str, Any], expected: Expected) -> list[str]:
    """What an otel-tokenkpi read got wrong against the generator's totals (empty when all is exact)."""
    wanted = {
        "spans": expected.spans,
        "lines": expected.lines,
        "calls": expected.calls,
        "errors": expected.errors,
        "input_tokens": expected.input_tokens,
        "output_tokens": expected.output_tokens,
        "waste_tokens": expected.waste_tokens,
        "kinds": expected.kinds,
        "tasks": expected.tasks,
        "successes": expected.successes,
        "failures": expected.failures,
        "late_outcomes": expected.late_outcomes,
        "late_unmatched": 0,
        "bad_lines": 0,
        "by_team_successes": dict(expected.by_team_successes),
    }
    return [
        f"{key}: got {result.get(key)!r}, expected {value!r}"
        for key, value in wanted.items()
        if result.get(key) != value
    ]


def rate(result: dict[str, Any], spans: int | None = None) -> float:
    return (spans or result["spans"]) / result["cpu_s"]


def generate_files(work: Path, spans: int) -> tuple[dict[str, Path], dict[str, Any]]:
    """The fleet file, the filtered report file, a quarter-size fleet file (plain and gzip'd) and the
    engines' slice, in ``work``; with the totals each must report."""
    fleet, report_file, small = work / "fleet.jsonl", work / "report.jsonl", work / "fleet-quarter.jsonl"
    expect = {
        "fleet": generate(fleet, spans, unfiltered=True),
        "report": generate(report_file, spans, unfiltered=False),
        "fleet-quarter": generate(small, spans // 4, unfiltered=True),
    }
    gz = work / "fleet-quarter.jsonl.gz"
    with open(small, "rb") as source, gzip.open(gz, "wb", compresslevel=6) as target:
        shutil.copyfileobj(source, target, 2**22)
    expect["fleet-quarter.gz"] = expect["fleet-quarter"]
    sliced = work / "slice.jsonl"
    expect["slice"] = generate(sliced, min(SLICE_SPANS, spans), unfiltered=True)
    files = {"fleet": fleet, "report": report_file, "fleet-quarter": small, "fleet-quarter.gz": gz, "slice": sliced}
    return files, expect


def engine_candidates() -> list[str]:
    """The engines compared on the slice: parsers alone, the report's readers, and DuckDB where installed."""
    candidates = ["parse:json", "python"]
    for engine, module in (
        ("parse:orjson", "orjson"),
        ("parse:msgspec", "msgspec"),
        ("msgspec", "msgspec"),
        ("duckdb", "duckdb"),
    ):
        if importlib.util.find_spec(module):
            candidates.append(engine)
    return candidates


def main() -> int:  # noqa: C901 - a benchmark driver: one flat script of steps reads best here
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans in the fleet and report files")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the headline pair (msgspec, python)")
    parser.add_argument("--max-seconds", type=float, default=1200, help="stop repeating past this run time")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4,000-span files, one round")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep the files")
    args = parser.parse_args()
    if args.quick:
        args.spans, args.repeats = 4_000, 1
    started = time.perf_counter()
    engines = ["msgspec", "python"] if importlib.util.find_spec("msgspec") else ["python"]
    work = Path(tempfile.mkdtemp(prefix="tokenkpi-bench-", dir=args.keep))
    results: dict[str, Any] = {"spans": args.spans, "runs": []}
    problems: list[str] = []
    try:
        print(f"generating in {work}")
        files, expect = generate_files(work, args.spans)
        sliced, slice_spans = files.pop("slice"), min(SLICE_SPANS, args.spans)
        previous = previous_reader(work)

        def run(engine: str, name: str) -> dict[str, Any]:
            result = {"file": name, **measure(engine, files.get(name, sliced))}
            results["runs"].append(result)
            if engine in ("python", "msgspec"):
                problems.extend(f"{engine} on {name}: {p}" for p in check(result, expect[name]))
            spans = result.get("spans") or slice_spans
            print(
                f"  {engine:14s} {name:17s} {result['cpu_s']:7.2f} CPU s  {rate(result, spans):9,.0f} spans/CPU s"
                f"  peak RSS {result['rss_mb']:6.0f} MB"
            )
            return result

        print("one round of everything")
        for name in ("fleet", "report"):
            for engine in engines + ([previous] if previous else []):
                run(engine, name)
        for name in ("fleet-quarter", "fleet-quarter.gz"):
            for engine in engines:
                run(engine, name)
        for engine in engine_candidates():
            run(engine, "slice")
        for round_number in range(1, args.repeats):
            if time.perf_counter() - started > args.max_seconds:
                print(f"time budget of {args.max_seconds:.0f} s spent: {round_number} rounds of the headline pair")
                break
            print(f"headline pair, round {round_number + 1}")
            for engine in engines if round_number % 2 else engines[::-1]:
                run(engine, "fleet")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarize(results, engines)
    results["summary"] = summary
    results["problems"] = problems
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"done in {time.perf_counter() - started:.0f} s")
    if problems:
        print("WRONG TOTALS:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def summarize(results: dict[str, Any], engines: list[str]) -> dict[str, Any]:
    runs = results["runs"]

    def rates(engine: str, name: str) -> list[float]:
        return [rate(r, r.get("spans")) for r in runs if r["engine"] == engine and r["file"] == name and r.get("spans")]

    summary: dict[str, Any] = {}
    for name in ("fleet", "report", "fleet-quarter", "fleet-quarter.gz"):
        for engine in {r["engine"] for r in runs if r["file"] == name}:
            found = rates(engine, name)
            peak = max(r["rss_mb"] for r in runs if r["engine"] == engine and r["file"] == name)
            label = "previous" if engine.startswith("previous:") else engine
            summary[f"{label} on {name}"] = {
                "spans_per_cpu_s": round(statistics.median(found)),
                "runs": len(found),
                "peak_rss_mb": round(peak),
            }
    fast = engines[0]
    pairs = [r for r in runs if r["file"] == "fleet" and r["engine"] in ("msgspec", "python")]
    if "msgspec" in engines and len(pairs) >= 2:
        ratio = statistics.median(rates("msgspec", "fleet")) / statistics.median(rates("python", "fleet"))
        summary["msgspec / python on fleet"] = round(ratio, 2)
    previous = [r for r in runs if r["engine"].startswith("previous:")]
    for name in ("fleet", "report"):
        old = [rate(r) for r in previous if r["file"] == name]
        if old:
            summary[f"{fast} / previous on {name}"] = round(statistics.median(rates(fast, name)) / old[0], 1)
    slice_runs = {r["engine"]: r for r in runs if r["file"] == "slice"}
    summary["slice (100k fleet spans), CPU s"] = {engine: round(r["cpu_s"], 2) for engine, r in slice_runs.items()}
    quarter, full = summary.get(f"{fast} on fleet-quarter"), summary.get(f"{fast} on fleet")
    if quarter and full:
        summary["peak RSS, quarter file vs full file (MB)"] = [quarter["peak_rss_mb"], full["peak_rss_mb"]]
    gz, plain = summary.get(f"{fast} on fleet-quarter.gz"), quarter
    if gz and plain:
        summary["gzip'd / plain throughput"] = round(gz["spans_per_cpu_s"] / plain["spans_per_cpu_s"], 2)
    headline = summary.get(f"{fast} on fleet", {}).get("spans_per_cpu_s", 0)
    summary["target"] = (
        f"{headline:,} spans per CPU second on the fleet file ({fast}): "
        + ("met" if headline >= TARGET_SPANS_PER_CPU_S else "MISSED")
        + f" (target {TARGET_SPANS_PER_CPU_S:,})"
    )
    return summary


if __name__ == "__main__":
    sys.exit(main())
