"""One measured read of a span file, in its own process; prints one JSON line. Used by report_throughput.py.

    python benchmarks/_report_runner.py ENGINE PATH

ENGINE is ``python`` or ``msgspec`` (otel-tokenkpi's readers, the whole report), ``previous:DIR`` (the reader
before this change, its modules copied to DIR by report_throughput.py), or a candidate measured for the
choice of engine: ``parse:json``, ``parse:orjson``, ``parse:msgspec`` (parse every line, nothing else: the
floor of a reader built on that parser) and ``duckdb`` (DuckDB's JSON reader summing the model calls' tokens
in SQL; its span count is the file's). CPU time is this process's (user + system, all threads) around the
read only; peak RSS is the process's, and ``rss_before_mb`` the peak after imports, before reading.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(engine: str, path: str) -> dict[str, Any]:
    from otel_tokenkpi.report import read_report

    before = _rss_mb()
    start, wall = _cpu(), time.perf_counter()
    report = read_report(path, by="team", reader=engine)
    cpu, wall = _cpu() - start, time.perf_counter() - wall
    tasks = report.tasks()
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_before_mb": before,
        "rss_mb": _rss_mb(),
        "spans": report.spans,
        "lines": report.lines,
        "calls": report.calls.calls,
        "errors": report.calls.errors,
        "input_tokens": report.calls.input_tokens,
        "output_tokens": report.calls.output_tokens,
        "waste_tokens": report.calls.waste_tokens,
        "kinds": report.calls.kinds,
        "tasks": tasks.tasks,
        "successes": tasks.successes,
        "failures": tasks.failures,
        "late_outcomes": report.late_outcomes,
        "late_unmatched": report.late_unmatched,
        "bad_lines": report.bad_line_count,
        "by_team_successes": {name: t.successes for name, t, _ in report.by_group()},
    }


def _previous(directory: str, path: str) -> dict[str, Any]:
    sys.path.insert(0, directory)
    from previous_report.report import read_report  # type: ignore[import-not-found]

    before = _rss_mb()
    start, wall = _cpu(), time.perf_counter()
    report = read_report(path, by="team")
    cpu, wall = _cpu() - start, time.perf_counter() - wall
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_before_mb": before,
        "rss_mb": _rss_mb(),
        "spans": report.spans,
        "calls": report.calls.calls,
        "tasks": report.tasks().tasks,
    }


def _parse(parser: str, path: str) -> dict[str, Any]:
    if parser == "json":
        loads = json.loads
    elif parser == "orjson":
        import orjson

        loads = orjson.loads
    else:
        import msgspec

        loads = msgspec.json.Decoder().decode
    before = _rss_mb()
    spans = 0
    start, wall = _cpu(), time.perf_counter()
    with open(path, "rb") as lines:
        for line in lines:
            for resource_spans in loads(line)["resourceSpans"]:
                for scope_spans in resource_spans["scopeSpans"]:
                    spans += len(scope_spans["spans"])
    cpu, wall = _cpu() - start, time.perf_counter() - wall
    return {"cpu_s": cpu, "wall_s": wall, "rss_before_mb": before, "rss_mb": _rss_mb(), "spans": spans}


def _duckdb(path: str) -> dict[str, Any]:
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    before = _rss_mb()
    source = f"read_ndjson_objects('{path}', maximum_object_size = 1000000000)"
    query = f"""
        WITH spans AS (
            SELECT unnest(json_extract(scope, '$.spans[*]')) AS span FROM (
                SELECT unnest(json_extract(resource, '$.scopeSpans[*]')) AS scope FROM (
                    SELECT unnest(json_extract(json, '$.resourceSpans[*]')) AS resource FROM {source})))
        SELECT count(*), sum(CAST(json_extract_string(attribute, '$.value.intValue') AS BIGINT))
               FILTER (WHERE json_extract_string(attribute, '$.key') = 'gen_ai.usage.input_tokens')
        FROM (SELECT span, unnest(json_extract(span, '$.attributes[*]')) AS attribute FROM spans)
    """
    start, wall = _cpu(), time.perf_counter()
    attributes, input_tokens = connection.execute(query).fetchone()  # type: ignore[misc]
    cpu, wall = _cpu() - start, time.perf_counter() - wall
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_before_mb": before,
        "rss_mb": _rss_mb(),
        "attributes": attributes,
        "input_tokens": input_tokens,
    }


def main() -> None:
    engine, path = sys.argv[1], sys.argv[2]
    if engine in ("python", "msgspec"):
        result = _ours(engine, path)
    elif engine.startswith("previous:"):
        result = _previous(engine.split(":", 1)[1], path)
    elif engine.startswith("parse:"):
        result = _parse(engine.split(":", 1)[1], path)
    elif engine == "duckdb":
        result = _duckdb(path)
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    print(json.dumps({"engine": engine, **result}))


if __name__ == "__main__":
    main()
