"""Options from keyword arguments or ``OTEL_INSTRUMENTATION_TOKENKPI_*`` (otel_tokenkpi/options.py),
in-process. End to end under ``opentelemetry-instrument``: test_zero_code.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_tokenkpi
from otel_tokenkpi import options, prices
from otel_tokenkpi import sdk_setup as setup
from otel_tokenkpi.engine import ENGINE
from otel_tokenkpi.instrumentation import Patch, TokenKPIInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor

PREFIX = "OTEL_INSTRUMENTATION_TOKENKPI_"


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No option env from outside; engine, aliases and the applied options restored afterwards."""
    for option in options.NAMES:
        monkeypatch.delenv(options.env_name(option), raising=False)
    engine = (ENGINE.exempt_tools, ENGINE.store.budget_bytes, ENGINE.store.ttl_s, ENGINE.metric_user_attributes)
    aliases = dict(prices._aliases)
    options.forget()
    yield
    otel_tokenkpi.uninstrument()
    ENGINE.exempt_tools, ENGINE.metric_user_attributes = engine[0], engine[3]
    ENGINE.store.configure(engine[1], engine[2])
    prices.configure(model_aliases=aliases)
    options.forget()


def test_every_option_has_its_variable() -> None:
    assert {options.env_name(o) for o in options.NAMES} == {
        PREFIX + "MODEL_ALIASES",
        PREFIX + "INJECT_STREAM_USAGE",
        PREFIX + "ALLOW_TOKENIZER_DOWNLOAD",
        PREFIX + "CONSOLE",
        PREFIX + "EXEMPT_TOOLS",
        PREFIX + "STATE_BUDGET_BYTES",
        PREFIX + "STATE_TTL_S",
        PREFIX + "METRIC_USER_ATTRIBUTES",
    }


@pytest.mark.parametrize(
    ("option", "text", "value"),
    [
        ("console", "true", True),
        ("console", "TRUE", True),
        ("console", "1", True),
        ("console", "false", False),
        ("console", " 0 ", False),
        ("inject_stream_usage", "True", True),
        ("allow_tokenizer_download", "0", False),
        ("exempt_tools", "poll_job, wait_for_build,,", ("poll_job", "wait_for_build")),
        ("model_aliases", "prod-chat=gpt-4o, cheap = gpt-4o-mini", {"prod-chat": "gpt-4o", "cheap": "gpt-4o-mini"}),
        ("state_budget_bytes", "65536", 65536),
        ("state_ttl_s", "90.5", 90.5),
        ("metric_user_attributes", "true", True),
        ("metric_user_attributes", "0", False),
        ("metric_user_attributes", "team, feature", frozenset({"team", "feature"})),
        ("console", "", None),  # empty is unset
    ],
)
def test_env_formats(option: str, text: str, value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(options.env_name(option), text)
    assert getattr(options.resolve(), option) == value


@pytest.mark.parametrize(
    ("option", "text"),
    [
        ("console", "maybe"),
        ("model_aliases", "gpt-4o"),
        ("model_aliases", "a=b,=c"),
        ("state_budget_bytes", "-1"),
        ("state_budget_bytes", "4MiB"),
        ("state_ttl_s", "0"),
        ("state_ttl_s", "inf"),
        ("state_ttl_s", "soon"),
    ],
)
def test_a_bad_env_value_is_logged_once_with_its_name_and_the_default_used(
    option: str, text: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    name = options.env_name(option)
    monkeypatch.setenv(name, text)
    with caplog.at_level(logging.WARNING, logger="otel_tokenkpi"):
        assert getattr(options.resolve(), option) is None
        assert getattr(options.resolve(), option) is None
    lines = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert repr(text) in lines[0]


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFIX + "EXEMPT_TOOLS", "from_env")
    monkeypatch.setenv(PREFIX + "STATE_TTL_S", "60")
    monkeypatch.setenv(PREFIX + "INJECT_STREAM_USAGE", "true")
    resolved = options.resolve({"exempt_tools": ["from_arg"], "inject_stream_usage": False})
    assert resolved.exempt_tools == ("from_arg",)
    assert resolved.inject_stream_usage is False
    assert resolved.state_ttl_s == 60.0  # not given as an argument: the environment's


def test_a_bad_argument_raises_even_when_the_environment_is_good(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFIX + "STATE_TTL_S", "60")
    with pytest.raises(TypeError, match="state_ttl_s"):
        options.resolve({"state_ttl_s": "60"})
    with pytest.raises(TypeError, match="unknown option"):
        otel_tokenkpi.instrument(tracer_provider=TracerProvider(), state_ttl=60)


def test_instrument_applies_env_options_and_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFIX + "EXEMPT_TOOLS", "from_env")
    monkeypatch.setenv(PREFIX + "STATE_BUDGET_BYTES", "12345")
    monkeypatch.setenv(PREFIX + "INJECT_STREAM_USAGE", "true")
    otel_tokenkpi.instrument(tracer_provider=TracerProvider(), exempt_tools=["from_arg"])
    assert ENGINE.exempt_tools == frozenset({"from_arg"})
    assert ENGINE.store.budget_bytes == 12345
    (openai_instrumentor,) = [i for i in setup._instrumentors if isinstance(i, OpenAIInstrumentor)]
    assert openai_instrumentor.options["inject_stream_usage"] is True


def test_an_instrumentor_loaded_on_its_own_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``opentelemetry-instrument`` does: each entry point's instrumentor, no arguments."""
    monkeypatch.setenv(PREFIX + "EXEMPT_TOOLS", "poll_job")
    monkeypatch.setenv(PREFIX + "STATE_TTL_S", "42")
    monkeypatch.setenv(PREFIX + "MODEL_ALIASES", "prod-chat=gpt-4o")
    monkeypatch.setenv(PREFIX + "INJECT_STREAM_USAGE", "1")
    alone = OpenAIInstrumentor()
    alone.instrument(tracer_provider=TracerProvider(), skip_dep_check=True)
    try:
        assert alone.options["inject_stream_usage"] is True
        assert ENGINE.exempt_tools == frozenset({"poll_job"})
        assert ENGINE.store.ttl_s == 42.0
        assert prices._aliases == {"prod-chat": "gpt-4o"}
    finally:
        alone.uninstrument()


def test_an_instrumentor_loaded_on_its_own_keeps_what_the_environment_leaves_unset() -> None:
    prices.configure(model_aliases={"set-in-code": "gpt-4o"})
    alone = OpenAIInstrumentor()
    alone.instrument(tracer_provider=TracerProvider())
    try:
        assert alone.options["inject_stream_usage"] is False
        assert prices._aliases == {"set-in-code": "gpt-4o"}
    finally:
        alone.uninstrument()


class _AbsentLibraryInstrumentor(TokenKPIInstrumentor):
    scope = "tests.absent"
    instruments = ("surely-not-an-installed-library >= 1",)

    def patches(self) -> list[Patch]:
        return [
            Patch("surely_not_installed.api", "Client", "create", make_wrapper=lambda recorder: lambda *a, **k: None)
        ]


def test_an_absent_library_is_skipped_quietly_under_skip_dep_check(caplog: pytest.LogCaptureFixture) -> None:
    """opentelemetry-instrument loads every instrumentor of our distribution with skip_dep_check:
    one whose library is not installed must not warn once per patched method."""
    instrumentor = _AbsentLibraryInstrumentor()
    with caplog.at_level(logging.DEBUG, logger="otel_tokenkpi"):
        instrumentor.instrument(tracer_provider=TracerProvider(), skip_dep_check=True)
    try:
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert "_AbsentLibraryInstrumentor not loaded" in caplog.text
        assert getattr(instrumentor, "_applied", []) == []
    finally:
        instrumentor.uninstrument()


class _TooOldLibraryInstrumentor(TokenKPIInstrumentor):  # not a subclass of the one above: one instance per class
    scope = "tests.too_old"
    instruments = ("pytest >= 999",)  # installed, at a release below this "floor"

    def patches(self) -> list[Patch]:
        return [Patch("pytest", "Client", "create", make_wrapper=lambda recorder: lambda *a, **k: None)]


def test_an_installed_release_outside_the_range_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A user whose library is older than the floor expects spans: say why there are none."""
    instrumentor = _TooOldLibraryInstrumentor()
    with caplog.at_level(logging.DEBUG, logger="otel_tokenkpi"):
        instrumentor.instrument(tracer_provider=TracerProvider(), skip_dep_check=True)
    try:
        (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
        message = warning.getMessage()
        assert "_TooOldLibraryInstrumentor not loaded" in message
        assert "pytest >= 999" in message and f"pytest {pytest.__version__}" in message
        assert getattr(instrumentor, "_applied", []) == []
    finally:
        instrumentor.uninstrument()
