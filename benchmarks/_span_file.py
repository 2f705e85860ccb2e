"""A synthetic fleet's span file: what the Collector's ``file`` exporter writes for services that use otel-tokenkpi.

Each line is one OTLP/JSON ``ExportTraceServiceRequest`` for one service (up to ``BATCH`` spans, grouped by
instrumentation scope, as a Collector batch holds them). The spans copy the attribute sets otel-tokenkpi
really writes (a model call carries the ~33 attributes of ``otel-tokenkpi demo --out``'s, about 2.2 KB of
JSON), and the traces have the shapes the report must handle:

- agent traces: an HTTP server root enriched by ``TokenKPISpanProcessor`` (roll-ups), a ``task()`` span
  nested in it (roll-ups again: the report must count the task once), model calls under the task, tool
  executions, and for some calls a foreign model-call span nested in ours (another instrumentation's,
  gen_ai.* only: never counted);
- plain agent loops: each model call its own trace, carrying its own roll-ups (no processor needed);
- late outcomes: ``record_outcome`` spans by conversation id, a few batches after the conversation;
- with ``unfiltered=True``, the spans the Collector example's filter drops, as common auto-instrumentation
  writes them around an agent request: the ASGI server's ``http receive`` / ``http send`` spans, the HTTP
  client call to the provider under each model call, a database query or HTTP call under each tool
  execution, session and history queries, cache lookups. About a quarter of such a file's spans are
  ones the report reads: a fleet file written without the filter (other services' spans would dilute
  it further; none are added).

``write_span_file`` returns the totals the report must find, so every reader can be checked exactly.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO

BATCH = 512
DAY_NS = 86_400 * 10**9
START_NS = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z

SERVICES = (("support-bot", "support"), ("search-api", "search"), ("ads-writer", "ads"), ("code-review", "dev"))
MODELS = (  # model, provider, price per input token, per output token, per cached input token
    ("gpt-4o", "openai", 2.5e-6, 10e-6, 1.25e-6),
    ("gpt-4o-mini", "openai", 0.15e-6, 0.6e-6, 0.075e-6),
    ("claude-sonnet-4-6", "anthropic", 3e-6, 15e-6, 0.3e-6),
    ("gemini-2.5-flash", "gcp.gemini", 0.3e-6, 2.5e-6, 0.075e-6),
)
TASKS = ("triage", "answer", "summarize", "review")
TOOLS = ("search_docs", "get_order", "refund", "escalate")
KINDS = ("failed_call", "repeated_request", "truncated_output", "duplicate_tool_call", "uncached_resent")
KIND_KEYS = {
    "failed_call": "tokenkpi.waste.failed_call_tokens",
    "repeated_request": "tokenkpi.waste.repeated_request_tokens",
    "truncated_output": "tokenkpi.waste.truncated_output_tokens",
    "duplicate_tool_call": "tokenkpi.waste.duplicate_tool_call_tokens",
    "uncached_resent": "tokenkpi.waste.uncached_resent_tokens",
}
SCOPE_OURS = ("otel_tokenkpi.instrumentors.openai", "0.1.0")
SCOPE_TASKS = ("otel_tokenkpi", "0.1.0")
SCOPE_FOREIGN = ("opentelemetry.instrumentation.openai_v2", "2.1b0")
SCOPE_HTTP = ("opentelemetry.instrumentation.fastapi", "0.52b0")
SCOPE_HTTPX = ("opentelemetry.instrumentation.httpx", "0.52b0")
SCOPE_DB = ("opentelemetry.instrumentation.psycopg", "0.52b0")
SCOPE_REDIS = ("opentelemetry.instrumentation.redis", "0.52b0")


@dataclass
class Expected:
    """What the report must find: model calls and outermost tasks summed, late outcomes counted."""

    spans: int = 0
    lines: int = 0
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    waste_tokens: int = 0
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    tasks: int = 0  # outermost roll-up spans
    successes: int = 0  # in-band and late
    failures: int = 0
    late_outcomes: int = 0
    by_team_successes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _s(key: str, value: str) -> str:
    return f'{{"key":"{key}","value":{{"stringValue":"{value}"}}}}'


def _i(key: str, value: int) -> str:
    return f'{{"key":"{key}","value":{{"intValue":"{value}"}}}}'


def _d(key: str, value: float) -> str:
    return f'{{"key":"{key}","value":{{"doubleValue":{value!r}}}}}'


def _span(
    trace: str, span: str, parent: str | None, name: str, kind: int, start: int, end: int, attrs: list[str], error=False
) -> str:
    parent_field = f'"parentSpanId":"{parent}",' if parent else ""
    status = '{"code":2,"message":"InternalServerError"}' if error else "{}"
    return (
        f'{{"traceId":"{trace}","spanId":"{span}",{parent_field}"name":"{name}","kind":{kind},'
        f'"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","attributes":[{",".join(attrs)}],'
        f'"status":{status},"flags":256}}'
    )


class _Writer:
    """Buffers spans per service and scope; writes a line per ``BATCH`` spans of a service."""

    def __init__(self, out: IO[str], expected: Expected) -> None:
        self.out = out
        self.expected = expected
        self.buffers: dict[int, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
        self.counts: dict[int, int] = defaultdict(int)

    def add(self, service: int, scope: tuple[str, str], span: str) -> None:
        self.buffers[service][scope].append(span)
        self.counts[service] += 1
        self.expected.spans += 1
        if self.counts[service] >= BATCH:
            self.flush(service)

    def flush(self, service: int) -> None:
        scopes = self.buffers.pop(service, {})
        if not scopes:
            return
        self.counts[service] = 0
        name, _ = SERVICES[service]
        resource = ",".join(
            (
                _s("service.name", name),
                _s("service.instance.id", f"{service:08x}-0000-4000-8000-000000000000"),
                _s("telemetry.sdk.language", "python"),
                _s("telemetry.sdk.name", "opentelemetry"),
                _s("telemetry.sdk.version", "1.39.1"),
            )
        )
        scope_spans = ",".join(
            f'{{"scope":{{"name":"{scope}","version":"{version}"}},"spans":[{",".join(spans)}]}}'
            for (scope, version), spans in scopes.items()
        )
        self.out.write(
            f'{{"resourceSpans":[{{"resource":{{"attributes":[{resource}]}},"scopeSpans":[{scope_spans}]}}]}}\n'
        )
        self.expected.lines += 1

    def close(self) -> None:
        for service in list(self.buffers):
            self.flush(service)


@dataclass
class _Call:
    input_tokens: int
    output_tokens: int
    cached: int
    waste: dict[str, int]
    cost: float
    waste_cost: float
    error: bool


class Generator:
    def __init__(self, out: IO[str], *, seed: int, days: float, unfiltered: bool, spans: int) -> None:
        self.rng = random.Random(seed)
        self.expected = Expected()
        self.writer = _Writer(out, self.expected)
        self.days = days
        self.unfiltered = unfiltered
        self.target = spans
        self.pending_outcomes: list[tuple[int, int, str, str, bool]] = []  # due span count, service, conv, team, ok

    def ids(self) -> tuple[str, str]:
        return f"{self.rng.getrandbits(128):032x}", f"{self.rng.getrandbits(64):016x}"

    def span_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def now(self) -> int:
        """Time advances with the spans written, over ``days`` days."""
        return START_NS + int(self.expected.spans / self.target * self.days * DAY_NS)

    def call_numbers(self, model: int, turn: int) -> _Call:
        rng = self.rng
        _, _, p_in, p_out, p_cached = MODELS[model]
        error = rng.random() < 0.02
        if error:
            return _Call(0, 0, 0, dict.fromkeys(KINDS, 0), 0.0, 0.0, True)
        input_tokens = 300 + turn * rng.randint(150, 900)
        output_tokens = rng.randint(20, 400)
        cached = (input_tokens * rng.randint(0, 60) // 100) if rng.random() < 0.4 else 0
        waste = dict.fromkeys(KINDS, 0)
        resent = max(0, input_tokens - 300 - cached) if turn else 0
        if rng.random() < 0.03:
            waste["repeated_request"] = input_tokens + output_tokens
        else:
            if rng.random() < 0.06:
                waste["truncated_output"] = output_tokens
            if turn and rng.random() < 0.08:
                waste["duplicate_tool_call"] = min(resent, rng.randint(10, 200))
            waste["uncached_resent"] = max(0, resent - waste["duplicate_tool_call"])
        cost = (input_tokens - cached) * p_in + cached * p_cached + output_tokens * p_out
        total = sum(waste.values())
        waste_cost = cost * total / (input_tokens + output_tokens)
        return _Call(input_tokens, output_tokens, cached, waste, cost, waste_cost, False)

    def model_call(
        self,
        service: int,
        trace: str,
        span: str,
        parent: str | None,
        model: int,
        call: _Call,
        start: int,
        team: str,
        conversation: str,
        rollup: list[str] | None,
    ) -> None:
        name, provider = MODELS[model][0], MODELS[model][1]
        end = start + self.rng.randint(300, 9000) * 10**6
        attrs = [
            _s("team", team),
            _s("gen_ai.conversation.id", conversation),
            _s("gen_ai.operation.name", "chat"),
            _s("gen_ai.provider.name", provider),
            _s("gen_ai.request.model", name),
            _s("server.address", "api.example.com"),
            _i("server.port", 443),
            _i("gen_ai.request.max_tokens", 400),
        ]
        if not call.error:
            finish = "length" if call.waste["truncated_output"] else "stop"
            attrs += [
                _s("gen_ai.response.id", f"resp-{span}"),
                _s("gen_ai.response.model", name),
                f'{{"key":"gen_ai.response.finish_reasons","value":{{"arrayValue":{{"values":[{{"stringValue":"{finish}"}}]}}}}}}',
                _i("gen_ai.usage.input_tokens", call.input_tokens),
                _i("gen_ai.usage.output_tokens", call.output_tokens),
                _i("gen_ai.usage.cache_read.input_tokens", call.cached),
                _i("gen_ai.usage.reasoning.output_tokens", 0),
            ]
        attrs += [
            _i("tokenkpi.tools.defined_count", 3),
            _i("tokenkpi.context.system_tokens", 16),
            _i("tokenkpi.context.tool_definitions_tokens", 167),
            _i("tokenkpi.context.tool_results_tokens", 70),
            _i("tokenkpi.context.window", 128000),
            _i("tokenkpi.context.resent_tokens", call.waste["uncached_resent"] + call.cached),
            _i("tokenkpi.context.new_tokens", 13),
        ]
        if call.error:
            attrs += [_i("tokenkpi.waste.failed_call_tokens", 0), _i("tokenkpi.waste.tokens", 0)]
            attrs += [_d("tokenkpi.waste.cost.usd", 0.0), _s("error.type", "InternalServerError")]
        else:
            total = sum(call.waste.values())
            attrs += [
                _i("tokenkpi.tool_calls.count", 1),
                _d("tokenkpi.context.utilization", call.input_tokens / 128000),
                _d("tokenkpi.cost.usd", call.cost),
                _i("tokenkpi.tool_calls.duplicate_count", int(call.waste["duplicate_tool_call"] > 0)),
                *(_i(KIND_KEYS[kind], call.waste[kind]) for kind in KINDS),
                _i("tokenkpi.waste.tokens", total),
                _d("tokenkpi.waste.ratio", total / (call.input_tokens + call.output_tokens)),
                _d("tokenkpi.waste.cost.usd", call.waste_cost),
            ]
        attrs += rollup or []
        self.writer.add(
            service, SCOPE_OURS, _span(trace, span, parent, f"chat {name}", 3, start, end, attrs, call.error)
        )
        self.count_call(call)
        if self.rng.random() < 0.2:  # another instrumentation's span of the same call, nested in ours
            foreign = [
                _s("gen_ai.operation.name", "chat"),
                _s("gen_ai.system", provider),
                _s("gen_ai.request.model", name),
                _i("gen_ai.usage.input_tokens", call.input_tokens),
                _i("gen_ai.usage.output_tokens", call.output_tokens),
                _s("server.address", "api.example.com"),
            ]
            child = self.span_id()
            self.writer.add(
                service,
                SCOPE_FOREIGN,
                _span(trace, child, span, f"chat {name}", 3, start + 10**5, end - 10**5, foreign),
            )
        if self.unfiltered:
            http = [
                _s("http.request.method", "POST"),
                _s("url.full", "https://api.example.com/v1/chat/completions"),
                _s("server.address", "api.example.com"),
                _i("server.port", 443),
                _i("http.response.status_code", 500 if call.error else 200),
                _s("network.protocol.version", "1.1"),
            ]
            child = self.span_id()
            self.writer.add(service, SCOPE_HTTPX, _span(trace, child, span, "POST", 3, start + 2 * 10**5, end, http))

    def db_span(self, service: int, trace: str, parent: str, start: int, name: str, query: str) -> None:
        attrs = [
            _s("db.system.name", "postgresql"),
            _s("db.namespace", "agents"),
            _s("db.query.text", query),
            _s("server.address", "db.internal"),
            _i("server.port", 5432),
        ]
        self.writer.add(service, SCOPE_DB, _span(trace, self.span_id(), parent, name, 3, start, start + 10**6, attrs))

    def count_call(self, call: _Call) -> None:
        e = self.expected
        e.calls += 1
        e.errors += call.error
        e.input_tokens += call.input_tokens
        e.output_tokens += call.output_tokens
        for kind in KINDS:
            e.kinds[kind] += call.waste[kind]
        e.waste_tokens += sum(call.waste.values())

    @staticmethod
    def rollup_attrs(calls: list[_Call], outcome: str | None, unused: int) -> list[str]:
        tokens_in = sum(c.input_tokens for c in calls)
        tokens_out = sum(c.output_tokens for c in calls)
        waste = sum(sum(c.waste.values()) for c in calls)
        attrs = [
            _i("tokenkpi.trace.llm_calls", len(calls)),
            _i("tokenkpi.trace.input_tokens", tokens_in),
            _i("tokenkpi.trace.output_tokens", tokens_out),
            _i("tokenkpi.trace.cache_read_tokens", sum(c.cached for c in calls)),
            _i("tokenkpi.trace.waste.tokens", waste),
            _i("tokenkpi.trace.waste.unused_tool_definitions_tokens", unused),
            _i("tokenkpi.trace.tool_calls", len(calls)),
            _i("tokenkpi.trace.max_tool_fanout", 1),
            _i("tokenkpi.trace.duplicate_tool_calls", sum(c.waste["duplicate_tool_call"] > 0 for c in calls)),
            _d("tokenkpi.trace.cost.usd", sum(c.cost for c in calls)),
            _d("tokenkpi.trace.waste.cost.usd", sum(c.waste_cost for c in calls)),
        ]
        if tokens_in + tokens_out:
            attrs.append(_d("tokenkpi.trace.waste.ratio", waste / (tokens_in + tokens_out)))
        if outcome:
            attrs.append(_s("tokenkpi.outcome", outcome))
        if outcome == "success":
            attrs.append(_d("tokenkpi.trace.tokens_per_success", float(tokens_in + tokens_out)))
        return attrs

    def outcome(self) -> str | None:
        draw = self.rng.random()
        return "success" if draw < 0.7 else "failure" if draw < 0.9 else None

    def count_outcome(self, outcome: str | None, team: str) -> None:
        self.expected.successes += outcome == "success"
        self.expected.failures += outcome == "failure"
        if outcome == "success":
            self.expected.by_team_successes[team] += 1

    def agent_trace(self) -> None:
        rng = self.rng
        service = rng.randrange(len(SERVICES))
        team = SERVICES[service][1]
        task = TASKS[rng.randrange(len(TASKS))]
        trace, root = self.ids()
        task_span = self.span_id()
        conversation = f"conv-{trace[:12]}"
        model = rng.randrange(len(MODELS))
        turns = rng.randint(2, 8)
        start = self.now()
        t = start + 5 * 10**6
        calls = []
        for turn in range(turns):
            call = self.call_numbers(model, turn)
            calls.append(call)
            self.model_call(service, trace, self.span_id(), task_span, model, call, t, team, conversation, None)
            t += 2 * 10**9
            if turn < turns - 1:
                tool = TOOLS[rng.randrange(len(TOOLS))]
                attrs = [_s("gen_ai.operation.name", "execute_tool"), _s("gen_ai.tool.name", tool), _s("team", team)]
                tool_span = self.span_id()
                self.writer.add(
                    service,
                    SCOPE_TASKS,
                    _span(trace, tool_span, task_span, f"execute_tool {tool}", 1, t, t + 10**8, attrs),
                )
                if self.unfiltered:
                    self.db_span(
                        service, trace, tool_span, t + 10**7, "SELECT orders", "SELECT * FROM orders WHERE id = $1"
                    )
                t += 2 * 10**8
        outcome = self.outcome()
        unused = rng.choice((0, 0, 167, 334)) * turns
        task_attrs = [
            _s("team", team),
            _s("gen_ai.operation.name", "invoke_workflow"),
            _s("gen_ai.agent.name", task),
            _s("gen_ai.workflow.name", task),
            _s("gen_ai.conversation.id", conversation),
            *self.rollup_attrs(calls, outcome, unused),
        ]
        self.writer.add(
            service,
            SCOPE_TASKS,
            _span(trace, task_span, root, f"invoke_workflow {task}", 1, start + 10**6, t, task_attrs),
        )
        if self.unfiltered:
            self.db_span(
                service, trace, root, start + 2 * 10**5, "SELECT sessions", "SELECT * FROM sessions WHERE id = $1"
            )
            self.db_span(
                service, trace, root, start + 5 * 10**5, "SELECT messages", "SELECT * FROM messages WHERE c = $1"
            )
            self.db_span(service, trace, root, t, "INSERT messages", "INSERT INTO messages (c, body) VALUES ($1, $2)")
            for op in ("GET", "SETEX"):
                redis = [_s("db.system.name", "redis"), _s("db.operation.name", op), _s("server.address", "cache")]
                redis.append(_i("server.port", 6379))
                self.writer.add(service, SCOPE_REDIS, _span(trace, self.span_id(), root, op, 3, t, t + 10**5, redis))
            for event in ("http receive", "http send"):
                asgi = [
                    _s("asgi.event.type", f"http.response.{event.split()[1]}"),
                    _i("http.response.status_code", 200),
                ]
                self.writer.add(
                    service,
                    SCOPE_HTTP,
                    _span(trace, self.span_id(), root, f"POST /v1/ask {event}", 1, t, t + 10**5, asgi),
                )
        root_attrs = [
            _s("http.request.method", "POST"),
            _s("http.route", "/v1/ask"),
            _s("url.path", "/v1/ask"),
            _s("url.scheme", "https"),
            _i("http.response.status_code", 200),
            _s("team", team),
            *self.rollup_attrs(calls, outcome, unused),
        ]
        self.writer.add(
            service, SCOPE_HTTP, _span(trace, root, None, "POST /v1/ask", 2, start, t + 2 * 10**6, root_attrs)
        )
        self.expected.tasks += 1  # the root; the task inside it is nested
        self.count_outcome(outcome, team)
        if rng.random() < 0.25:
            self.pending_outcomes.append(
                (self.expected.spans + 3 * BATCH, service, conversation, team, rng.random() < 0.8)
            )

    def plain_loop(self) -> None:
        """One conversation of calls that are each their own trace (no task, no processor)."""
        rng = self.rng
        service = rng.randrange(len(SERVICES))
        team = SERVICES[service][1]
        model = rng.randrange(len(MODELS))
        conversation = f"loop-{rng.getrandbits(48):012x}"
        for turn in range(rng.randint(2, 5)):
            call = self.call_numbers(model, turn)
            trace, span = self.ids()
            self.model_call(
                service,
                trace,
                span,
                None,
                model,
                call,
                self.now(),
                team,
                conversation,
                self.rollup_attrs([call], None, 0),
            )
            self.expected.tasks += 1
        if rng.random() < 0.4:
            self.pending_outcomes.append(
                (self.expected.spans + 2 * BATCH, service, conversation, team, rng.random() < 0.7)
            )

    def late_outcomes(self, final: bool = False) -> None:
        due = [item for item in self.pending_outcomes if final or item[0] <= self.expected.spans]
        if not due:
            return
        self.pending_outcomes = [item for item in self.pending_outcomes if item not in due]
        for _, service, conversation, team, success in due:
            trace, span = self.ids()
            outcome = "success" if success else "failure"
            attrs = [_s("team", team), _s("tokenkpi.outcome", outcome), _s("gen_ai.conversation.id", conversation)]
            t = self.now()
            self.writer.add(service, SCOPE_TASKS, _span(trace, span, None, "record_outcome", 1, t, t + 1000, attrs))
            self.expected.late_outcomes += 1
            self.count_outcome(outcome, team)

    def run(self) -> Expected:
        while self.expected.spans < self.target:
            if self.rng.random() < 0.7:
                self.agent_trace()
            else:
                self.plain_loop()
            self.late_outcomes()
        self.late_outcomes(final=True)
        self.writer.close()
        return self.expected


def write_span_file(
    out: IO[str], spans: int, *, seed: int = 1, days: float = 7.0, unfiltered: bool = False
) -> Expected:
    """Write about ``spans`` spans (a little more: whole traces) as OTLP JSON lines to ``out``."""
    return Generator(out, seed=seed, days=days, unfiltered=unfiltered, spans=spans).run()
