"""otel_tokenkpi.prices: genai-prices figures, resolved once, loaded off the user's thread, no network."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal

import genai_prices
import pytest
from _telemetry import check_in_forked_child
from genai_prices import Usage, calc_price, data_snapshot, types

from otel_tokenkpi import prices
from otel_tokenkpi.prices import ModelInfo


@pytest.fixture(autouse=True)
def clean():
    """Fresh module state; afterwards the state other test modules had (a session-wide load) is put back."""
    snapshots, done, aliases = prices._snapshots, prices._done.is_set(), dict(prices._aliases)
    prices._reset_for_tests()
    yield
    prices._reset_for_tests()
    prices._snapshots, prices._aliases = snapshots, aliases
    if done:
        prices._done.set()


@pytest.fixture
def loaded() -> None:
    assert prices.wait_until_loaded(30)


# Figures of genai-prices 0.2.3's bundled data (per million tokens).
KNOWN = [
    ("openai", "gpt-4o", ModelInfo("gpt-4o", "openai", 2.5, 10.0, 1.25, None, 128000)),
    ("openai", "gpt-4o-2024-08-06", ModelInfo("gpt-4o", "openai", 2.5, 10.0, 1.25, None, 128000)),
    ("openai", "gpt-4o-mini", ModelInfo("gpt-4o-mini", "openai", 0.15, 0.6, 0.075, None, 128000)),
    (
        "anthropic",
        "claude-sonnet-4-20250514",
        ModelInfo("claude-sonnet-4-0", "anthropic", 3.0, 15.0, 0.3, 3.75, 200000),
    ),
    # tiered (above 200k input tokens: 6 / 22.5 / 0.6 / 7.5): the base tier is used
    (
        "anthropic",
        "claude-sonnet-4-5",
        ModelInfo("claude-sonnet-4-5", "anthropic", 3.0, 15.0, 0.3, 3.75, 200000),
    ),
    (
        "gcp.gemini",
        "gemini-2.5-flash",
        ModelInfo("gemini-2.5-flash", "google", 0.3, 2.5, 0.03, None, 1048576),
    ),
    (
        "gcp.gemini",
        "models/gemini-2.5-flash",
        ModelInfo("gemini-2.5-flash", "google", 0.3, 2.5, 0.03, None, 1048576),
    ),
    (
        "gcp.vertex_ai",
        "claude-sonnet-4@20250514",
        ModelInfo("claude-4-sonnet", "google", 3.0, 15.0, 0.3, 3.75, 200000),
    ),
    (
        "aws.bedrock",
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        ModelInfo("regional.anthropic.claude-sonnet-4-20250514-v1:0", "aws", 3.0, 15.0, 0.3, 3.75, 200000),
    ),
    ("azure.ai.openai", "gpt-4o", ModelInfo("gpt-4o", "azure", 2.5, 10.0, 1.25, None, 128000)),
    ("mistral_ai", "mistral-large-latest", ModelInfo("mistral-large", "mistral", 2.0, 6.0, None, None, None)),
    ("x_ai", "grok-4", ModelInfo("grok-4-0709", "x-ai", 3.0, 15.0, 0.75, None, 256000)),
    ("deepseek", "deepseek-chat", ModelInfo("deepseek-chat", "deepseek", 0.135, 0.55, 0.035, None, 64000)),  # off-peak
    (
        "openai",
        "text-embedding-3-small",
        ModelInfo("text-embedding-3-small", "openai", 0.02, None, None, None, 8192),
    ),
    (None, "openai/gpt-4o", ModelInfo("gpt-4o", "openai", 2.5, 10.0, 1.25, None, 128000)),  # model-only
    ("some.gateway", "gpt-4o-mini", ModelInfo("gpt-4o-mini", "openai", 0.15, 0.6, 0.075, None, 128000)),
]


@pytest.mark.parametrize(("provider", "model", "expected"), KNOWN)
def test_lookup_known_models(loaded: None, provider: str | None, model: str, expected: ModelInfo) -> None:
    assert prices.lookup(provider, model, at=OFF_PEAK) == expected


OFF_PEAK = datetime(2026, 11, 30, 20, 0, tzinfo=timezone.utc)  # DeepSeek's off-peak: 16:30-00:30 UTC
DEEPSEEK_PEAK = ModelInfo("deepseek-chat", "deepseek", 0.27, 1.1, 0.07, None, 64000)
DEEPSEEK_OFF_PEAK = ModelInfo("deepseek-chat", "deepseek", 0.135, 0.55, 0.035, None, 64000)


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [
        (0, 29, DEEPSEEK_OFF_PEAK),
        (0, 30, DEEPSEEK_PEAK),  # the window starts at 00:30 UTC
        (10, 0, DEEPSEEK_PEAK),
        (16, 29, DEEPSEEK_PEAK),
        (16, 30, DEEPSEEK_OFF_PEAK),  # and ends at 16:30 UTC
        (23, 59, DEEPSEEK_OFF_PEAK),
    ],
)
def test_time_of_day_rates_follow_the_clock(loaded: None, hour: int, minute: int, expected: ModelInfo) -> None:
    at = datetime(2026, 11, 30, hour, minute, tzinfo=timezone.utc)
    assert prices.lookup("deepseek", "deepseek-chat", at=at) == expected
    usage = Usage(input_tokens=1000, output_tokens=100)
    calc = calc_price(usage, "deepseek-chat", provider_id="deepseek", genai_request_timestamp=at)
    assert prices.cost_usd(expected, input_tokens=1000, output_tokens=100) == pytest.approx(float(calc.total_price))


def test_time_of_day_rates_are_resolved_once(loaded: None) -> None:
    """The cached resolution holds every window, so the hour of the first lookup does not stick."""
    peak = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
    assert prices.lookup("deepseek", "deepseek-chat", at=peak) == DEEPSEEK_PEAK
    assert prices.lookup("deepseek", "deepseek-chat", at=OFF_PEAK) == DEEPSEEK_OFF_PEAK
    assert list(prices._resolved) == [("deepseek", "deepseek-chat")]
    naive_peak = datetime(2026, 11, 30, 10, 0)  # naive means UTC, as in genai-prices, whatever the local zone
    assert prices.lookup("deepseek", "deepseek-chat", at=naive_peak) == DEEPSEEK_PEAK


@pytest.mark.parametrize(("provider", "model", "_"), KNOWN)
def test_figures_are_genai_prices_own(loaded: None, provider: str | None, model: str, _: ModelInfo) -> None:
    now = datetime.now(timezone.utc)
    info = prices.lookup(provider, model, at=now)
    assert info is not None
    ref = model.rsplit("/", 1)[-1]
    usage = Usage(input_tokens=1000, output_tokens=100 if info.output_per_mtok is not None else 0)
    # genai-prices' own resolution and arithmetic, at the same moment (DeepSeek's rates depend on the hour)
    calc = calc_price(usage, ref, provider_id=info.provider, genai_request_timestamp=now)
    assert (calc.model.id, calc.model.context_window) == (info.model, info.context_window)
    ours = prices.cost_usd(info, input_tokens=1000, output_tokens=usage.output_tokens)
    assert ours == pytest.approx(float(calc.total_price), rel=1e-12)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "definitely-not-a-model"),
        (None, "llama3.1:8b"),
        ("ollama", "llama3"),
        ("openai", ""),
        (None, None),
    ],
)
def test_unknown_model_is_none(loaded: None, provider: str | None, model: str | None) -> None:
    assert prices.lookup(provider, model) is None


def test_never_raises(loaded: None) -> None:
    assert prices.lookup(42, "gpt-4o") == prices.lookup(None, "gpt-4o")  # type: ignore[arg-type]
    assert prices.lookup("openai", 42) is None  # type: ignore[arg-type]


def test_alias_maps_deployment_names(loaded: None) -> None:
    assert prices.lookup("azure.ai.openai", "prod-chat") is None  # resolved (as unknown) and cached...
    prices.configure(model_aliases={"prod-chat": "gpt-4o-mini", "Legacy-Deploy": "openai/gpt-4o"})
    info = prices.lookup("azure.ai.openai", "prod-chat")  # ...configure() drops cached resolutions
    assert info == ModelInfo("gpt-4o-mini", "azure", 0.15, 0.6, 0.075, None, 128000)
    assert prices.lookup(None, "legacy-deploy") == ModelInfo("gpt-4o", "openai", 2.5, 10.0, 1.25, None, 128000)
    prices.configure(model_aliases=None)
    assert prices.lookup("azure.ai.openai", "prod-chat") is None


def test_resolved_once_per_provider_and_model(loaded: None, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = data_snapshot.get_snapshot()
    calls: list[str] = []
    real = snapshot.find_provider_model

    def counting(ref, *args):
        calls.append(ref)
        return real(ref, *args)

    monkeypatch.setattr(snapshot, "find_provider_model", counting)
    for _ in range(5):
        prices.lookup("openai", "gpt-4o")
        prices.lookup("openai", "no-such-model")
    assert calls.count("gpt-4o") == 1
    assert calls.count("no-such-model") == 2  # provider-scoped, then model-only; then cached as None


def test_lookup_before_loading_returns_none_without_waiting() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_import() -> None:
        entered.set()
        release.wait(10)

    prices._load_hook = slow_import
    try:
        started = time.monotonic()
        assert prices.lookup("openai", "gpt-4o") is None  # starts loading, does not wait
        first_lookup_s = time.monotonic() - started
        assert entered.wait(5)
        started = time.monotonic()
        assert prices.lookup("openai", "gpt-4o") is None
        # The loader is parked for 10 s: a lookup that waited for it would take that long (generous bound).
        assert max(first_lookup_s, time.monotonic() - started) < 5.0
        assert prices._thread is not None and prices._thread.is_alive()
    finally:
        release.set()
    assert prices.wait_until_loaded(30)
    assert prices.lookup("openai", "gpt-4o") is not None


def test_genai_prices_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # makes `import genai_prices` raise ImportError
    assert prices.wait_until_loaded(10) is False
    assert prices.lookup("openai", "gpt-4o") is None


def test_cost_usd_exact_and_matches_calc_price(loaded: None) -> None:
    gpt4o = prices.lookup("openai", "gpt-4o")
    assert gpt4o is not None
    # 10k input of which 4k cache reads, 500 output: 6000*2.5 + 4000*1.25 + 500*10 = 25000 per 1M
    assert prices.cost_usd(gpt4o, input_tokens=10_000, output_tokens=500, cache_read_tokens=4_000) == 0.025
    calc = calc_price(
        Usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=500), "gpt-4o", provider_id="openai"
    )
    assert calc.total_price == Decimal("0.025")

    mini = prices.lookup("openai", "gpt-4o-mini")
    assert mini is not None
    assert prices.cost_usd(mini, input_tokens=1_000_000, output_tokens=1_000_000) == pytest.approx(0.75, rel=1e-12)
    calc = calc_price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "gpt-4o-mini", provider_id="openai")
    assert calc.total_price == Decimal("0.75")

    sonnet = prices.lookup("anthropic", "claude-sonnet-4-20250514")
    assert sonnet is not None
    # 12k input = 2k uncached*3 + 8k reads*0.3 + 2k writes*3.75; 1k output*15 -> 6000+2400+7500+15000 = 30900
    cost = prices.cost_usd(
        sonnet, input_tokens=12_000, output_tokens=1_000, cache_read_tokens=8_000, cache_write_tokens=2_000
    )
    assert cost == pytest.approx(0.0309, rel=1e-12)
    usage = Usage(input_tokens=12_000, cache_read_tokens=8_000, cache_write_tokens=2_000, output_tokens=1_000)
    assert calc_price(usage, "claude-sonnet-4-20250514", provider_id="anthropic").total_price == Decimal("0.0309")

    flash = prices.lookup("gcp.gemini", "gemini-2.5-flash")
    assert flash is not None
    # 100k input of which 60k cached, 2k output: 40000*0.3 + 60000*0.03 + 2000*2.5 = 18800
    assert prices.cost_usd(flash, input_tokens=100_000, output_tokens=2_000, cache_read_tokens=60_000) == pytest.approx(
        0.0188, rel=1e-12
    )
    calc = calc_price(Usage(input_tokens=100_000, cache_read_tokens=60_000, output_tokens=2_000), "gemini-2.5-flash")
    assert calc.total_price == Decimal("0.0188")


def test_cost_usd_fallbacks_and_missing_rates() -> None:
    no_cache_rates = ModelInfo("m", "p", 2.0, 8.0, None, None, None)
    # cache reads and writes fall back to the input rate: 1000*2 + 100*8 = 2800
    assert prices.cost_usd(
        no_cache_rates, input_tokens=1_000, output_tokens=100, cache_read_tokens=300, cache_write_tokens=200
    ) == pytest.approx(0.0028, rel=1e-12)
    # more cache tokens than input (a provider quirk) never gives a negative uncached share
    assert prices.cost_usd(no_cache_rates, input_tokens=100, output_tokens=0, cache_read_tokens=500) == pytest.approx(
        500 * 2.0 / 1e6, rel=1e-12
    )
    embedding = ModelInfo("e", "p", 0.02, None, None, None, 8192)
    assert prices.cost_usd(embedding, input_tokens=1_000_000, output_tokens=0) == pytest.approx(0.02, rel=1e-12)
    assert prices.cost_usd(embedding, input_tokens=10, output_tokens=5) is None
    assert prices.cost_usd(ModelInfo("x", "p", None, None, None, None, None), input_tokens=1, output_tokens=1) is None
    assert prices.cost_usd(ModelInfo("x", "p", None, 1.0, None, None, None), input_tokens=1, output_tokens=1) is None
    assert prices.cost_usd(no_cache_rates, input_tokens=None, output_tokens=1) is None  # type: ignore[arg-type]


def test_no_network_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert prices.wait_until_loaded(30)
    for provider, model, _ in KNOWN:
        prices.lookup(provider, model)
    prices.lookup("openai", "unknown-model")
    assert attempts == []
    assert prices._updater is None


def test_refresh_uses_genai_prices_updater(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = threading.Event()

    def fake_fetch(self: genai_prices.UpdatePrices) -> data_snapshot.DataSnapshot:
        model = types.ModelInfo(
            id="gpt-4o",
            match=types.ClauseEquals(equals="gpt-4o"),
            context_window=1234,
            prices=types.ModelPrice(input_mtok=Decimal("1"), output_mtok=Decimal("2")),
        )
        provider = types.Provider(id="openai", name="OpenAI", api_pattern="x", models=[model])
        fetched.set()
        return data_snapshot.DataSnapshot(providers=[provider], from_auto_update=True)

    monkeypatch.setattr(genai_prices.UpdatePrices, "fetch", fake_fetch)
    assert prices.wait_until_loaded(30)
    assert prices.lookup("openai", "gpt-4o") == ModelInfo("gpt-4o", "openai", 2.5, 10.0, 1.25, None, 128000)
    prices.refresh_prices_from_network()
    assert fetched.wait(10)
    deadline = time.monotonic() + 10
    while prices.lookup("openai", "gpt-4o").input_per_mtok != 1.0 and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    assert prices.lookup("openai", "gpt-4o") == ModelInfo("gpt-4o", "openai", 1.0, 2.0, None, None, 1234)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_restarts_loading() -> None:
    parent_pid = os.getpid()
    entered, release = threading.Event(), threading.Event()
    child_loads: list[threading.Thread] = []

    def slow_in_parent() -> None:
        if os.getpid() == parent_pid:
            entered.set()
            release.wait(10)
        else:
            child_loads.append(threading.current_thread())

    prices._load_hook = slow_in_parent
    assert prices.lookup("openai", "gpt-4o") is None
    assert entered.wait(5)
    parent_thread = prices._thread

    def child_checks() -> dict[str, bool]:
        return {
            "loaded": prices.wait_until_loaded(30),
            # the parent's loader is parked in the hook (and does not exist here): a new thread loaded it
            "new thread loaded": len(child_loads) == 1 and child_loads[0] is not parent_thread,
            "lookup": prices.lookup("openai", "gpt-4o") is not None,
        }

    check_in_forked_child(child_checks, release.set)
    assert prices.wait_until_loaded(30)
