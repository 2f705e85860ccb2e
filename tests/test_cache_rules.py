"""The cache-eligibility table (docs/architecture.md "Cache eligibility") and the reconciled breakdown, as plain
functions: which re-sent tokens a cache could have served, per provider and model family, and how the
breakdown adds up to the billed input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_tokenkpi import cache_rules
from otel_tokenkpi.breakdown import reconcile
from otel_tokenkpi.invocation import Usage
from otel_tokenkpi.waste import uncached_resent_tokens


@pytest.mark.parametrize(
    ("provider", "model", "mode", "minimum"),
    [
        ("openai", "gpt-4o", "automatic", 1024),
        ("openai", "gpt-4o-mini-2024-07-18", "automatic", 1024),
        ("openai", "gpt-5.1", "automatic", 1024),
        ("openai", "o3-mini", "automatic", 1024),
        ("azure.ai.openai", "gpt-4.1-nano", "automatic", 1024),
        ("openai", "gpt-4o-2024-05-13", "none", 0),  # the first gpt-4o snapshot predates prompt caching
        ("openai", "gpt-4-turbo", "none", 0),
        ("openai", "gpt-3.5-turbo", "none", 0),
        ("anthropic", "claude-haiku-4-5", "explicit", 4096),
        ("anthropic", "claude-opus-4-5-20251101", "explicit", 4096),
        ("anthropic", "claude-sonnet-4-6", "explicit", 2048),
        ("anthropic", "claude-sonnet-4-5", "explicit", 1024),
        ("anthropic", "claude-opus-4-1", "explicit", 1024),
        ("anthropic", "claude-3-5-haiku-latest", "explicit", 2048),
        ("anthropic", "claude-3-7-sonnet-20250219", "explicit", 1024),
        ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", "explicit", 2048),
        ("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "explicit", 1024),
        ("aws.bedrock", "us.amazon.nova-pro-v1:0", "explicit", 1000),
        ("gcp.gemini", "gemini-2.5-flash", "automatic", 1024),
        ("gcp.gemini", "models/gemini-2.5-flash-lite", "automatic", 2048),
        ("gcp.vertex_ai", "gemini-2.5-pro", "automatic", 2048),
        ("gcp.gemini", "gemini-3-pro-preview", "automatic", 4096),
        ("gcp.gemini", "gemini-2.0-flash", "none", 0),
        ("deepseek", "deepseek-chat", "automatic", 64),
        ("ollama", "llama3.2", "none", 0),
    ],
)
def test_each_model_family_gets_its_documented_rule(provider, model, mode, minimum):
    rule = cache_rules.rule_for(provider, model)
    assert rule is not None and (rule.mode, rule.min_tokens) == (mode, minimum)
    assert rule.source  # every row says where its numbers come from


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("mistral_ai", "mistral-large-latest"),
        ("cohere", "command-a-03-2025"),
        ("openai", "my-azure-deployment"),
        ("groq", "llama-3.3-70b-versatile"),
        ("anthropic", None),
    ],
)
def test_an_unknown_provider_or_model_has_no_rule(provider, model):
    assert cache_rules.rule_for(provider, model) is None


def test_openai_caches_from_1024_tokens_in_128_token_steps():
    rule = cache_rules.rule_for("openai", "gpt-4o")
    assert rule is not None
    assert [rule.cacheable(n) for n in (318, 1023, 1024, 1151, 1152, 5000)] == [0, 0, 1024, 1024, 1152, 4992]


def test_uncached_resent_is_waste_only_where_a_cache_could_have_served_it():
    openai = cache_rules.rule_for("openai", "gpt-4o")
    haiku = cache_rules.rule_for("anthropic", "claude-haiku-4-5")
    # The example: a 318-token prompt re-sent without caching is re-sent, not waste.
    assert uncached_resent_tokens(318, Usage(input_tokens=400), openai) == 0
    assert uncached_resent_tokens(2000, Usage(input_tokens=2100), openai) == 1920
    assert uncached_resent_tokens(2000, Usage(input_tokens=2100, cache_read_tokens=1920), openai) == 0
    assert uncached_resent_tokens(2000, Usage(input_tokens=2100, cache_read_tokens=1024), openai) == 896
    assert uncached_resent_tokens(3000, Usage(input_tokens=3100), haiku) == 0  # Haiku 4.5 caches from 4,096
    assert uncached_resent_tokens(5000, Usage(input_tokens=5100, cache_read_tokens=4096), haiku) == 904
    assert uncached_resent_tokens(5000, Usage(input_tokens=5100), None) is None  # unknown rules: absent
    assert uncached_resent_tokens(5000, None, openai) is None  # no usage: absent


def test_the_breakdown_adds_up_to_the_bill_with_an_explicit_remainder():
    parts = reconcile(system=9, tool_definitions=200, tool_results=50, resent=150, new=120, billed_input=300)
    assert (parts.resent, parts.new, parts.unattributed, parts.scaled) == (150, 120, 30, False)
    assert (parts.system, parts.tool_definitions, parts.tool_results) == (9, 200, 50)
    assert parts.resent + parts.new + parts.unattributed == 300


def test_parts_larger_than_the_bill_are_scaled_down_to_it_never_published_as_exact():
    # The example: system 9 + tool definitions 293 counted locally against 252 billed.
    parts = reconcile(system=9, tool_definitions=293, tool_results=0, resent=0, new=302, billed_input=252)
    assert parts.scaled and parts.unattributed == 0
    assert parts.resent + parts.new == 252
    assert (parts.system, parts.tool_definitions) == (9 * 252 // 302, 293 * 252 // 302) == (7, 244)
    assert parts.system + parts.tool_definitions <= 252


def test_without_a_bill_there_is_no_remainder():
    parts = reconcile(system=1, tool_definitions=2, tool_results=3, resent=4, new=5, billed_input=None)
    assert (parts.resent, parts.new, parts.unattributed, parts.scaled) == (4, 5, None, False)


def test_the_docs_table_lists_every_rule():
    doc = Path(__file__).resolve().parents[1] / "docs" / "cache-eligibility.md"
    text = doc.read_text()
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|"))
        for line in text.splitlines()
        if line.startswith("| ")
    }
    for providers, prefixes, rule in cache_rules.table():
        minimum = f"{rule.min_tokens:,}" if rule.mode != "none" else "-"
        assert (providers, prefixes, rule.mode, minimum, str(rule.unit) if rule.mode != "none" else "-") in {
            row[:5] for row in rows
        }, (providers, prefixes)
    assert re.search(r"Sources", text)
