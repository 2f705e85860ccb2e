"""The readers adapters share, and the promise that re-sent history costs
only its new part (each item read and counted once)."""

from __future__ import annotations

from otel_tokenkpi import tokens
from otel_tokenkpi.instrumentors._shapes import IdentityMemo, compact_json, get, given, text_of
from otel_tokenkpi.testing.fake_openai import Reply


class Counting:
    def __init__(self, read):
        self.read, self.calls = read, 0

    def __call__(self, obj):
        self.calls += 1
        return self.read(obj)


def test_memo_reuses_the_same_unchanged_object():
    reader = Counting(lambda m: m["content"].upper())
    memo = IdentityMemo(reader)
    message = {"role": "user", "content": "hi"}
    assert memo(message) == memo(message) == "HI"
    assert reader.calls == 1
    assert memo({"role": "user", "content": "hi"}) == "HI"  # an equal but different object is read again
    assert reader.calls == 2


def test_memo_sees_a_replaced_field():
    reader = Counting(lambda m: m["content"])
    memo = IdentityMemo(reader)
    message = {"role": "user", "content": "first"}
    assert memo(message) == "first"
    message["content"] = "second"
    assert memo(message) == "second"
    assert reader.calls == 2


def test_memo_is_bounded_by_entries_and_text():
    memo = IdentityMemo(lambda m: m["content"], max_entries=3)
    kept = [{"content": str(i)} for i in range(10)]
    for m in kept:
        memo(m)
    assert len(memo._entries) == 3

    class Item:
        def __init__(self, text):
            self.text = text

    big = IdentityMemo(lambda m: Item(m["content"]), max_chars=10_000)
    for i in range(20):
        big({"content": "x" * 1000 + str(i)})
    assert big._chars <= 10_000 and len(big._entries) < 20


def test_sentinels_and_shapes():
    import openai

    assert not given(openai.NOT_GIVEN) and not given(openai.omit) and not given(None) and given(0)
    assert get({"a": openai.NOT_GIVEN}, "a", 5) == 5
    assert text_of([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, "b"]) == "ab"
    assert compact_json({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'


class CountingEncoder:
    def __init__(self, inner):
        self.inner, self.texts = inner, []

    def encode_ordinary(self, text):
        self.texts.append(text)
        return self.inner.encode_ordinary(text)


def test_resent_history_is_counted_once(telemetry, fake, openai_client, monkeypatch):
    shim = CountingEncoder(tokens._encodings["o200k_base"])
    monkeypatch.setitem(tokens._encodings, "o200k_base", shim)
    history = [
        {"role": "system", "content": "You are a careful assistant. " * 8},
        {"role": "user", "content": "A first question that is long enough to be cached, surely. " * 3},
    ]
    # Realistic bills (the content plus message framing), so neither breakdown is scaled to fit.
    fake.enqueue(Reply(text="first answer", prompt_tokens=100), Reply(text="second answer", prompt_tokens=130))
    openai_client.chat.completions.create(model="gpt-4o", messages=history)
    first = list(shim.texts)
    history.append({"role": "assistant", "content": "An answer that came back from the model earlier."})
    history.append({"role": "user", "content": "A follow-up question that is new in this turn."})
    openai_client.chat.completions.create(model="gpt-4o", messages=history)
    second = shim.texts[len(first) :]
    assert set(second) == {history[2]["content"], history[3]["content"]}
    spans = telemetry.spans()
    system = len(shim.inner.encode_ordinary(history[0]["content"]))
    assert [s.attributes["tokenkpi.context.system_tokens"] for s in spans] == [system, system]
    parts = ("resent", "new", "unattributed")
    assert [sum(s.attributes[f"tokenkpi.context.{p}_tokens"] for p in parts) for s in spans] == [100, 130]
