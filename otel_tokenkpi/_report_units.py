"""Tasks for the report: which roll-up spans are outermost, and whom a late outcome belongs to.

A *unit* is a span with ``tokenkpi.trace.*`` roll-ups: an ``otel_tokenkpi.task()`` span, a local root the
span processor enriched, or a model call that is its own root. Every unit is a row of the task table; the
totals and ``--by`` groups count only outermost ones, so no model call counts twice. Nesting is judged
within one process of one trace (a roll-up covers the calls of its own process only):

- a unit without a parent, or whose parent is remote (OTLP span flags), is a local root: outermost, and
  every other unit of its trace in that process is inside it;
- otherwise it waits until its local root turns up (which it usually does soon: children end, and are
  exported, first) or the input ends; then units still waiting are judged by time, as before: a unit
  contained in another's time is nested unless both share a parent (concurrent siblings).

Memory is flat in the input's size. The last ``WINDOW`` traces with roll-ups and conversations are kept
in memory (to place units nested in a root that arrives later: in a Collector's file a process's spans of
one trace come within one export batch or the next); older ones are appended to an anonymous temporary
file. A late outcome is placed as it arrives when memory alone decides it (its task is in memory, and a
fixed-size filter of what left memory says no earlier entry can be in the file); the others, whose task
is older than the window or not read yet, wait for the end, where the file is read back once. Units
still waiting for their root beyond the window (counted in traces, between lines) are judged early, by
time. Never the spans.

Late outcomes (``record_outcome(ok, conversation_id=...)`` or ``trace_id=...`` after the work ended) are
``record_outcome`` spans with ``tokenkpi.outcome`` and no roll-up. Each counts as one outcome of the task
it names: the conversation's first unit (and its outermost unit), else the trace the span links to (the
conversation's last call); its ``--by`` group is that task's, else the outcome span's own.
"""

from __future__ import annotations

import heapq
import itertools
import marshal
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from . import semconv as sc
from ._otlp_json import SpanRecord

__all__ = ["Label", "LateOutcome", "Rollup", "TaskRun", "Units"]

NONE_GROUP = "(none)"
TOP_TASKS = 10
WINDOW = 10_000  # traces (and conversations, and traces with units waiting) kept in memory; see above


@dataclass(frozen=True, slots=True)
class Label:
    """What a unit is, interned: many units share one."""

    group: str
    name: str
    is_task: bool  # an otel_tokenkpi.task() span (invoke_workflow), not a processor-enriched root
    instance: str  # the process (resource) it came from
    index: int = field(default=-1, compare=False)  # its place among the interned labels: what a spill stores


@dataclass(slots=True)
class Rollup:
    """The roll-up numbers of one unit."""

    llm_calls: int
    input_tokens: int
    output_tokens: int
    waste_tokens: int
    unused_tool_tokens: int
    cost_usd: float | None
    waste_cost_usd: float | None
    outcome: str | None
    unused_tools: tuple[str, ...] = ()

    @classmethod
    def of(cls, attrs: dict[str, Any]) -> Rollup:
        get = attrs.get
        tools = get(sc.TRACE_UNUSED_TOOL_NAMES)
        outcome = get(sc.OUTCOME)
        return cls(
            get(sc.TRACE_LLM_CALLS, 0),
            get(sc.TRACE_INPUT_TOKENS, 0),
            get(sc.TRACE_OUTPUT_TOKENS, 0),
            get(sc.TRACE_WASTE_TOKENS, 0),
            get(sc.TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS, 0),
            get(sc.TRACE_COST_USD),
            get(sc.TRACE_WASTE_COST_USD),
            outcome if outcome in ("success", "failure") else None,
            tuple(map(str, tools)) if isinstance(tools, tuple) else (),
        )

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class TaskRun:
    """One outermost unit, as the costliest-tasks list shows it."""

    label: Label
    trace_id: str
    start: int
    end: int
    rollup: Rollup
    late_outcomes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Waiting:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start: int
    end: int
    label: Label
    rollup: Rollup


@dataclass(slots=True)
class LateOutcome:
    outcome: str
    conversation: str | None
    links: tuple[str, ...]
    group: str


class _Spill:
    """Entries that left memory, in an anonymous temporary file (deleted on close), in batches."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self.entries = 0

    def write(self, batch: list[tuple[Any, ...]]) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        data = marshal.dumps(batch)  # a batch with its length: marshal.load on a file reads in tiny pieces
        self._file.write(len(data).to_bytes(8, "little") + data)
        self.entries += len(batch)

    def read(self) -> Iterator[tuple[Any, ...]]:
        if self._file is None:
            return
        self._file.seek(0)
        while size := self._file.read(8):
            yield from marshal.loads(self._file.read(int.from_bytes(size, "little")))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _LeftMemory:
    """A Bloom filter of the keys that went to a spill file, in a fixed 1 MB: ``might_hold`` never says no
    for a key that was added, and says yes for one that was not about once in 20,000 at 76,000 keys
    (a million-span fleet file), once in 20 at a million. A yes only defers a late outcome to the end."""

    BITS = 1 << 23

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)
        self.empty = True

    def add_all(self, keys: Iterable[object]) -> None:
        self.empty = False
        bits, mask = self._bits, self.BITS - 1
        for key in keys:  # _positions, inlined: a spill adds thousands at a time
            hashed = hash(key)
            first, second = hashed & mask, ((hashed >> 23) | 1) * 0x9E3779B1 & mask
            bits[first >> 3] |= 1 << (first & 7)
            bits[second >> 3] |= 1 << (second & 7)

    def might_hold(self, key: object) -> bool:
        bits = self._bits
        return not self.empty and all(bits[p >> 3] & (1 << (p & 7)) for p in self._positions(key))

    def _positions(self, key: object) -> tuple[int, int]:
        hashed = hash(key)
        return hashed & (self.BITS - 1), ((hashed >> 23) | 1) * 0x9E3779B1 & (self.BITS - 1)


class Units:
    """Feed it every unit with :meth:`add`; :meth:`finish` once at the end. ``counted`` is called once per
    outermost unit, with its label and roll-up; ``placed`` once per late outcome, with the names of the
    tasks it counts for (none: its task is not in the input) and its ``--by`` group."""

    def __init__(self, counted: Any, placed: Any, window: int | None = None) -> None:
        self._counted = counted
        self._placed = placed
        self._window = max(1, WINDOW if window is None else window)
        self._by_key: dict[tuple[str, str, bool, str], Label] = {}  # interned labels
        self._label_list: list[Label] = []  # by Label.index
        self._roots: dict[int, tuple[Label, ...]] = {}  # trace -> its local roots' labels
        self._waiting: dict[tuple[str, str], list[_Waiting]] = defaultdict(list)  # (trace, process) -> units
        # conversation id -> (first unit's label, its trace, its order): the earliest order wins at the end
        self._conversations: dict[str, tuple[Label, str, int]] = {}
        self._spilled_roots = _Spill()  # (trace, label indexes)
        self._spilled_conversations = _Spill()  # (conversation id, label index, trace, order)
        self._left_memory = _LeftMemory()  # conversation ids and trace keys that went to a spill file
        self._top: list[tuple[float, int, int, TaskRun]] = []  # min-heap of the costliest outermost units
        self._seq = 0
        self._units_seen = 0
        self.late: list[LateOutcome] = []  # the ones left for the end

    def label(self, group: str, name: str, is_task: bool, instance: str) -> Label:
        key = (group, name, is_task, instance)  # a tuple hashes in C; the dataclass's hash is Python code
        label = self._by_key.get(key)
        if label is None:
            label = self._by_key[key] = Label(group, name, is_task, instance, len(self._label_list))
            self._label_list.append(label)
        return label

    def add(self, span: SpanRecord, label: Label, rollup: Rollup) -> None:
        self._units_seen += 1
        conversation = span.attributes.get(sc.CONVERSATION_ID)
        if conversation and conversation not in self._conversations:
            self._conversations[conversation] = (label, span.trace_id, self._units_seen)
            if len(self._conversations) > self._window:
                self._spill_conversations()
        if span.parent_span_id is None or span.parent_remote:
            self._root(span.trace_id, label)
            self._waiting.pop((span.trace_id, label.instance), None)  # inside this root: counted in it
            self._count(label, rollup, span.trace_id, span.start, span.end)
            return
        if self._root_in(span.trace_id, label.instance) is not None:
            return  # inside a local root already counted
        waiting = _Waiting(span.trace_id, span.span_id, span.parent_span_id, span.start, span.end, label, rollup)
        self._waiting[(span.trace_id, label.instance)].append(waiting)

    def end_of_line(self) -> None:
        """Judge the oldest waiting units beyond the window, by time. Only between lines: a line is one
        export batch, whose units (grouped by scope) may all come before their roots in the same line."""
        if len(self._waiting) > self._window:
            for key in list(itertools.islice(self._waiting, len(self._waiting) - self._window)):
                self._judge(*key, self._waiting.pop(key))

    def add_late_outcome(self, span: SpanRecord, group: str) -> None:
        conversation = span.attributes.get(sc.CONVERSATION_ID)
        late = LateOutcome(span.attributes[sc.OUTCOME], conversation or None, span.links, group)
        if not self._place_now(late):
            self.late.append(late)

    def _place_now(self, late: LateOutcome) -> bool:
        """Place ``late`` if memory alone decides it as :meth:`finish` would: its conversation's first unit
        and the root of the trace it names are in memory, and no earlier entry of either can be in a spill."""
        left = self._left_memory.might_hold
        first: Label | None = None
        if late.conversation:
            target = self._conversations.get(late.conversation)
            if target is None or left(late.conversation):
                return False
            first, trace_id = target[0], target[1]
        elif late.links:
            trace_id = late.links[0]
        else:
            return False
        key = int(trace_id, 16)
        roots = self._roots.get(key)
        if not roots or left(key):
            return False  # its root may come later, or be in a spill: decided at the end
        self._place(late, first, trace_id, roots[0])
        return True

    def _place(self, late: LateOutcome, first: Label | None, trace_id: str | None, root: Label | None) -> None:
        names: set[str] = set()
        group = NONE_GROUP
        if first is not None:
            names.add(first.name)
            group = first.group
        if root is not None and trace_id is not None:
            names.add(root.name)
            group = root.group if root.group != NONE_GROUP else group
            self._mark_late(trace_id, late.outcome)
        self._placed(late, names, group if group != NONE_GROUP else late.group)

    def _root(self, trace_id: str, label: Label) -> None:
        key = int(trace_id, 16)
        self._roots[key] = (*self._roots.get(key, ()), label)
        if len(self._roots) > self._window:
            oldest = list(itertools.islice(self._roots.items(), self._window // 4 + 1))
            for trace, _ in oldest:
                del self._roots[trace]
            self._left_memory.add_all(trace for trace, _ in oldest)
            self._spilled_roots.write([(trace, tuple(label.index for label in labels)) for trace, labels in oldest])

    def _spill_conversations(self) -> None:
        oldest = list(itertools.islice(self._conversations.items(), self._window // 4 + 1))
        for conversation, _ in oldest:
            del self._conversations[conversation]
        self._left_memory.add_all(conversation for conversation, _ in oldest)
        self._spilled_conversations.write(
            [(conversation, label.index, trace, seq) for conversation, (label, trace, seq) in oldest]
        )

    def _root_in(self, trace_id: str, instance: str) -> Label | None:
        for label in self._roots.get(int(trace_id, 16), ()):
            if label.instance == instance:
                return label
        return None

    def _judge(self, trace_id: str, instance: str, units: list[_Waiting]) -> None:
        """Count the outermost of units whose local root never came: by time, siblings apart."""
        if self._root_in(trace_id, instance) is not None:
            return
        outer: _Waiting | None = None  # the unit reaching furthest so far, in start order
        for unit in sorted(units, key=lambda u: (u.start, -u.end, u.span_id)):
            if outer is not None and unit.end <= outer.end and unit.parent_span_id != outer.parent_span_id:
                continue  # inside ``outer``: its calls are in outer's roll-up already
            self._root(trace_id, unit.label)
            self._count(unit.label, unit.rollup, trace_id, unit.start, unit.end)
            if outer is None or unit.end > outer.end:
                outer = unit

    def _count(self, label: Label, rollup: Rollup, trace_id: str, start: int, end: int) -> None:
        self._counted(label, rollup)
        cost = rollup.cost_usd if rollup.cost_usd is not None else -1.0
        self._seq += 1
        rank = (cost, rollup.tokens, -self._seq)
        if len(self._top) < TOP_TASKS:
            heapq.heappush(self._top, (*rank, TaskRun(label, trace_id, start, end, rollup)))
        elif rank > self._top[0][:3]:  # most units never make the top: no TaskRun for them
            heapq.heapreplace(self._top, (*rank, TaskRun(label, trace_id, start, end, rollup)))

    def finish(self) -> None:
        """Count the units still waiting, then place the late outcomes left for the end."""
        waiting, self._waiting = self._waiting, defaultdict(list)
        for (trace_id, instance), units in waiting.items():
            self._judge(trace_id, instance, units)
        conversations, roots = self._lookups()
        for late in self.late:
            target = conversations.get(late.conversation) if late.conversation else None
            traces = [target[1]] if target is not None else list(late.links)
            found = next(((t, roots[int(t, 16)][0]) for t in traces if roots.get(int(t, 16))), (None, None))
            self._place(late, target[0] if target is not None else None, *found)
        self.late = []
        self._spilled_roots.close()
        self._spilled_conversations.close()

    def _lookups(self) -> tuple[dict[str, tuple[Label, str, int]], dict[int, tuple[Label, ...]]]:
        """The conversations and roots the late outcomes name: from memory, and from the spill files (read
        once each, keeping only what is named; an earlier entry comes first)."""
        if not self.late or not (self._spilled_conversations.entries or self._spilled_roots.entries):
            return self._conversations, self._roots
        labels = self._label_list
        named = {late.conversation for late in self.late if late.conversation}
        conversations = {c: self._conversations[c] for c in named if c in self._conversations}
        for conversation, label, trace, seq in self._spilled_conversations.read():
            if conversation in named:
                kept = conversations.get(conversation)
                if kept is None or seq < kept[2]:
                    conversations[conversation] = (labels[label], trace, seq)
        traces = {int(t, 16) for late in self.late for t in late.links}
        traces.update(int(target[1], 16) for target in conversations.values())
        spilled: dict[int, tuple[Label, ...]] = {}
        for trace, indexes in self._spilled_roots.read():
            if trace in traces:
                spilled[trace] = (*spilled.get(trace, ()), *(labels[i] for i in indexes))
        roots = {t: (*spilled.get(t, ()), *self._roots.get(t, ())) for t in traces}
        return conversations, roots

    def _mark_late(self, trace_id: str, outcome: str) -> None:
        for entry in self._top:
            if entry[3].trace_id == trace_id:
                entry[3].late_outcomes.append(outcome)

    def top(self) -> list[TaskRun]:
        """The costliest outermost units (by cost, then tokens), costliest first."""
        return [entry[3] for entry in sorted(self._top, reverse=True)]
