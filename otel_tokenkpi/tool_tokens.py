"""Tokens that a request's tool definitions bill, per provider (docs/tool-token-counting.md).

Providers do not bill the JSON of a tool schema. OpenAI shows the model a TypeScript-like
``namespace functions { ... }`` block in the system message (descriptions as ``//`` comments,
optional properties ``?:``, enums as unions of literals, ``T | null`` for nullable types) and bills
its tokens plus a small framing; Anthropic adds a fixed tool-use system prompt to every request
that has tools. So a request's tool-definition tokens are: per tool, what that tool's own text
bills (cached on its :class:`~otel_tokenkpi.invocation.ToolDefinition`, summed by the "unused tool
definitions" roll-up), plus a per-request overhead (the namespace wrapper and framing, or the
tool-use system prompt) that belongs to tool definitions as a whole.

Where no provider rule is known the count is an estimate (name, description and compact JSON
schema) and says so (``exact=False``, hence ``tokenkpi.tokens.estimated``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import prices, tokens
from .invocation import ToolDefinition

# -- the per-provider constants, one table (sources: docs/tool-token-counting.md) ----------------


@dataclass(frozen=True, slots=True)
class OpenAIFraming:
    """Tokens OpenAI adds around the rendered ``namespace functions`` block, per API and model family.

    ``no_system``: the request has no system/developer message, so the tools arrive in a new one
    (its message framing). ``with_system``: the block is appended to the first system message.
    ``forced_tool``: ``tool_choice`` names one function: this many tokens plus the name's own.
    All fitted on billed requests of public projects' recordings (tests/data/billed_tool_requests.json),
    taking the lowest fit so that a local count never exceeds the bill.
    """

    no_system: int
    with_system: int
    forced_tool: int | None
    strict_nullable: int = 0  # once per request when a strict tool has a nullable type


# Fitted on tests/data/billed_tool_requests.json (billed input minus the cookbook's message framing
# minus the rendered tools), lowest fit per row so that a local count never exceeds the bill:
# chat completions, gpt-3.5 / gpt-4* / gpt-4o* / gpt-4.1* / o-series: 0 or +1 under the bill; a strict
# tool with a nullable type adds 32-33 tokens once (reason unknown, 12 of 12 such requests).
_OPENAI_CHAT = OpenAIFraming(no_system=2, with_system=-1, forced_tool=7, strict_nullable=32)
# chat completions, gpt-5*: a fixed preamble of ~83 tokens whenever tools are present (83-84 fitted);
# a forced tool adds nothing.
_OPENAI_CHAT_GPT5 = OpenAIFraming(no_system=83, with_system=83, forced_tool=0)
# Responses API, gpt-4o* / gpt-4.1* (0 or +1 on plain requests; Agents SDK requests bill more).
_OPENAI_RESPONSES = OpenAIFraming(no_system=-4, with_system=-4, forced_tool=7)
# Responses API, gpt-5* (+0 to +3).
_OPENAI_RESPONSES_GPT5 = OpenAIFraming(no_system=1, with_system=1, forced_tool=0)

# Anthropic's tool-use system prompt, added to every request with tools (Anthropic "Tool use
# pricing and tokens"): (model name prefix, tokens for tool_choice auto/none, tokens for any/tool).
# Longest prefix wins; names are matched after dropping a provider/region prefix ("anthropic.",
# "us.anthropic.", "claude-" aliases on Bedrock and Vertex).
ANTHROPIC_TOOL_PROMPT: tuple[tuple[str, int, int], ...] = (
    ("claude-3-opus", 530, 281),  # Claude 3 Opus
    ("claude-3-sonnet", 159, 235),  # Claude 3 Sonnet
    ("claude-3-haiku", 264, 340),  # Claude 3 Haiku
    ("claude-3-5-haiku", 264, 340),  # Claude Haiku 3.5
    ("claude-3-5-sonnet-20240620", 294, 261),  # Claude Sonnet 3.5 (June 2024)
    ("claude-3-5-sonnet", 346, 313),  # Claude Sonnet 3.5 (October 2024)
    ("claude-3-7-sonnet", 346, 313),  # Claude Sonnet 3.7
    ("claude-sonnet-4", 346, 313),  # Claude Sonnet 4, 4.5, 4.6
    ("claude-opus-4", 346, 313),  # Claude Opus 4, 4.1, 4.5
    ("claude-haiku-4", 346, 313),  # Claude Haiku 4.5
)
# Newer Claude models whose row is not in the table yet: the current rows' figures, flagged estimated
# anyway (Claude's tool text has no offline tokenizer).
_ANTHROPIC_DEFAULT = (346, 313)

OPENAI_PROVIDERS = frozenset({"openai", "azure.ai.openai", "azure.openai"})


@dataclass(frozen=True, slots=True)
class ToolDefinitionTokens:
    """A request's tool-definition tokens: per tool (in request order), and the request's overhead."""

    per_tool: tuple[int, ...]
    overhead: int
    exact: bool

    @property
    def total(self) -> int:
        return sum(self.per_tool) + self.overhead


# -- OpenAI: the rendered namespace --------------------------------------------------------------

_NAMESPACE_HEAD = "# Tools\n\n## functions\n\nnamespace functions {\n\n"
_NAMESPACE_TAIL = "} // namespace functions"
_TAIL_CHARS = 200
_MAX_DEPTH = 12  # nested schemas / $ref chains deeper than this render as ``any``


class _Unrendered(Exception):
    """A schema feature whose rendering is not known (the count becomes an estimate)."""


def _comment_lines(text: str, indent: str = "") -> str:
    """Descriptions as ``//`` comments: one per line, each line stripped (blank lines become ``//``)."""
    return "".join(f"{indent}// {line.strip()}".rstrip() + "\n" for line in text.strip().splitlines())


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _default(value: Any, schema: dict[str, Any]) -> str:
    if isinstance(value, str):
        return value if schema.get("enum") else f'"{value}"'
    return _literal(value)


class _Renderer:
    """One tool's ``parameters`` JSON schema as OpenAI's TypeScript-like type."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.bare_first = 0  # objects whose first property has no comment (each bills one token less)

    def resolve(self, schema: Any, depth: int) -> Any:
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < _MAX_DEPTH:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise _Unrendered(ref)
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                raise _Unrendered(ref)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings}
            depth += 1
        return schema

    def type_of(self, schema: Any, depth: int) -> str:
        schema = self.resolve(schema, depth)
        if not isinstance(schema, dict) or depth >= _MAX_DEPTH:
            return "any"
        for key in ("anyOf", "oneOf"):
            variants = schema.get(key)
            if isinstance(variants, list) and variants:
                return " | ".join(self.type_of(v, depth + 1) for v in variants)
        kind = schema.get("type")
        if isinstance(kind, list):
            return " | ".join("number" if k == "integer" else str(k) for k in kind)
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return " | ".join(_literal(v) for v in enum)
        if "const" in schema:
            return _literal(schema["const"])
        if kind == "object" or "properties" in schema:
            return self.object_type(schema, depth)
        if kind == "array":
            return self.array_type(schema.get("items"), depth)
        if kind == "integer":
            return "number"
        if kind in ("string", "number", "boolean", "null"):
            return str(kind)
        return "any"

    def object_type(self, schema: dict[str, Any], depth: int) -> str:
        properties = schema.get("properties")
        if not isinstance(properties, dict) or not properties:
            return "object"
        return "{\n" + self.properties(schema, properties, depth + 1) + "}"

    def array_type(self, items: Any, depth: int) -> str:
        if not isinstance(items, dict):
            return "any[]"
        inner = self.type_of(items, depth + 1)
        union = " | " in inner and not inner.startswith("{")
        return f"({inner})[]" if union else f"{inner}[]"

    def properties(self, schema: dict[str, Any], properties: dict[str, Any], depth: int) -> str:
        required = schema.get("required")
        required = set(required) if isinstance(required, list) else set()
        out = []
        for position, (name, prop) in enumerate(properties.items()):
            prop = self.resolve(prop, depth)
            prop = prop if isinstance(prop, dict) else {}
            title, description = prop.get("title"), prop.get("description")
            comment = ""
            if isinstance(title, str) and title:
                comment += _comment_lines(title) + ("//\n" if isinstance(description, str) and description else "")
            if isinstance(description, str) and description:
                comment += _comment_lines(description)
            if position == 0 and not comment:
                self.bare_first += 1
            line = f"{name}{'' if name in required else '?'}: {self.type_of(prop, depth)},"
            if "default" in prop:
                line += f" // default: {_default(prop['default'], prop)}"
            out.append(comment + line + "\n")
        return "".join(out)


@lru_cache(maxsize=4096)
def render_openai_function(name: str, description: str, parameters_json: str) -> tuple[str, int, bool]:
    """A function tool as OpenAI shows it to the model: ``(text, token correction, rendered)``.

    ``rendered`` is False when the schema is not valid JSON or uses a feature whose rendering is
    unknown (the caller then estimates). The correction (<= 0) is one token per object whose first
    property has no comment: measured on billed requests, not explained by any text we could render.
    """
    head = _comment_lines(description) if description else ""
    try:
        schema = json.loads(parameters_json) if parameters_json else None
    except ValueError:
        return head + f"type {name} = () => any;\n\n", 0, False
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        return head + f"type {name} = () => any;\n\n", 0, parameters_json in ("", "null") or isinstance(schema, dict)
    renderer = _Renderer(schema)
    try:
        body = renderer.type_of(schema, 0)
    except _Unrendered:
        return head + f"type {name} = (_: {parameters_json}) => any;\n\n", 0, False
    return head + f"type {name} = (_: {body}) => any;\n\n", -renderer.bare_first, True


def _has_null(parameters_json: str) -> bool:
    return '"null"' in parameters_json or '"nullable":true' in parameters_json


def openai_namespace(blocks: list[str]) -> str:
    return _NAMESPACE_HEAD + "".join(blocks) + _NAMESPACE_TAIL


def _is_gpt5(model: str) -> bool:
    m = prices.canonical_model(model).strip().lower().rsplit("/", 1)[-1]
    return m.startswith("gpt-5")


def openai_framing(model: str, api: str | None) -> OpenAIFraming:
    gpt5 = _is_gpt5(model)
    if api == "responses":
        return _OPENAI_RESPONSES_GPT5 if gpt5 else _OPENAI_RESPONSES
    return _OPENAI_CHAT_GPT5 if gpt5 else _OPENAI_CHAT


def _system_tail(system_text: str) -> str:
    """The end of the system text, cut where a pre-token starts: enough to tokenize its seam with
    the appended tools as the provider does, without re-encoding a long system prompt."""
    tail = system_text[-_TAIL_CHARS:]
    if len(system_text) > _TAIL_CHARS:
        cut = max(tail.find(" "), tail.find("\n"))
        tail = tail[cut:] if cut > 0 else tail
    return tail


def _count_openai(
    tools: list[ToolDefinition], model: str, tool_choice: str | None, system_text: str | None, api: str | None
) -> ToolDefinitionTokens:
    blocks: list[str] = []
    per_tool: list[int] = []
    exact = True
    for tool in tools:
        if tool.kind != "function":  # built-in tools (web_search, ...) and custom grammars: no known rendering
            count = estimate_tool(tool, model)
            per_tool.append(count.tokens)
            exact = False
            continue
        text, correction, rendered = render_openai_function(tool.name, tool.description, tool.parameters_json)
        count = tokens.count_text(text, model)
        blocks.append(text)
        per_tool.append(max(0, count.tokens + correction))
        exact = exact and count.exact and rendered
    if not blocks:
        return ToolDefinitionTokens(tuple(per_tool), 0, False)
    framing = openai_framing(model, api)
    namespace = openai_namespace(blocks)
    rendered_sum = sum(tokens.count_text(b, model).tokens for b in blocks)
    if system_text:  # appended to the system message after a blank line
        tail = _system_tail(system_text)
        whole = tokens.count_text(tail + "\n\n" + namespace, model)
        overhead = whole.tokens - tokens.count_text(tail, model).tokens - rendered_sum + framing.with_system
    else:  # a system message of its own
        whole = tokens.count_text(namespace, model)
        overhead = whole.tokens - rendered_sum + framing.no_system
    if framing.strict_nullable and any(t.strict and _has_null(t.parameters_json) for t in tools):
        overhead += framing.strict_nullable
    if framing.forced_tool and tool_choice not in (None, "auto", "none", "required"):
        overhead += framing.forced_tool + tokens.count_text(tool_choice, model).tokens
    return ToolDefinitionTokens(tuple(per_tool), overhead, exact and whole.exact)


# -- Anthropic: the tool-use system prompt -------------------------------------------------------


def anthropic_tool_prompt_tokens(model: str | None, tool_choice: str | None) -> int:
    """The tool-use system prompt's tokens for ``model`` and ``tool_choice`` (auto/none vs any/tool)."""
    auto, forced = _ANTHROPIC_DEFAULT
    name = prices.canonical_model(model or "").strip().lower()
    name = name.rsplit("/", 1)[-1]
    name = name[name.find("claude") :] if "claude" in name else name
    best = ""
    for prefix, a, f in ANTHROPIC_TOOL_PROMPT:
        if name.startswith(prefix) and len(prefix) > len(best):
            best, auto, forced = prefix, a, f
    return auto if tool_choice in (None, "auto", "none") else forced


def is_anthropic_model(provider: str, model: str | None) -> bool:
    if provider == "anthropic":
        return True
    return provider in ("aws.bedrock", "gcp.vertex_ai") and "claude" in prices.canonical_model(model or "").lower()


def estimate_tool(tool: ToolDefinition, model: str | None = None) -> tokens.TokenCount:
    """Name, description and compact JSON schema: the estimate where no provider rule is known."""
    parts = [tokens.count_text(t, model) for t in (tool.name, tool.description, tool.parameters_json) if t]
    return tokens.TokenCount(sum(p.tokens for p in parts), all(p.exact for p in parts))


# -- the entry point -----------------------------------------------------------------------------


def count_request_tools(
    tools: list[ToolDefinition],
    provider: str,
    model: str | None,
    *,
    tool_choice: str | None = None,
    system_text: str | None = None,
    api: str | None = None,
) -> ToolDefinitionTokens:
    """What ``tools`` bill in one request to ``provider``/``model``; never raises on odd schemas.

    ``tool_choice`` is normalised by the adapters: "auto", "none", "required"/"any", or a tool name.
    ``system_text``: the request's first system/developer text, if any (OpenAI appends the tools to it).
    ``api``: "responses" for OpenAI's Responses API (its framing differs from chat completions).
    """
    if not tools:
        return ToolDefinitionTokens((), 0, True)
    if provider in OPENAI_PROVIDERS and tokens.encoding_name_for_model(model) is not None:
        assert model is not None
        return _count_openai(tools, model, tool_choice, system_text, api)
    if is_anthropic_model(provider, model):
        per_tool = tuple(estimate_tool(t, model).tokens for t in tools)
        choice = "any" if tool_choice == "required" else tool_choice
        return ToolDefinitionTokens(per_tool, anthropic_tool_prompt_tokens(model, choice), False)
    counts = [estimate_tool(t, model) for t in tools]
    return ToolDefinitionTokens(tuple(c.tokens for c in counts), 0, all(c.exact for c in counts))
