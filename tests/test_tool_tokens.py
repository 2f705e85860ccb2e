"""Tool-definition tokens as each provider bills them (otel_tokenkpi.tool_tokens).

The OpenAI rules are checked against billed requests recorded by public projects
(tests/data/billed_tool_requests.json: request shapes and billed input tokens, with their source),
the Anthropic ones against Anthropic's published tool-use system prompt table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from otel_tokenkpi import tokens
from otel_tokenkpi.counting import count_tool_definitions
from otel_tokenkpi.invocation import CallRequest, ContextItem, ToolDefinition
from otel_tokenkpi.tool_tokens import (
    anthropic_tool_prompt_tokens,
    count_request_tools,
    render_openai_function,
)

TABLE = json.loads((Path(__file__).parent / "data" / "billed_tool_requests.json").read_text(encoding="utf-8"))
RECORDS = TABLE["records"]


@pytest.fixture(scope="module", autouse=True)
def _encodings_loaded() -> None:
    tokens.start_loading()
    assert tokens.wait_until_loaded(30.0)


def _n(text: str, model: str = "gpt-4o") -> int:
    return tokens.count_text(text, model).tokens


def _definitions(record: dict[str, Any]) -> list[ToolDefinition]:
    return [
        ToolDefinition(
            name=t["name"],
            description=t["description"],
            parameters_json=json.dumps(t["parameters"], separators=(",", ":")) if t["parameters"] is not None else "",
            kind=t["type"],
            strict=t["strict"],
        )
        for t in record["tools"]
    ]


def _message_framing(record: dict[str, Any]) -> int:
    """OpenAI cookbook ("How to count tokens"): 3 per message + its role and text, 3 to prime the reply."""
    model = record["model"]
    return 3 + sum(3 + _n(m["role"], model) + _n(m["text"], model) for m in record["messages"])


def _tools(record: dict[str, Any]) -> Any:
    system = next((m["text"] for m in record["messages"] if m["role"] in ("system", "developer")), None)
    return count_request_tools(
        _definitions(record),
        "openai",
        record["model"],
        tool_choice=record["tool_choice"],
        system_text=system,
        api=record["api"],
    )


def _label(record: dict[str, Any]) -> str:
    return f"{record['api']}:{record['model']}:{record['source']['path'].rsplit('/', 1)[-1]}"


WITH_TOOLS = [r for r in RECORDS if r["tools"]]


def test_the_table_holds_facts_from_several_projects_apis_and_model_families() -> None:
    assert len(WITH_TOOLS) >= 50
    repos = {r["source"]["repo"] for r in RECORDS}
    assert repos >= {"pydantic/pydantic-ai", "crewAIInc/crewAI", "traceloop/openllmetry"}
    assert {r["api"] for r in WITH_TOOLS} == {"chat", "responses"}
    families = {r["model"].split("-")[1][:3] for r in WITH_TOOLS if r["model"].startswith("gpt-")}
    assert {"4o", "4.1", "5"} <= families
    assert all(len(r["source"]["commit"]) == 40 for r in RECORDS)


@pytest.mark.parametrize("record", WITH_TOOLS, ids=_label)
def test_tool_count_is_within_2_percent_plus_5_of_what_the_tools_billed(record: dict[str, Any]) -> None:
    billed_by_tools = record["billed_input_tokens"] - _message_framing(record)
    counted = _tools(record)
    assert counted.exact
    assert counted.total <= billed_by_tools  # never more than the bill
    assert billed_by_tools - counted.total <= 0.02 * billed_by_tools + 5


@pytest.mark.parametrize("record", WITH_TOOLS, ids=_label)
def test_the_local_total_never_exceeds_the_billed_input(record: dict[str, Any]) -> None:
    assert _message_framing(record) + _tools(record).total <= record["billed_input_tokens"]


def _pairs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in RECORDS:
        groups.setdefault(json.dumps([r["api"], r["model"], r["messages"]]), []).append(r)
    return [(g[0], other) for g in groups.values() for other in g[1:]]


PAIRS = _pairs()


def test_the_table_has_pairs_that_isolate_tool_sets() -> None:
    assert len(PAIRS) >= 5


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: _label(p[1]))
def test_the_billed_difference_between_two_tool_sets_is_matched(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = pair
    billed = b["billed_input_tokens"] - a["billed_input_tokens"]
    counted = _tools(b).total - _tools(a).total
    assert abs(billed - counted) <= 0.02 * abs(billed) + 5


# -- the OpenAI rendering, on published and hand-made shapes --------------------------------------

WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
    },
    "required": ["location"],
}


def _render(name: str, description: str, schema: Any) -> str:
    return render_openai_function(name, description, json.dumps(schema, separators=(",", ":")))[0]


def test_renders_the_published_typescript_form() -> None:
    # openai/harmony's documented rendering of the same function (docs/format.md)
    assert _render("get_current_weather", "Gets the current weather in the provided location.", WEATHER) == (
        "// Gets the current weather in the provided location.\n"
        "type get_current_weather = (_: {\n"
        "// The city and state, e.g. San Francisco, CA\n"
        "location: string,\n"
        'format?: "celsius" | "fahrenheit", // default: celsius\n'
        "}) => any;\n\n"
    )


def test_a_tool_without_parameters_takes_no_argument() -> None:
    assert _render("get_location", "", {"type": "object", "properties": {}}) == "type get_location = () => any;\n\n"


def test_nullable_nested_arrays_titles_and_refs() -> None:
    schema = {
        "$defs": {"Step": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
        "type": "object",
        "properties": {
            "country": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Country", "description": "Name."},
            "tags": {"type": "array", "items": {"type": "string"}, "title": "Tags"},
            "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
            "mode": {"type": ["string", "null"]},
        },
        "required": ["country", "tags", "steps"],
    }
    assert _render("plan", "Line one.\n\n    Indented line.", schema) == (
        "// Line one.\n//\n// Indented line.\n"
        "type plan = (_: {\n"
        "// Country\n//\n// Name.\n"
        "country: string | null,\n"
        "// Tags\n"
        "tags: string[],\n"
        "steps: {\nn: number,\n}[],\n"
        "mode?: string | null,\n"
        "}) => any;\n\n"
    )


def test_a_first_property_without_comment_bills_one_token_less() -> None:
    _, bare, _ = render_openai_function("f", "", '{"type":"object","properties":{"a":{"type":"string"}}}')
    _, commented, _ = render_openai_function(
        "f", "", '{"type":"object","properties":{"a":{"type":"string","description":"A."}}}'
    )
    assert (bare, commented) == (-1, 0)


def test_an_external_ref_is_estimated() -> None:
    assert render_openai_function("f", "", '{"type":"object","properties":{"a":{"$ref":"http://x/y"}}}')[2] is False
    tool = ToolDefinition("f", "", '{"type":"object","properties":{"a":{"$ref":"http://x/y"}}}')
    assert count_request_tools([tool], "openai", "gpt-4o").exact is False


def test_openai_per_tool_counts_and_request_overhead() -> None:
    tool = ToolDefinition("get_current_weather", "Gets the weather.", json.dumps(WEATHER, separators=(",", ":")))
    block = _render("get_current_weather", "Gets the weather.", WEATHER)
    counted = count_request_tools([tool], "openai", "gpt-4o")
    assert counted.per_tool == (_n(block),)
    namespace = "# Tools\n\n## functions\n\nnamespace functions {\n\n" + block + "} // namespace functions"
    assert counted.overhead == _n(namespace) - _n(block) + 2  # its own system message (fitted framing)
    assert counted.exact
    with_system = count_request_tools([tool], "openai", "gpt-4o", system_text="Be brief.")
    assert with_system.total == _n("Be brief.\n\n" + namespace) - _n("Be brief.") - 1
    forced = count_request_tools([tool], "openai", "gpt-4o", tool_choice="get_current_weather")
    assert forced.total - counted.total == 7 + _n("get_current_weather")


@pytest.mark.parametrize(
    ("model", "api", "extra"),
    [("gpt-4o-mini", None, 2), ("gpt-4.1", None, 2), ("o3-mini", None, 2), ("gpt-5-mini", None, 83)]
    + [("gpt-4o", "responses", -4), ("gpt-5", "responses", 1)],
)
def test_framing_per_model_family_and_api(model: str, api: str | None, extra: int) -> None:
    tool = ToolDefinition("ping", "Health check.", "")
    namespace = "# Tools\n\n## functions\n\nnamespace functions {\n\n// Health check.\ntype ping = () => any;\n\n"
    namespace += "} // namespace functions"
    assert count_request_tools([tool], "openai", model, api=api).total == _n(namespace, model) + extra


def test_cl100k_models_render_with_their_own_encoding() -> None:
    tool = ToolDefinition("get_current_weather", "Gets the weather.", json.dumps(WEATHER, separators=(",", ":")))
    block = _render("get_current_weather", "Gets the weather.", WEATHER)
    assert count_request_tools([tool], "openai", "gpt-3.5-turbo").per_tool == (_n(block, "gpt-3.5-turbo"),)
    assert _n(block, "gpt-3.5-turbo") != _n(block, "gpt-4o")


def test_a_strict_tool_with_a_nullable_type_adds_its_fitted_tokens() -> None:
    schema = '{"type":"object","properties":{"a":{"type":["string","null"]}},"required":["a"]}'
    loose = count_request_tools([ToolDefinition("f", "", schema)], "openai", "gpt-4o")
    strict = count_request_tools([ToolDefinition("f", "", schema, strict=True)], "openai", "gpt-4o")
    assert strict.total - loose.total == 32


def test_openai_built_in_tools_are_estimated() -> None:
    web_search = ToolDefinition("web_search", kind="web_search")
    counted = count_request_tools([web_search], "openai", "gpt-4o", api="responses")
    assert counted.exact is False
    assert counted.per_tool == (_n("web_search"),)


# -- Anthropic: the published tool-use system prompt ----------------------------------------------


@pytest.mark.parametrize(
    ("model", "choice", "expected"),
    [
        ("claude-sonnet-4-5", "auto", 346),
        ("claude-sonnet-4-5", None, 346),
        ("claude-sonnet-4-5", "none", 346),
        ("claude-opus-4-1-20250805", "required", 313),
        ("claude-3-7-sonnet-latest", "get_weather", 313),
        ("claude-3-5-sonnet-20240620", "auto", 294),
        ("claude-3-5-sonnet-20240620", "required", 261),
        ("claude-3-opus-20240229", "auto", 530),
        ("claude-3-opus-20240229", "required", 281),
        ("claude-3-sonnet-20240229", "auto", 159),
        ("claude-3-sonnet-20240229", "required", 235),
        ("claude-3-haiku-20240307", "auto", 264),
        ("claude-3-haiku-20240307", "required", 340),
        ("claude-3-5-haiku-latest", "required", 340),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "auto", 294),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "auto", 346),
    ],
)
def test_anthropic_tool_use_system_prompt_per_model_and_choice(model: str, choice: str | None, expected: int) -> None:
    assert anthropic_tool_prompt_tokens(model, choice) == expected


def test_anthropic_tools_are_estimated_plus_the_system_prompt() -> None:
    tool = ToolDefinition("get_weather", "Get the weather.", '{"type":"object"}')
    counted = count_request_tools([tool], "anthropic", "claude-sonnet-4-5", tool_choice="auto")
    own = tokens.estimate_tokens("get_weather") + tokens.estimate_tokens("Get the weather.")
    own += tokens.estimate_tokens('{"type":"object"}')
    assert counted.per_tool == (own,)
    assert counted.overhead == 346
    assert counted.exact is False
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    on_bedrock = count_request_tools([tool], "aws.bedrock", haiku, tool_choice="required")
    assert on_bedrock.overhead == 340


def test_other_providers_keep_the_flagged_estimate() -> None:
    tool = ToolDefinition("get_weather", "Get the weather.", '{"type":"object"}')
    for provider, model in (("gcp.gemini", "gemini-2.5-flash"), ("aws.bedrock", "amazon.nova-pro-v1:0")):
        counted = count_request_tools([tool], provider, model)
        assert counted.overhead == 0
        assert counted.exact is False
    assert count_request_tools([], "openai", "gpt-4o").total == 0


def test_count_tool_definitions_caches_each_tools_billed_count_on_it() -> None:
    weather = ToolDefinition("get_current_weather", "Gets the weather.", json.dumps(WEATHER, separators=(",", ":")))
    ping = ToolDefinition("ping", "", "")
    request = CallRequest(
        operation="chat",
        provider="openai",
        model="gpt-4o",
        messages=[ContextItem("system", "Be brief."), ContextItem("user", "Hi")],
        tools=[weather, ping],
    )
    total, exact = count_tool_definitions(request)
    expected = count_request_tools([weather, ping], "openai", "gpt-4o", system_text="Be brief.")
    assert (total, exact) == (expected.total, True)
    assert [weather.memo.count.tokens, ping.memo.count.tokens] == list(expected.per_tool)
    assert weather.memo.count.tokens + ping.memo.count.tokens < total  # the namespace wrapper belongs to the request
