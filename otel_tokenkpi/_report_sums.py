"""The report's sums: model calls (:class:`CallTotals`), tasks (:class:`TaskTotals`) and the waste over time
(:class:`Timeline`). Kept as flat lists where a call adds to them, so adding is a few C-level list
operations; :mod:`otel_tokenkpi.report` feeds them a span at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import add
from typing import Any

from . import semconv as sc
from ._report_units import Rollup

__all__ = ["KINDS", "CallTotals", "TaskTotals", "Timeline"]

KINDS = tuple(sc.WASTE_KIND_ATTRIBUTES)
_KIND_KEYS = tuple(sc.WASTE_KIND_ATTRIBUTES.values())

# The integer attributes of a model call the report sums, in this order (see CallTotals.ints).
_CALL_INTS = (
    sc.USAGE_INPUT_TOKENS,
    sc.USAGE_OUTPUT_TOKENS,
    sc.USAGE_CACHE_READ_INPUT_TOKENS,
    sc.WASTE_TOKENS,
    *_KIND_KEYS,
)
_ZEROS = (0,) * len(_CALL_INTS)
# A call's row: its integers, then its cost and waste cost (None when it carried none).
_ROW_KEYS = (*_CALL_INTS, sc.COST_USD, sc.WASTE_COST_USD)
_ROW_DEFAULTS = (*_ZEROS, None, None)
_COSTS = slice(len(_CALL_INTS), None)


def _summed(name: str, doc: str) -> Any:
    """A property that adds the waiting rows into the sums, then reads the sums kept in ``name``."""

    def read(self: CallTotals) -> list[Any]:
        self._sum_rows()
        return getattr(self, name)  # type: ignore[no-any-return]

    return property(read, doc=doc)


class CallTotals:
    """Model calls summed. A call's row waits in a short list and the rows are summed a column at a time
    (C-level ``sum`` over ``zip``), rather than each added to the totals on its own."""

    __slots__ = ("calls", "errors", "_ints", "_kind_calls", "_costs", "_costed", "_rows")

    ROWS = 256  # calls kept before summing

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self._ints = [0] * len(_CALL_INTS)  # input, output, cache read, waste, waste per kind
        self._kind_calls = [0] * len(KINDS)  # calls with some waste of each kind
        self._costs = [0.0, 0.0]  # cost, waste cost
        self._costed = [0, 0]  # calls that carried each
        self._rows: list[list[Any]] = []  # calls not summed yet

    def add(self, attrs: dict[str, Any], error: bool) -> list[Any]:
        """One call; returns its row: [input, output, cache read, waste, *waste per kind, cost, waste cost]."""
        row = list(map(attrs.get, _ROW_KEYS, _ROW_DEFAULTS))
        self.calls += 1
        self.errors += error
        rows = self._rows
        rows.append(row)
        if len(rows) >= self.ROWS:
            self._sum_rows()
        return row

    def _sum_rows(self) -> None:
        rows = self._rows
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        ints, costs = columns[: len(_CALL_INTS)], columns[_COSTS]
        self._ints[:] = map(add, self._ints, map(sum, ints))
        self._kind_calls[:] = [
            calls + len(rows) - column.count(0) for calls, column in zip(self._kind_calls, ints[4:], strict=True)
        ]
        # filter(None, ...) drops the Nones (and zeros, which add nothing); count(None) finds who carried one.
        self._costs[:] = [total + sum(filter(None, column)) for total, column in zip(self._costs, costs, strict=True)]
        self._costed[:] = [n + len(rows) - column.count(None) for n, column in zip(self._costed, costs, strict=True)]
        rows.clear()

    ints = _summed("_ints", "[input, output, cache read, waste, *waste per kind], summed.")
    kind_calls = _summed("_kind_calls", "Calls with some waste, per kind (KINDS order).")
    costs = _summed("_costs", "[cost, waste cost] summed over the calls that carried each.")
    costed = _summed("_costed", "[calls that carried a cost, calls that carried a waste cost].")

    def merge(self, other: CallTotals) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.ints[:] = map(add, self.ints, other.ints)
        self.kind_calls[:] = map(add, self.kind_calls, other.kind_calls)
        self.costs[:] = map(add, self.costs, other.costs)
        self.costed[:] = map(add, self.costed, other.costed)

    input_tokens = property(lambda self: self.ints[0])
    output_tokens = property(lambda self: self.ints[1])
    cache_read_tokens = property(lambda self: self.ints[2])
    waste_tokens = property(lambda self: self.ints[3])
    cost_usd = property(lambda self: self.costs[0] if self.costed[0] else None)
    waste_cost_usd = property(lambda self: self.costs[1] if self.costed[1] else None)

    @property
    def kinds(self) -> dict[str, int]:
        return dict(zip(KINDS, self.ints[4:], strict=True))

    @property
    def calls_with_kind(self) -> dict[str, int]:
        return dict(zip(KINDS, self.kind_calls, strict=True))

    @property
    def billed(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def waste_ratio(self) -> float | None:
        return self.waste_tokens / self.billed if self.billed else None

    @property
    def top_kind(self) -> str | None:
        kinds = self.kinds
        kind = max(KINDS, key=lambda k: kinds[k])
        return kind if kinds[kind] > 0 else None


_TASK_COUNTS = (
    "tasks",
    "successes",
    "failures",
    "late_outcomes",
    "llm_calls",
    "tokens",
    "waste_tokens",
    "unused_tool_definitions_tokens",
)


@dataclass(slots=True)
class TaskTotals:
    """Tasks (roll-up spans) summed, with their outcomes (late ones included)."""

    tasks: int = 0
    successes: int = 0
    failures: int = 0
    late_outcomes: int = 0
    llm_calls: int = 0
    tokens: int = 0  # input + output
    waste_tokens: int = 0
    unused_tool_definitions_tokens: int = 0
    cost_usd: float | None = None
    waste_cost_usd: float | None = None
    is_task: bool = False  # some of them are otel_tokenkpi.task() spans
    unused_tools: dict[str, int] = field(default_factory=dict)  # tool name -> runs that offered it unused

    def add(self, rollup: Rollup) -> None:
        self.tasks += 1
        outcome = rollup.outcome
        if outcome is not None:
            if outcome == "success":
                self.successes += 1
            else:
                self.failures += 1
        self.llm_calls += rollup.llm_calls
        self.tokens += rollup.input_tokens + rollup.output_tokens
        self.waste_tokens += rollup.waste_tokens
        self.unused_tool_definitions_tokens += rollup.unused_tool_tokens
        if rollup.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + rollup.cost_usd
        if rollup.waste_cost_usd is not None:
            self.waste_cost_usd = (self.waste_cost_usd or 0.0) + rollup.waste_cost_usd
        for tool in rollup.unused_tools:
            self.unused_tools[tool] = self.unused_tools.get(tool, 0) + 1

    def merge(self, other: TaskTotals) -> None:
        """Add ``other``'s sums to these (the all-tasks total is its groups', merged once at the end)."""
        for name in _TASK_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("cost_usd", "waste_cost_usd"):
            theirs = getattr(other, name)
            if theirs is not None:
                setattr(self, name, (getattr(self, name) or 0.0) + theirs)
        self.is_task = self.is_task or other.is_task
        for tool, runs in other.unused_tools.items():
            self.unused_tools[tool] = self.unused_tools.get(tool, 0) + runs

    def add_outcome(self, outcome: str) -> None:
        self.late_outcomes += 1
        self.successes += outcome == "success"
        self.failures += outcome == "failure"

    @property
    def tokens_per_success(self) -> float | None:
        return self.tokens / self.successes if self.successes else None

    @property
    def cost_per_success(self) -> float | None:
        return self.cost_usd / self.successes if self.successes and self.cost_usd is not None else None

    @property
    def waste_ratio(self) -> float | None:
        return self.waste_tokens / self.tokens if self.tokens else None


class Timeline:
    """Billed and waste tokens per kind over time, in buckets that widen so they never exceed ``MAX``."""

    MAX = 4096

    def __init__(self, width_ns: int = 60 * 10**9) -> None:
        self.width_ns = width_ns
        self.buckets: dict[int, list[int]] = {}  # bucket start // width -> sums as CallTotals.ints

    def add(self, start_ns: int, values: list[Any]) -> None:
        """One call's [input, output, cache read, waste, *waste per kind] at ``start_ns`` (the row
        :meth:`CallTotals.add` returns: its costs after these are left out, as ``map`` stops at the bucket's end)."""
        index = start_ns // self.width_ns
        bucket = self.buckets.get(index)
        if bucket is None:
            if len(self.buckets) >= self.MAX:
                self._widen()
                index = start_ns // self.width_ns
                bucket = self.buckets.get(index)
            if bucket is None:
                bucket = self.buckets[index] = [0] * len(_CALL_INTS)
        bucket[:] = map(add, bucket, values)

    def _widen(self) -> None:
        old, self.buckets = self.buckets, {}
        self.width_ns *= 2
        for index, values in old.items():
            self.merge(index // 2, values)

    def merge(self, index: int, values: list[int]) -> None:
        bucket = self.buckets.setdefault(index, [0] * len(values))
        for i, value in enumerate(values):
            bucket[i] += value

    def series(self, width_ns: int) -> list[tuple[int, list[int]]]:
        """(bucket start in ns, sums as CallTotals.ints) per ``width_ns`` (at least the kept width)."""
        width_ns = max(width_ns, self.width_ns)
        merged: dict[int, list[int]] = {}
        for index, values in self.buckets.items():
            start = index * self.width_ns // width_ns * width_ns
            bucket = merged.setdefault(start, [0] * len(values))
            for i, value in enumerate(values):
                bucket[i] += value
        return sorted(merged.items())
