"""``content.json_array_within``: captured content fitted to an attribute length limit stays valid JSON.

Properties over generated messages (text with any code points, lone surrogates included; tool calls with
object or string arguments) and limits: the value parses, never exceeds the limit, is the plain
serialization whenever that fits, and holds a suffix of the messages (the newest), all whole but the
oldest kept one, which may have its texts cut short.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_tokenkpi.content import _dumps, json_array_within

# Any code points, plus lone surrogates (which hypothesis' text() never draws) and escaped characters.
text = st.lists(st.one_of(st.text(max_size=60), st.sampled_from(["\ud800", "\udc00", "é", '"', "\n"])), max_size=8).map(
    "".join
)
arguments = st.one_of(text, st.dictionaries(st.text(max_size=10), st.one_of(text, st.integers()), max_size=3))
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "content": text}),
    st.fixed_dictionaries(
        {"type": st.just("tool_call"), "id": st.text(max_size=8), "name": st.text(max_size=12), "arguments": arguments}
    ),
    st.fixed_dictionaries({"type": st.just("tool_call_response"), "id": st.text(max_size=8), "response": text}),
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool"]), "parts": st.lists(part, max_size=3)}
)


def _uncut(cut: Any, original: Any) -> bool:
    """``cut`` is ``original`` with some text fields shortened (ending in the cut mark)."""
    if isinstance(original, list):
        return isinstance(cut, list) and len(cut) == len(original) and all(map(_uncut, cut, original))
    if isinstance(original, dict):
        if not isinstance(cut, dict) or cut.keys() != original.keys():
            return False
        for key, value in original.items():
            if key in ("content", "response", "arguments"):
                full = value if isinstance(value, str) else _dumps(value)
                if cut[key] != value and not (cut[key].endswith("…") and full.startswith(cut[key][:-1])):
                    return False
            elif not _uncut(cut[key], value):
                return False
        return True
    return cut == original


@settings(max_examples=300, deadline=None, derandomize=True)
@given(messages=st.lists(message, max_size=6), limit=st.integers(min_value=2, max_value=1500))
def test_fitted_content_is_valid_json_within_the_limit(messages: list[dict[str, Any]], limit: int) -> None:
    fitted = json_array_within(messages, limit)
    assert len(fitted) <= limit
    kept = json.loads(fitted)
    whole = _dumps(messages)
    if len(whole) <= limit:
        assert fitted == whole
        return
    assert len(kept) <= len(messages)
    suffix = messages[len(messages) - len(kept) :]
    assert kept[1:] == json.loads(_dumps(suffix[1:]))  # newer ones whole
    if kept:
        assert _uncut(kept[0], json.loads(_dumps(suffix[0])))


def test_no_limit_is_the_plain_serialization() -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "x" * 10_000}]}]
    assert json_array_within(messages, None) == _dumps(messages)


def test_a_huge_message_is_cut_to_the_room_left() -> None:
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "é" * 10_000_000}]},
    ]
    fitted = json_array_within(messages, 4096)
    (user,) = json.loads(fitted)
    assert user["role"] == "user" and len(fitted) >= 4096 - 1
    assert set(user["parts"][0]["content"]) == {"é", "…"}
