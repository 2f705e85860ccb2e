"""Provider faults through every instrumentor's real SDK: rate limits and server errors with the SDK's own
retries, timeouts, a connection dropped mid-stream, malformed SSE, a truncated JSON body.

Each scenario runs twice against the same scripted fake, without and with our instrumentation: the user
sees the same thing (the SDK's own exception class and message, or the same response after retries). With
it, each logical call is ONE span of ours, whatever the retries underneath (we wrap the SDK method, above
its retry loop): ``error.type`` is the class name of the exception the user caught (semconv: "the canonical
name of exception that occurred"), and ``tokenkpi.waste.failed_call_tokens`` counts billed tokens only when
the provider reported usage before the failure.

Retries per SDK: openai, anthropic, groq, cohere and litellm (through the openai SDK) take
``max_retries`` and honour ``retry-after-ms``; mistral takes a ``RetryConfig``; google-genai
``HttpRetryOptions``; boto3 a ``Config(retries=...)`` (its backoff ignores Retry-After, so one retry
here); ollama has no retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _faults_drivers import DRIVERS
from _faults_support import Rig
from google.genai import types
from mistralai.client.utils.retries import BackoffStrategy, RetryConfig

from otel_tokenkpi import semconv as sc

RETRY_AFTER = {"retry-after-ms": "1"}  # the shortest wait every SDK that reads it accepts
MISTRAL_DEADLINE_MS = 1000
# Retrying until a deadline, replies ask for this wait: at most MISTRAL_DEADLINE_MS / 25 + 2 attempts, so a
# fast machine never runs through the scripted failures to the fake's default (successful) reply.
DEADLINE_RETRY_AFTER = {"retry-after-ms": "25"}
STAINLESS_RETRIES = {"max_retries": 2}
# Client options for two retries with (almost) no backoff, per driver; None: the SDK has no retries.
RETRIES: dict[str, dict[str, Any] | None] = {
    "openai": STAINLESS_RETRIES,
    "anthropic": STAINLESS_RETRIES,
    "groq": STAINLESS_RETRIES,
    "cohere": STAINLESS_RETRIES,
    "litellm": STAINLESS_RETRIES,
    # mistral retries until an elapsed time, not a count: 1 ms apart (or as Retry-After asks), for at most
    # MISTRAL_DEADLINE_MS. The deadline must dwarf one attempt: the SDK checks it after each failure, so a first
    # attempt slower than the deadline (as on a loaded machine at the former 100 ms) means no retry at all.
    "mistral": {
        "retry_config": RetryConfig("backoff", BackoffStrategy(1, 1, 1.0, MISTRAL_DEADLINE_MS, jitter_ms=0), False)
    },
    "gemini": {
        "retry_options": types.HttpRetryOptions(
            attempts=3, initial_delay=0.001, max_delay=0.005, jitter=0, http_status_codes=[429, 500]
        )
    },
    # botocore's standard backoff is random up to 2**(attempt-1) s and ignores Retry-After: one retry only.
    "bedrock": {"retries": {"total_max_attempts": 2, "mode": "standard"}},
    "ollama": None,
}
ATTEMPTS: dict[str, int | None] = {"bedrock": 2, "ollama": 1, "mistral": None}  # None: until a deadline; default 3
TIMEOUTS: dict[str, dict[str, Any]] = {
    "openai": {"timeout": 0.1},
    "anthropic": {"timeout": 0.1},
    "groq": {"timeout": 0.1},
    "cohere": {"timeout": 0.1},
    "litellm": {"timeout": 0.1},
    "mistral": {"timeout_ms": 100},
    "gemini": {"timeout": 100},  # milliseconds
    "bedrock": {"read_timeout": 0.1},
    "ollama": {"timeout": 0.1},
}
# Usage reported by a stream cut just before its last event (the fakes' default usage: 10 in, 5 out):
# OpenAI-style usage chunks come before [DONE] (groq: x_groq.usage on the last chunk before it); Anthropic's
# message_delta before message_stop; Gemini's chunks carry the prompt count (the candidates count comes
# with the last one). Cohere's message-end, Ollama's done object and Bedrock's metadata event ARE the last
# event; litellm's stream wrapper hands usage to the user only once the stream has ended.
USAGE_BEFORE_LAST_EVENT = {"openai": 15, "groq": 15, "mistral": 15, "anthropic": 15, "gemini": 10}
USAGE_IN_FIRST_EVENT = {"anthropic", "gemini"}  # message_start / every chunk carries the input count
# Fakes that can send a malformed event inside a stream (the others: a bad body on non-stream calls only).
MALFORMED_SSE = ["openai", "anthropic", "cohere", "mistral", "groq", "litellm"]
MALFORMED_SSE_SKIPPED = {"cohere"}  # the cohere SDK drops an event it cannot parse and goes on
TRUNCATED_JSON_TOLERATED = {"bedrock"}  # botocore hands back {"message": <the body>} for a 200 that is not JSON


@pytest.fixture(scope="module", params=list(DRIVERS))
def rig(request: pytest.FixtureRequest, loaded_data: None) -> Iterator[Rig]:
    rig = Rig(DRIVERS[request.param])
    try:
        yield rig
    finally:
        rig.close()


def both(rig: Rig, mode: str, replies: list[Any], **options: Any) -> tuple[Any, Any, list[int]]:
    """The scenario without, then with, our instrumentation: (bare outcome, instrumented outcome, the
    number of HTTP requests the SDK made in each run)."""
    rig.uninstrument()
    bare = rig.run(mode, *replies, **options)
    requests = [len(rig.server.requests)]
    rig.instrument()
    rig.clear()
    instrumented = rig.run(mode, *replies, **options)
    requests.append(len(rig.server.requests))
    rig.uninstrument()
    return bare, instrumented, requests


def the_span(rig: Rig) -> Any:
    spans = rig.our_spans()
    assert len(spans) == 1, [s.name for s in rig.telemetry.spans()]
    assert rig.counter.started == rig.counter.ended
    return spans[0]


def assert_failed_like_the_sdk(rig: Rig, bare: Any, instrumented: Any) -> Any:
    """Same exception class and message as without us; one span whose error.type is that class."""
    assert instrumented == bare
    assert bare[0] == "raised"
    span = the_span(rig)
    assert span.attributes[sc.ERROR_TYPE] == bare[1][0].split(":")[1]
    assert span.status.status_code.name == "ERROR"
    return span


def rig_name(rig: Rig) -> str:
    return next(k for k, v in DRIVERS.items() if v is rig.driver)


def reported_tokens(span: Any) -> int:
    return int(span.attributes.get(sc.USAGE_INPUT_TOKENS, 0)) + int(span.attributes.get(sc.USAGE_OUTPUT_TOKENS, 0))


def test_rate_limit_and_server_error_then_success_is_one_span(rig):
    name = rig_name(rig)
    options = RETRIES[name]
    if options is None:
        pytest.skip("the ollama SDK does not retry")
    reply = rig.driver.reply
    failures = [reply(status=429, headers=RETRY_AFTER), reply(status=500, headers=RETRY_AFTER)]
    seven = {"completion_tokens": 7} if name in ("openai", "groq", "litellm") else {"output_tokens": 7}
    script = [*failures[: (ATTEMPTS.get(name) or 3) - 1], reply(text="Paris at last.", **seven)]
    bare, instrumented, requests = both(rig, "plain", script, **options)
    assert instrumented == bare and bare[0] == "ok"
    assert requests == [len(script)] * 2  # the SDK retried; the user never saw the failures
    span = the_span(rig)  # one span for the logical call, not one per attempt
    assert sc.ERROR_TYPE not in span.attributes
    assert span.attributes[sc.USAGE_OUTPUT_TOKENS] == 7
    assert span.attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0


@pytest.mark.parametrize("status", [429, 500])
def test_retries_exhausted_raise_the_sdks_error(rig, status):
    name = rig_name(rig)
    options = RETRIES[name] or {}
    attempts = ATTEMPTS.get(name, 3)
    headers = RETRY_AFTER if attempts is not None else DEADLINE_RETRY_AFTER
    script = [rig.driver.reply(status=status, headers=headers, error_message="slow down")] * (attempts or 500)
    bare, instrumented, requests = both(rig, "plain", script, **options)
    if attempts is None:  # retried until the deadline: how many times depends on the clock
        assert min(requests) >= 2
    else:
        assert requests == [attempts] * 2
    span = assert_failed_like_the_sdk(rig, bare, instrumented)
    assert span.attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0  # no usage reported: nothing billed we know of
    assert span.attributes[sc.WASTE_TOKENS] == 0


def test_timeout_raises_the_sdks_error(rig):
    name = rig_name(rig)
    bare, instrumented, _ = both(rig, "plain", [rig.driver.reply(delay_s=1.0)], **TIMEOUTS[name])
    span = assert_failed_like_the_sdk(rig, bare, instrumented)
    assert span.attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_connection_reset_mid_stream(rig, mode):
    """Dropped after two events: usage is known only where the provider sends it first (Anthropic)."""
    if mode == "astream" and rig.driver.astream is None:
        pytest.skip("no async stream in this SDK")
    name = rig_name(rig)
    reply = rig.driver.reply(text="alpha beta gamma delta epsilon", cut_stream_after=2)
    bare, instrumented, _ = both(rig, mode, [reply])
    span = assert_failed_like_the_sdk(rig, bare, instrumented)
    assert (sc.USAGE_INPUT_TOKENS in span.attributes) == (name in USAGE_IN_FIRST_EVENT)
    assert span.attributes[sc.WASTE_FAILED_CALL_TOKENS] == reported_tokens(span)


def test_stream_cut_after_its_usage_counts_the_billed_tokens_as_waste(rig):
    """Every event but the last: where usage came before the last event, the failed call's billed tokens
    (10 input + 5 output, the fakes' defaults) are waste; where it comes last, nothing was reported."""
    name = rig_name(rig)
    reply = rig.driver.reply(text="alpha beta gamma", cut_stream_after=-1)
    bare, instrumented, _ = both(rig, "stream", [reply])
    span = assert_failed_like_the_sdk(rig, bare, instrumented)
    expected = USAGE_BEFORE_LAST_EVENT.get(name, 0)
    assert span.attributes[sc.WASTE_FAILED_CALL_TOKENS] == expected
    assert span.attributes[sc.WASTE_TOKENS] == expected
    assert reported_tokens(span) == expected


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_malformed_sse_event(rig, mode):
    name = rig_name(rig)
    if name not in MALFORMED_SSE:
        pytest.skip("this fake sends malformed bodies on non-stream calls only")
    if mode == "astream" and rig.driver.astream is None:
        pytest.skip("no async stream in this SDK")
    bare, instrumented, _ = both(rig, mode, [rig.driver.reply(bad_json=True)])
    if name in MALFORMED_SSE_SKIPPED:
        assert instrumented == bare and bare[0] == "ok"
        assert sc.ERROR_TYPE not in the_span(rig).attributes
        return
    span = assert_failed_like_the_sdk(rig, bare, instrumented)
    assert span.attributes[sc.WASTE_FAILED_CALL_TOKENS] == reported_tokens(span)
    assert (sc.USAGE_INPUT_TOKENS in span.attributes) == (name in USAGE_IN_FIRST_EVENT)


def test_truncated_json_body(rig):
    bare, instrumented, _ = both(rig, "plain", [rig.driver.reply(bad_json=True)])
    if rig_name(rig) in TRUNCATED_JSON_TOLERATED:
        assert instrumented == bare and bare[0] == "ok"
        assert sc.ERROR_TYPE not in the_span(rig).attributes
        return
    span = assert_failed_like_the_sdk(rig, bare, instrumented)
    assert span.attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0
