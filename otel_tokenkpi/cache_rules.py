"""When could a provider have served re-sent context from its prompt cache?

Re-sent history is waste only where a cache could have saved it (docs/architecture.md "Cache eligibility"): a
318-token prompt re-sent to OpenAI is not waste, since OpenAI caches nothing under 1,024 tokens. One
table, per provider and model family, with its sources; docs/cache-eligibility.md is its human-readable
twin and tests/test_cache_rules.py keeps them equal.

Every cache reuses a PREFIX of the prompt, and the re-sent part of a request (tool definitions, system,
history up to the last assistant message) is such a prefix. So the most a cache could have served is
the re-sent prefix, when it reaches the model's minimum, rounded down to the provider's cache unit. The
rule is deliberately conservative: a prefix below the minimum is never waste, even when the whole prompt
is above it, because "waste" must be something the user could have avoided.

``automatic`` caches need nothing from the user (OpenAI, Gemini 2.5+, DeepSeek); ``explicit`` ones need a
``cache_control`` / ``cachePoint`` marker (Anthropic, Bedrock): re-sent tokens are waste there too, since
the fix is one marker. ``none``: the provider has no prompt cache for that model, so nothing re-sent is
waste. A provider or model not in the table: the rule cannot be evaluated and its attribute is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from . import prices


@dataclass(frozen=True, slots=True)
class CacheRule:
    mode: str  # "automatic", "explicit" or "none"
    min_tokens: int = 0  # the shortest prefix the provider caches
    unit: int = 1  # cache hits come in multiples of this many tokens (past the minimum)
    source: str = ""

    def cacheable(self, prefix_tokens: int) -> int:
        """The most of a ``prefix_tokens``-long prefix this cache could have served."""
        if self.mode == "none" or prefix_tokens < self.min_tokens:
            return 0
        if self.unit <= 1:
            return prefix_tokens
        return (prefix_tokens - self.min_tokens) // self.unit * self.unit + self.min_tokens


_OPENAI_DOC = (
    "platform.openai.com/docs/guides/prompt-caching (1,024 tokens, then 128-token increments; gpt-4o and newer)"
)
_ANTHROPIC_DOC = "docs.anthropic.com/en/docs/build-with-claude/prompt-caching (minimum cacheable prompt length)"
_BEDROCK_DOC = "docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html (Claude minima as Anthropic's)"
_GEMINI_DOC = "ai.google.dev/gemini-api/docs/caching (implicit caching, Gemini 2.5 and newer)"

OPENAI = CacheRule("automatic", 1024, 128, _OPENAI_DOC)
OPENAI_NONE = CacheRule("none", source=_OPENAI_DOC + ": models before gpt-4o have no prompt caching")

# (provider names, model-name prefixes after any "vendor." / "vendor/" part, rule); first match wins,
# so longer prefixes come before the shorter ones they extend.
_TABLE: tuple[tuple[frozenset[str], tuple[str, ...], CacheRule], ...] = (
    (frozenset({"openai", "azure.ai.openai"}), ("gpt-4o-2024-05-13",), OPENAI_NONE),
    (
        frozenset({"openai", "azure.ai.openai"}),
        ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "codex"),
        OPENAI,
    ),
    (frozenset({"openai", "azure.ai.openai"}), ("gpt-4", "gpt-3.5", "gpt-35"), OPENAI_NONE),
    # Anthropic, and Claude on Bedrock / Vertex: the same minima per model.
    (
        frozenset({"anthropic", "aws.bedrock", "gcp.vertex_ai"}),
        ("claude-opus-4-5", "claude-opus-4-6", "claude-haiku-4-5"),
        CacheRule("explicit", 4096, 1, _ANTHROPIC_DOC + ": Opus 4.5 / 4.6, Haiku 4.5"),
    ),
    (
        frozenset({"anthropic", "aws.bedrock", "gcp.vertex_ai"}),
        ("claude-sonnet-4-6",),
        CacheRule("explicit", 2048, 1, _ANTHROPIC_DOC + ": Sonnet 4.6"),
    ),
    (
        frozenset({"anthropic", "aws.bedrock", "gcp.vertex_ai"}),
        ("claude-3-haiku", "claude-3-5-haiku", "claude-haiku-3"),
        CacheRule("explicit", 2048, 1, _ANTHROPIC_DOC + ": Haiku 3 / 3.5"),
    ),
    (
        frozenset({"anthropic", "aws.bedrock", "gcp.vertex_ai"}),
        ("claude-opus-4", "claude-sonnet-4", "claude-3-7-sonnet", "claude-3-5-sonnet", "claude-3-opus"),
        CacheRule("explicit", 1024, 1, _ANTHROPIC_DOC + ": Opus 4 / 4.1, Sonnet 3.5 / 3.7 / 4 / 4.5, Opus 3"),
    ),
    (
        frozenset({"aws.bedrock"}),
        ("amazon.nova", "nova-"),
        CacheRule("explicit", 1000, 1, _BEDROCK_DOC + ": Amazon Nova, 1K tokens per checkpoint"),
    ),
    # Gemini implicit caching. The docs' figures changed over 2025-26; the API's own 400 answer
    # ("min_total_token_count") was 1,024 for 2.5 Flash and 2,048 for 2.5 Flash-Lite.
    (
        frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"}),
        ("gemini-2.5-flash-lite",),
        CacheRule("automatic", 2048, 1, _GEMINI_DOC + "; 2.5 Flash-Lite as the API enforces it"),
    ),
    (
        frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"}),
        ("gemini-2.5-flash",),
        CacheRule("automatic", 1024, 1, _GEMINI_DOC + ": 2.5 Flash"),
    ),
    (
        frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"}),
        ("gemini-2.5-pro",),
        CacheRule("automatic", 2048, 1, _GEMINI_DOC + ": 2.5 Pro"),
    ),
    (
        frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"}),
        ("gemini-3", "gemini-4"),
        CacheRule("automatic", 4096, 1, _GEMINI_DOC + ": Gemini 3 Pro and later"),
    ),
    (
        frozenset({"gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai"}),
        ("gemini-1.", "gemini-2.0"),
        CacheRule("none", source=_GEMINI_DOC + ": implicit caching starts with Gemini 2.5"),
    ),
    (
        frozenset({"deepseek"}),
        ("deepseek",),
        CacheRule("automatic", 64, 64, "api-docs.deepseek.com/guides/kv_cache (64-token cache units)"),
    ),
    # Local inference is not billed per token: a re-sent prompt costs nothing that a cache could refund.
    (frozenset({"ollama"}), ("",), CacheRule("none", source="Ollama runs locally; nothing is billed per token")),
)


def _model_key(model: str) -> str:
    """``anthropic.claude-3-5-haiku-20241022-v1:0`` / ``us.anthropic.claude-…`` / ``models/gemini-…`` /
    ``openai/gpt-4o`` -> the model family name the table is written in."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for vendor in ("anthropic.", "amazon.", "meta.", "mistral.", "openai."):
        position = name.find(vendor)
        if position >= 0 and (position == 0 or name[position - 1] == "."):
            name = name[position + (0 if vendor == "amazon." else len(vendor)) :]
            break
    return name.removeprefix("ft:")


def rule_for(provider: str, model: str | None) -> CacheRule | None:
    """The cache rule for this provider's model (a ``model_aliases`` name: its model's); None when the table
    does not know it."""
    return _rule_for(provider, prices.canonical_model(model)) if model else None


@lru_cache(maxsize=1024)
def _rule_for(provider: str, model: str) -> CacheRule | None:
    key = _model_key(model)
    for providers, prefixes, rule in _TABLE:
        if provider in providers and key.startswith(prefixes):
            return rule
    return None


def table() -> list[tuple[str, str, CacheRule]]:
    """(providers, model prefixes, rule) rows, for docs/cache-eligibility.md and its test."""
    return [
        (", ".join(sorted(providers)), ", ".join(p or "(all)" for p in prefixes), r)
        for providers, prefixes, r in _TABLE
    ]
