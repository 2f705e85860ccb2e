"""The ``otel-tokenkpi`` command: ``demo`` (the agent waste demo) and ``report`` (a span file's KPIs).

Exit status: 0 on success; 1 when ``report`` skipped malformed lines (the report is still printed, from
every other line) or when ``demo --otlp`` could not deliver its spans (the table is still printed); 2 for
usage errors, a missing or unreadable file, or a demo that cannot run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._words import plural
from .version import __version__

PROGRESS_MIN_BYTES = 4 * 2**20  # smaller files read in a blink: no bar
MAX_BAD_LINES_SHOWN = 20
OTLP_PROTOCOLS = ("http/protobuf", "grpc")

DESCRIPTION = "See what your LLM tokens bought: waste, cost and tokens per successful task."
DEMO_HELP = (
    "Run a small tool-calling agent that wastes tokens in the common ways (re-sent history, a duplicate "
    "tool call, an unused tool schema, a truncated answer, a repeated request, a failed call and its "
    "retry) against a fake provider embedded in the package: no API key, no network. Prints the waste "
    "of each model call and the task's roll-up."
)
REPORT_HELP = (
    "Read files of OTLP JSON lines (the OpenTelemetry Collector's file exporter format, or "
    "`otel-tokenkpi demo --out`; plain or gzip'd; a directory means every file in it, e.g. the exporter's "
    "rotated files) and print waste by model, by kind and by task; with --by ATTR, tokens per success, "
    "waste ratio, cost per success and top waste kind per value of ATTR. --html writes the same as one "
    "self-contained page with charts and a 'what to fix first' list."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-tokenkpi", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="run the agent waste demo", description=DEMO_HELP)
    demo.add_argument(
        "--provider",
        choices=("openai", "anthropic"),
        default="openai",
        help="which SDK the agent uses, against its embedded fake server (default: openai)",
    )
    demo.add_argument(
        "--otlp",
        metavar="URL",
        help="also send the spans over OTLP, e.g. http://localhost:4318 (HTTP: /v1/traces is added when the URL "
        "has no path) or http://localhost:4317 with --otlp-protocol grpc",
    )
    demo.add_argument(
        "--otlp-protocol",
        choices=OTLP_PROTOCOLS,
        help="OTLP transport for --otlp (default: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, "
        "else http/protobuf)",
    )
    demo.add_argument("--console", action="store_true", help="also print every span as JSON on stdout")
    demo.add_argument(
        "--out", metavar="FILE", help="also append the spans to FILE as OTLP JSON lines (read it with `report`)"
    )

    report = commands.add_parser("report", help="summarize files of OTLP JSON lines", description=REPORT_HELP)
    report.add_argument(
        "files",
        metavar="FILE",
        nargs="+",
        help="OTLP JSON lines, one ExportTraceServiceRequest per line (.gz too), or a directory of such files",
    )
    report.add_argument(
        "--by",
        metavar="ATTR",
        help="group tasks by this span (or resource) attribute (e.g. team, set with "
        "otel_tokenkpi.attributes(team=...), or service.name)",
    )
    report.add_argument(
        "--html", metavar="OUT", help="also write the report as one self-contained HTML page (charts, no scripts)"
    )
    report.add_argument(
        "--reader",
        choices=("auto", "python", "msgspec"),
        default="auto",
        help="JSON reader: msgspec (about 2.5x faster; pip install 'otel-tokenkpi[fast]') or the standard "
        "library's (default: msgspec when installed)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would blame the top-level command and show its usage, not the subcommand's
        _subcommand(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "demo":
        return run_demo(
            args.provider, otlp=args.otlp, otlp_protocol=args.otlp_protocol, console=args.console, out=args.out
        )
    return run_report(args.files, by=args.by, html=args.html, reader=args.reader)


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    return parser


def _error(message: str) -> int:
    print(f"otel-tokenkpi: error: {message}", file=sys.stderr)
    return 2


def traces_url(url: str, protocol: str = "http/protobuf") -> str:
    """``http://host:4318`` -> ``http://host:4318/v1/traces``; a URL with a path is used as given. gRPC
    takes the URL as it is (``http://`` means an insecure channel)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        example = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
        raise ValueError(f"--otlp needs an http(s) URL such as {example}, got {url!r}")
    if protocol != "grpc" and parts.path in ("", "/"):
        parts = parts._replace(path="/v1/traces")
    return urlunsplit(parts)


def resolve_protocol(chosen: str | None) -> str:
    """The option, else the standard environment variables, else http/protobuf."""
    protocol = (
        chosen
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol not in OTLP_PROTOCOLS:
        raise ValueError(f"OTLP protocol must be one of {', '.join(OTLP_PROTOCOLS)}, got {protocol!r}")
    return protocol


def _otlp_exporter(endpoint: str, protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=endpoint)


def run_demo(
    provider: str,
    *,
    otlp: str | None = None,
    otlp_protocol: str | None = None,
    console: bool = False,
    out: str | None = None,
) -> int:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    from .demo import WasteTable, run_agent
    from .jsonl_exporter import OTLPJsonLinesSpanExporter
    from .otlp_guard import ExportGuard, GuardedSpanExporter
    from .processor import TokenKPISpanProcessor

    try:
        protocol = resolve_protocol(otlp_protocol) if otlp else "http/protobuf"
        endpoint = traces_url(otlp, protocol) if otlp else None
        file_exporter = OTLPJsonLinesSpanExporter(out) if out else None
    except (ValueError, OSError) as exc:
        return _error(f"{exc}")
    table = WasteTable()
    fan_out = SynchronousMultiSpanProcessor()
    fan_out.add_span_processor(table)
    if file_exporter is not None:
        fan_out.add_span_processor(BatchSpanProcessor(file_exporter))
    guard = None
    if endpoint is not None:
        guard = ExportGuard(endpoint, report=lambda line: None)  # judged below, in one line of our own
        fan_out.add_span_processor(BatchSpanProcessor(GuardedSpanExporter(_otlp_exporter(endpoint, protocol), guard)))
    if console:
        fan_out.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "tokenkpi-demo"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(TokenKPISpanProcessor(fan_out))
    try:
        answer = run_agent(provider, tracer_provider=tracer_provider)
    except ImportError as exc:
        return _error(f"the {provider} demo needs the {provider} SDK ({exc}): pip install 'otel-tokenkpi[{provider}]'")
    except RuntimeError as exc:
        return _error(f"{exc}")
    finally:
        tracer_provider.shutdown()  # flushes every exporter
    print(f"Agent answer: {answer}\n")
    table.print(sys.stdout)
    if file_exporter is not None:
        print(f"\nSpans appended to {out} (OTLP JSON lines). Next: otel-tokenkpi report {out} --by team")
    if guard is not None and guard.failures:
        print(
            f"otel-tokenkpi: error: the spans were not sent to {endpoint} (OTLP {protocol}): {guard.last_error}",
            file=sys.stderr,
        )
        return 1
    if endpoint is not None:
        print(f"\nSpans sent to {endpoint} (OTLP {protocol})")
    return 0


def run_report(
    paths: Sequence[str] | str, *, by: str | None = None, html: str | None = None, reader: str = "auto"
) -> int:
    from . import _report_tables as tables
    from ._span_files import SpanFileError, expand
    from .report import read_report, readers

    paths = [paths] if isinstance(paths, str) else list(paths)
    if reader == "msgspec" and "msgspec" not in readers():
        return _error("--reader msgspec needs msgspec: pip install 'otel-tokenkpi[fast]'")
    try:
        size = sum(os.path.getsize(path) for path in expand(paths))
        progress: Any = sys.stderr if sys.stderr.isatty() and size >= PROGRESS_MIN_BYTES else None
        report = read_report(paths, by=by, progress=progress, reader=reader)
    except SpanFileError as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot read {exc.filename or ' '.join(paths)}: {exc.strerror or exc}")
    name = paths[0] if len(paths) == 1 else f"{len(paths)} paths"
    blocks = [tables.summary(report, name)]
    if report.spans == 0:
        blocks.append(["no spans found"])
    elif by is not None:
        if not report.group_seen:
            blocks.append([f"note: no span carries the attribute {by!r}; everything is in the (none) group"])
        blocks.append(tables.kpi(report, by))
    else:
        blocks += [tables.by_model(report), tables.by_kind(report), tables.by_task(report)]
    if html is not None:
        from .report_html import write_html

        try:
            write_html(report, html, title=name)
        except OSError as exc:
            return _error(f"cannot write {html}: {exc.strerror or exc}")
        blocks.append([f"HTML report written to {html}"])
    print("\n\n".join("\n".join(block) for block in blocks))
    for path, number, reason in report.bad_lines[:MAX_BAD_LINES_SHOWN]:
        print(f"{path}:{number}: skipped malformed line: {reason}", file=sys.stderr)
    if report.bad_line_count > MAX_BAD_LINES_SHOWN:
        more = plural(report.bad_line_count - MAX_BAD_LINES_SHOWN, "more malformed line")
        print(f"... and {more}", file=sys.stderr)
    if report.bad_line_count:
        print(
            f"otel-tokenkpi: {plural(report.bad_line_count, 'malformed line')} skipped; the report above is from "
            f"the other {plural(report.lines - report.bad_line_count, 'line')}",
            file=sys.stderr,
        )
        return 1
    return 0
