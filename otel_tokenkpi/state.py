"""The engine's memory: small per-conversation and per-trace entries, bounded in bytes.

Only three things need memory (docs/architecture.md "How the rules see history"):
repeated identical requests, roll-ups (and the unused tool definitions in
them), and history the server holds. Entries hold fingerprints and counts,
never text. The store evicts by TTL first (entries untouched for ``ttl_s``)
and then least-recently-used until the estimated size fits the budget, so
memory stays flat however many conversations a process sees.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol, TypeVar

DEFAULT_BUDGET_BYTES = 4 * 1024 * 1024
DEFAULT_TTL_S = 1800.0

# CPython sizes used for accounting, measured with tracemalloc (benchmarks/engine.py): an entry
# with its lock and empty ordered dicts, and one remembered fingerprint or key.
ENTRY_BASE_BYTES = 1100
FINGERPRINT_BYTES = 100


class Sized(Protocol):
    def estimated_bytes(self) -> int: ...


E = TypeVar("E", bound=Sized)


class ConversationState:
    """What the rules remember about one conversation (fingerprints and counts)."""

    __slots__ = (
        "request_starts",
        "tool_keys",
        "duplicate_call_ids",
        "charged_result_ids",
        "last_span",
        "tokens",
        "successes",
        "lock",
    )

    MAX_REQUESTS = 256
    MAX_TOOL_KEYS = 512

    def __init__(self) -> None:
        self.request_starts: OrderedDict[int, float] = OrderedDict()  # request fingerprint -> when it started
        self.tool_keys: OrderedDict[tuple[str, str], None] = OrderedDict()  # tool calls the server holds
        self.duplicate_call_ids: OrderedDict[str, None] = OrderedDict()
        # Tool-call ids of duplicate results already counted as waste by a call that succeeded: an agent
        # that re-sends them later (e.g. after dropping a cut-off answer) is not charged again.
        self.charged_result_ids: OrderedDict[str, None] = OrderedDict()
        self.last_span: tuple[int, int] | None = None  # (trace id, span id) of the latest call: outcome links
        self.tokens = 0  # input + output tokens of the conversation's calls
        self.successes = 0
        self.lock = threading.Lock()

    def started_earlier(self, fingerprint: int, started_at: float) -> bool:
        earlier = self.request_starts.get(fingerprint)
        return earlier is not None and earlier < started_at

    def remember_request(self, fingerprint: int, started_at: float) -> None:
        earlier = self.request_starts.get(fingerprint)
        self.request_starts[fingerprint] = started_at if earlier is None else min(earlier, started_at)
        self.request_starts.move_to_end(fingerprint)
        _trim(self.request_starts, self.MAX_REQUESTS)

    def remember_tool_calls(self, keys: list[tuple[str, str]], duplicate_ids: list[str]) -> None:
        for key in keys:
            self.tool_keys[key] = None
        for call_id in duplicate_ids:
            self.duplicate_call_ids[call_id] = None
        _trim(self.tool_keys, self.MAX_TOOL_KEYS)
        _trim(self.duplicate_call_ids, self.MAX_TOOL_KEYS)

    def charged_before(self, call_id: str) -> bool:
        return call_id in self.charged_result_ids

    def remember_charged_results(self, call_ids: list[str]) -> None:
        for call_id in call_ids:
            self.charged_result_ids[call_id] = None
        _trim(self.charged_result_ids, self.MAX_TOOL_KEYS)

    def outcome_only(self) -> ConversationState:
        """A copy without the rules' fingerprints: what a late outcome needs."""
        copy = ConversationState()
        copy.last_span, copy.tokens, copy.successes = self.last_span, self.tokens, self.successes
        return copy

    def estimated_bytes(self) -> int:
        return ENTRY_BASE_BYTES + FINGERPRINT_BYTES * (
            len(self.request_starts)
            + 2 * len(self.tool_keys)
            + len(self.duplicate_call_ids)
            + len(self.charged_result_ids)
        )


def _trim(ordered: OrderedDict[Any, Any], limit: int) -> None:
    while len(ordered) > limit:
        ordered.popitem(last=False)


class BoundedStore:
    """Keyed entries with TTL-then-LRU eviction under a byte budget. Thread-safe.

    Entry sizes are re-estimated when an entry is touched (``get``), which is
    when it can have grown; an entry grows only by bounded amounts in between.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._entries: OrderedDict[Hashable, tuple[Any, int, float]] = OrderedDict()  # key -> (entry, bytes, touched)
        self._bytes = 0
        self._lock = threading.Lock()
        self.budget_bytes = budget_bytes
        self.ttl_s = ttl_s

    def configure(self, budget_bytes: int | None = None, ttl_s: float | None = None) -> None:
        with self._lock:
            if budget_bytes is not None:
                self.budget_bytes = budget_bytes
            if ttl_s is not None:
                self.ttl_s = ttl_s
            self._evict(time.monotonic())

    def get(self, key: Hashable, create: Callable[[], E] | None = None) -> E | None:
        """The entry for ``key`` (made with ``create`` when missing), marked used."""
        now = time.monotonic()
        with self._lock:
            found = self._entries.pop(key, None)
            if found is not None and now - found[2] > self.ttl_s:
                self._bytes -= found[1]
                found = None
            if found is None:
                if create is None:
                    return None
                entry = create()
                old_size = 0
            else:
                entry, old_size = found[0], found[1]
            size = entry.estimated_bytes()
            self._entries[key] = (entry, size, now)
            self._bytes += size - old_size
            self._evict(now)
            return entry  # type: ignore[no-any-return]

    def pop(self, key: Hashable) -> Any:
        with self._lock:
            found = self._entries.pop(key, None)
            if found is None:
                return None
            self._bytes -= found[1]
            return found[0]

    def _evict(self, now: float) -> None:  # caller holds the lock
        entries = self._entries
        # Least recently used first: expired entries are all at the front.
        while entries:
            key, (_, size, touched) = next(iter(entries.items()))
            if now - touched <= self.ttl_s and self._bytes <= self.budget_bytes:
                break
            del entries[key]
            self._bytes -= size

    def __contains__(self, key: Hashable) -> bool:
        """A lock-free membership test (a dict lookup is atomic): a cheap "anything here?" before work."""
        return key in self._entries

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def after_fork_in_child(self) -> None:
        """A lock another thread held at fork() stays held in the child: start afresh."""
        self._lock = threading.Lock()
        self._entries = OrderedDict()
        self._bytes = 0
