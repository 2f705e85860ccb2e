"""The planted-waste script shared by every provider's run in tests/test_waste_across_providers.py:
its texts, the kinds each call must be flagged with, and the billed size that keeps caps out of the way."""

from __future__ import annotations

from otel_tokenkpi import semconv as sc

SYSTEM = "You are a careful travel agent."
ASK = "What's the weather in Paris?"
ARGS = '{"city": "Paris", "unit": "C"}'
ARGS_REORDERED = '{"unit": "C", "city": "Paris"}'
RESULT_1 = '{"temp": 21, "sky": "clear"}'
RESULT_2 = '{"temp": 21, "sky": "clear", "again": true}'
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}
KINDS = {
    "failed_call": sc.WASTE_FAILED_CALL_TOKENS,
    "repeated_request": sc.WASTE_REPEATED_REQUEST_TOKENS,
    "truncated_output": sc.WASTE_TRUNCATED_OUTPUT_TOKENS,
    "duplicate_tool_call": sc.WASTE_DUPLICATE_TOOL_CALL_TOKENS,
    "uncached_resent": sc.WASTE_UNCACHED_RESENT_TOKENS,
}
EXPECTED_KINDS = [
    set(),
    {"duplicate_tool_call", "uncached_resent"},
    {"truncated_output", "duplicate_tool_call", "uncached_resent"},
    {"repeated_request"},
    set(),
]
BIG = 2000  # billed input per call: room for every local count, so no cap hides a kind
