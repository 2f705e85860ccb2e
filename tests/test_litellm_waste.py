# ruff: noqa: F811 - pytest fixtures imported from _litellm_support are parameters here
"""The cross-provider planted-waste script through litellm: the same calls flagged with the same kinds
as through every provider's own SDK (tests/test_waste_across_providers.py)."""

from __future__ import annotations

import _litellm_support as support  # first: sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported
from _litellm_support import instrumentors, ltelemetry  # noqa: F401 - fixtures
from test_waste_across_providers import BIG, EXPECTED_KINDS, KINDS

import otel_tokenkpi
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.testing.fake_openai import FakeOpenAIServer


def test_litellm_flags_the_same_calls_with_the_same_kinds(ltelemetry):
    with FakeOpenAIServer() as server, otel_tokenkpi.conversation("planted-litellm"):
        support.run_waste_script(server)
    calls = ltelemetry.spans()
    assert [s.instrumentation_scope.name for s in calls] == [support.SCOPE] * 5  # nothing from the openai SDK
    assert {s.attributes[sc.PROVIDER_NAME] for s in calls} == {"openai"}
    flagged = [{kind for kind, key in KINDS.items() if s.attributes.get(key, 0) > 0} for s in calls]
    assert flagged == EXPECTED_KINDS
    assert [s.attributes.get(sc.TOOL_CALLS_DUPLICATE_COUNT) for s in calls] == [0, 1, 0, 0, None]
    assert calls[4].attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0
    assert calls[4].attributes[sc.ERROR_TYPE] == "InternalServerError"
    assert calls[3].attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] == BIG + 8
    assert all(s.attributes[sc.WASTE_TOKENS] == sum(s.attributes.get(k, 0) for k in KINDS.values()) for s in calls)
    assert not any(s.attributes.get(sc.TOKENS_ESTIMATED) for s in calls[:4])  # gpt-4o: exact offline counts
