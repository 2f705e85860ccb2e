"""The core, not the adapters, picks each wrapper's flavour: a ``Patch`` names an endpoint, and
:func:`call_flavour` reads what the method gives back (a value, a coroutine, an async iterator).

The table test runs over the real patch tables of all nine instrumentors against the installed SDKs: the
flavour inspection picks must be the one the method really has (async classes, ``*_async`` methods,
``acompletion``: coroutines; cohere's ``AsyncV2Client.chat_stream``: an async generator).
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

import pytest
import wrapt

from otel_tokenkpi.instrumentation import Patch, call_flavour
from otel_tokenkpi.lifecycle import Endpoint


async def _coroutine() -> int:
    return 1


async def _async_generator() -> Any:
    yield 1


def _plain() -> int:
    return 1


def _hides_a_coroutine(function: Any) -> Any:
    """What openai's ``required_args`` does: a plain function in front of an ``async def``."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return wrapper


class _Resource:
    async def create(self) -> int:
        return 1

    @_hides_a_coroutine
    async def parse(self) -> int:
        return 1

    def stream(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("target", "flavour"),
    [
        (_coroutine, "coroutine"),
        (_async_generator, "async_generator"),
        (_plain, "sync"),
        (_hides_a_coroutine(_coroutine), "coroutine"),
        (_hides_a_coroutine(_hides_a_coroutine(_async_generator)), "async_generator"),
        (_hides_a_coroutine(_plain), "sync"),
        (
            wrapt.FunctionWrapper(_coroutine, lambda wrapped, instance, args, kwargs: wrapped(*args, **kwargs)),
            "coroutine",
        ),
        (_Resource.create, "coroutine"),
        (_Resource().create, "coroutine"),
        (_Resource.parse, "coroutine"),
        (_Resource().stream, "sync"),
    ],
)
def test_call_flavour_sees_through_decorators(target: Any, flavour: str) -> None:
    assert call_flavour(target) == flavour


def test_a_wrapper_cycle_is_sync_not_a_hang() -> None:
    def looped() -> None: ...

    looped.__wrapped__ = looped  # type: ignore[attr-defined]
    assert call_flavour(looped) == "sync"


def test_patch_takes_exactly_one_way_to_wrap() -> None:
    endpoint = Endpoint(name="x", read_request=lambda instance, kwargs: None, read_response=lambda response: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="exactly one"):
        Patch("m", "C", "f")
    with pytest.raises(TypeError, match="exactly one"):
        Patch("m", "C", "f", endpoint, make_wrapper=lambda recorder: _plain)


def _expected_flavour(patch: Patch) -> str:
    if patch.cls == "AsyncV2Client" and patch.method == "chat_stream":
        return "async_generator"  # cohere: an async generator function, iterated, never awaited
    is_async = patch.cls.startswith("Async") or patch.method.endswith("_async") or patch.method.startswith("_PYTHON_A")
    return "coroutine" if is_async or patch.method in ("acompletion", "aembedding") else "sync"


def _endpoint_patches() -> list[tuple[str, Patch]]:
    rows = []
    for entry in entry_points(group="opentelemetry_instrumentor"):
        if not entry.name.startswith("tokenkpi_"):
            continue
        instrumentor = entry.load()()
        instrumentor.options = {}
        for patch in instrumentor.patches():
            if patch.endpoint is not None:
                rows.append((entry.name, patch))
    return rows


def test_every_model_call_patch_gets_the_flavour_its_method_has() -> None:
    pytest.importorskip("openai")
    pytest.importorskip("cohere")
    rows = _endpoint_patches()
    checked = 0
    for name, patch in rows:
        try:
            owner: Any = importlib.import_module(patch.module)
            target = getattr(getattr(owner, patch.cls), patch.method) if patch.cls else getattr(owner, patch.method)
        except (ImportError, AttributeError):
            continue  # an SDK not installed here (the version matrix holds only some)
        assert call_flavour(target) == _expected_flavour(patch), f"{name}: {patch.module}.{patch.cls}.{patch.method}"
        checked += 1
    assert checked >= 30  # openai 10, anthropic 4, groq 2, cohere 6, google-genai 6, mistral 4, ollama 6, litellm 4+
