"""A support bot whose outcomes arrive late, as the README's feedback pattern has it; run as a script.

    python tests/_feedback_app.py SPANS.jsonl answer     # two tickets answered (T1 team search, T2 support),
                                                         # in-process feedback: T1 by conversation id, T3's
                                                         # trace by trace id
    python tests/_feedback_app.py SPANS.jsonl feedback   # another process (no state): T2's user says no;
                                                         # T3 again by trace id (not matchable: see below)

Each run appends OTLP JSON lines to SPANS.jsonl through ``TokenKPISpanProcessor`` and the real ``openai`` SDK
against the embedded fake server, and exits. The answer run prints T3's trace id, which the feedback run
takes as its third argument.
"""

from __future__ import annotations

import contextlib
import sys

import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import otel_tokenkpi
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.jsonl_exporter import OTLPJsonLinesSpanExporter
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer, Reply


def main(path: str, mode: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        otel_tokenkpi.TokenKPISpanProcessor(SimpleSpanProcessor(OTLPJsonLinesSpanExporter(path)))
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        if mode == "answer":
            with FakeOpenAIServer() as server:
                server.enqueue(
                    *(Reply(text="Try turning it off and on.", prompt_tokens=100, completion_tokens=20),) * 3
                )
                client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
                trace_ids = []
                for ticket, team in (("T1", "search"), ("T2", "support"), ("T3", "support")):
                    # T3's app keeps no conversation id, only the trace id (the engine keys its state by trace).
                    conversation = otel_tokenkpi.conversation(ticket) if ticket != "T3" else contextlib.nullcontext()
                    with otel_tokenkpi.attributes(team=team), conversation, otel_tokenkpi.task("answer-ticket"):
                        client.chat.completions.create(
                            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Ticket {ticket}"}]
                        )
                        trace_ids.append(f"{trace.get_current_span().get_span_context().trace_id:032x}")
            # Later, the users answer the "did this help?" question.
            otel_tokenkpi.record_outcome(True, conversation_id="T1", rating=5)
            otel_tokenkpi.record_outcome(True, trace_id=trace_ids[2])
            print(trace_ids[2])
        else:
            otel_tokenkpi.record_outcome(False, conversation_id="T2", rating=1)
            # Another process knows nothing of T3's trace: its record_outcome span has no link to it.
            otel_tokenkpi.record_outcome(False, trace_id=sys.argv[3])
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
