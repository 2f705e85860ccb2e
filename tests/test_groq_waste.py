"""The cross-provider planted-waste script through the groq SDK: the engine flags the same calls with the
same kinds as for every other provider (tests/test_waste_across_providers.py), on estimated counts."""

from __future__ import annotations

from _groq_support import instrumented, run_waste_script
from test_waste_across_providers import BIG, EXPECTED_KINDS, KINDS

import otel_tokenkpi
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.testing.fake_groq import FakeGroqServer


def test_groq_flags_the_same_calls_with_the_same_kinds(loaded_data):
    with instrumented() as telemetry, FakeGroqServer() as server, otel_tokenkpi.conversation("planted-groq"):
        run_waste_script(server)
    calls = [s for s in telemetry.spans() if s.attributes.get(sc.PROVIDER_NAME) == "groq"]
    assert len(calls) == 5
    flagged = [{kind for kind, key in KINDS.items() if s.attributes.get(key, 0) > 0} for s in calls]
    assert flagged == EXPECTED_KINDS
    assert [s.attributes.get(sc.TOOL_CALLS_DUPLICATE_COUNT) for s in calls] == [0, 1, 0, 0, None]
    assert calls[4].attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0 and calls[4].attributes[sc.ERROR_TYPE]
    assert calls[3].attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] == BIG + 8
    assert calls[2].attributes[sc.WASTE_TRUNCATED_OUTPUT_TOKENS] == 8
    assert all(s.attributes[sc.WASTE_TOKENS] == sum(s.attributes.get(k, 0) for k in KINDS.values()) for s in calls)
    assert all(s.attributes[sc.TOKENS_ESTIMATED] for s in calls[:4])  # open model: no offline tokenizer
