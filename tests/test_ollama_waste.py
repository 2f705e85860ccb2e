"""The planted waste of test_waste_across_providers through the real ``ollama`` SDK: the same calls flagged
with the same kinds. Ollama sends no tool-call ids: the adapter's made-up ids must still pair the duplicate
call with the result that answers it."""

from __future__ import annotations

from _ollama_support import instrumented, ollama_server, run_waste_script  # noqa: F401 - fixture
from test_waste_across_providers import BIG, EXPECTED_KINDS, KINDS

import otel_tokenkpi
from otel_tokenkpi import semconv as sc


def test_ollama_flags_the_same_calls_with_the_same_kinds(loaded_data, ollama_server):  # noqa: F811
    ollama_server.reset()
    with instrumented() as telemetry, otel_tokenkpi.conversation("planted-ollama"):
        run_waste_script(ollama_server)
    calls = [s for s in telemetry.spans() if s.attributes.get(sc.PROVIDER_NAME) == "ollama"]
    assert len(calls) == 5
    flagged = [{kind for kind, key in KINDS.items() if s.attributes.get(key, 0) > 0} for s in calls]
    assert flagged == EXPECTED_KINDS
    assert [s.attributes.get(sc.TOOL_CALLS_DUPLICATE_COUNT) for s in calls] == [0, 1, 0, 0, None]
    assert calls[4].attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0 and calls[4].attributes[sc.ERROR_TYPE]
    assert calls[3].attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] == BIG + 8
    assert calls[2].attributes[sc.WASTE_TRUNCATED_OUTPUT_TOKENS] == 8
    assert all(s.attributes[sc.WASTE_TOKENS] == sum(s.attributes.get(k, 0) for k in KINDS.values()) for s in calls)
    assert all(s.attributes[sc.TOKENS_ESTIMATED] for s in calls[:4])
