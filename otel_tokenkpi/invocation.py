"""What happened in one model call, in provider-neutral terms.

Adapters fill these plain objects from a client library's request, response
and stream chunks; the lifecycle, the engine and content capture read only
these. Keeping *what happened* apart from *how it is recorded* is what lets
one lifecycle serve every provider (the same split as opentelemetry-util-genai).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from .history import RememberedFold
    from .rollup import Rollup
    from .tokens import TokenCount

AttributeValue = Union[str, bool, int, float, "list[str]", "list[int]", "list[float]", "list[bool]"]


@dataclass(slots=True)
class ToolCall:
    """A tool call the model asked for (or that history carries)."""

    name: str
    arguments: str  # JSON text as the provider sent it
    id: str = ""
    # The waste engine's identity of this call (name + arguments as a JSON value), computed once.
    key: tuple[str, str] | None = None


@dataclass(slots=True)
class PartMemo:
    """What the engine worked out about one part of a request, kept on the part.

    Adapters hand back the same object for a message that is re-sent (their identity memo,
    docs/architecture.md), so a long agent history is counted and fingerprinted once, not every turn.
    Only the engine writes here; adapters never read it.
    """

    counted_for: str | None = None  # the model ``count`` is for (counts differ by encoding)
    count: TokenCount | None = None
    fingerprint: int | None = None  # otel_tokenkpi.identity.item_fingerprint
    # On a request's last item: the history fold up to here, so that the next request that starts with
    # the same items resumes from it (otel_tokenkpi.history).
    fold: RememberedFold | None = None


@dataclass(slots=True)
class ToolDefinition:
    """A tool offered to the model. ``parameters_json`` is compact JSON."""

    name: str
    description: str = ""
    parameters_json: str = ""
    # "function" for a function tool with a JSON schema; otherwise the provider's tool type
    # (OpenAI built-ins such as "web_search", "custom" grammar tools), whose rendering is unknown.
    kind: str = "function"
    strict: bool = False  # OpenAI strict (structured-outputs) mode
    memo: PartMemo = field(default_factory=PartMemo)


@dataclass(slots=True)
class ContextItem:
    """One message of the request's context.

    ``role`` is normalised to system, user, assistant or tool (tool results).
    ``text`` is the message's text content (parts joined); images and audio are
    not counted.
    """

    role: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    # True for top-level instructions (Responses ``instructions``, Anthropic ``system``):
    # recorded as gen_ai.system_instructions, not as a chat message.
    is_instructions: bool = False
    memo: PartMemo = field(default_factory=PartMemo)


@dataclass(slots=True)
class Usage:
    """Token usage as the provider reported it, mapped to semconv meaning.

    ``input_tokens`` INCLUDES cached tokens and ``output_tokens`` includes
    reasoning tokens, for every provider (adapters do the arithmetic).
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(slots=True)
class CallRequest:
    """What the user asked for, read by the adapter before the call."""

    operation: str
    provider: str
    model: str | None
    server_address: str | None = None
    server_port: int | None = None
    params: dict[str, AttributeValue] = field(default_factory=dict)
    messages: list[ContextItem] = field(default_factory=list)
    tools: list[ToolDefinition] = field(default_factory=list)
    stream: bool = False
    # Responses API: history the server holds (previous_response_id / conversation).
    server_history_ref: str | None = None
    # False when the request's content is unknown (a foreign span that recorded no
    # messages): content-based rules are then absent rather than zero.
    content_known: bool = True
    # The context window the request itself sets (ollama's ``options.num_ctx``): it wins over the
    # model's published window for tokenkpi.context.window / .utilization.
    context_window: int | None = None
    # How the request lets the model use its tools: "auto", "none", "required", or the name of the
    # one tool it must call (providers bill tool definitions differently per choice).
    tool_choice: str | None = None
    # The provider API when one provider has several with different billing rules ("responses").
    api: str | None = None


@dataclass(slots=True)
class OutputMessage:
    """One choice / output message of a response."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass(slots=True)
class CallResult:
    """What came back: from a response object or accumulated stream chunks."""

    response_id: str | None = None
    response_model: str | None = None
    outputs: list[OutputMessage] = field(default_factory=list)
    usage: Usage | None = None
    output_type: str | None = None
    # Provider-specific ``tokenkpi.*`` facts with no semconv name (e.g. Cohere's processed, as
    # opposed to billed, token counts), written on the span as they are.
    provider_attributes: dict[str, AttributeValue] = field(default_factory=dict)

    @property
    def finish_reasons(self) -> list[str]:
        return [o.finish_reason for o in self.outputs if o.finish_reason]

    @property
    def output_text(self) -> str:
        return "".join(o.text for o in self.outputs)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [call for o in self.outputs for call in o.tool_calls]


@dataclass(slots=True)
class CallSurroundings:
    """Where a call ran, captured when it started: the user's blocks and the trace.

    The engine keys conversation state and feeds roll-ups from this; it is read
    from context variables at call start because a stream may end elsewhere.
    """

    user_attributes: dict[str, AttributeValue] = field(default_factory=dict)
    conversation_id: str | None = None
    trace_id: int | None = None  # the call span's trace, when its context is valid
    span_id: int | None = None
    has_parent: bool = False  # the call runs under another span: the trace spans several calls
    rollups: tuple[Rollup, ...] = ()  # roll-ups of the task() blocks around the call, innermost last
    started_at: float = 0.0  # time.time() (a foreign span's start time): "earlier" for repeated requests


@dataclass(slots=True)
class FinishedCall:
    """A finished model call as the engine sees it."""

    request: CallRequest
    result: CallResult | None
    error_type: str | None = None
    duration_s: float = 0.0
    # False for a stream left before its end (closed, exited, abandoned, failed):
    # what the model produced and billed was not all seen.
    complete: bool = True
    surroundings: CallSurroundings = field(default_factory=CallSurroundings)
