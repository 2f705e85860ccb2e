"""The same planted waste through every provider's real SDK, and through litellm: the engine must flag the
same calls with the same kinds (numbers differ with each provider's tokenizer), except re-sent context,
which is waste only where the model's prompt cache could have served it (cache_rules.py): so the kinds a
provider may flag follow its cache rule, not a list per provider.

The script, per provider: (1) a tool call; (2) the same tool call again with its
argument keys reordered; (3) the duplicate's result sent back, answered with a
reply cut at the token limit; (4) that request repeated unchanged; (5) a failed
call. Each runs inside ``conversation()`` so the repeated request is known.
Every call is billed ``billed`` input tokens: BIG leaves room for every local count; a bill below them
shows the breakdown scaled down to it on every path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _cohere_support as cohere
import _groq_support as groq
import _litellm_support as litellm
import _mistral_support as mistral
import _ollama_support as ollama
import anthropic
import botocore.exceptions
import openai
import pytest
from _bedrock_support import make_client as make_bedrock_client
from _gemini_support import make_client
from _planted_waste import (
    ARGS,
    ARGS_REORDERED,
    ASK,
    BIG,
    EXPECTED_KINDS,
    KINDS,
    PARAMETERS,
    RESULT_1,
    RESULT_2,
    SYSTEM,
)
from _telemetry import instrumented_with
from google.genai import errors as genai_errors

import otel_tokenkpi
from otel_tokenkpi import cache_rules
from otel_tokenkpi import semconv as sc
from otel_tokenkpi.instrumentors.anthropic import AnthropicInstrumentor
from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor
from otel_tokenkpi.instrumentors.cohere import CohereInstrumentor
from otel_tokenkpi.instrumentors.google_genai import GoogleGenAIInstrumentor
from otel_tokenkpi.instrumentors.groq import GroqInstrumentor
from otel_tokenkpi.instrumentors.litellm import LiteLLMInstrumentor
from otel_tokenkpi.instrumentors.mistral import MistralInstrumentor
from otel_tokenkpi.instrumentors.ollama import OllamaInstrumentor
from otel_tokenkpi.instrumentors.openai import OpenAIInstrumentor
from otel_tokenkpi.testing import fake_anthropic, fake_bedrock, fake_gemini, fake_openai
from otel_tokenkpi.testing.fake_cohere import FakeCohereServer
from otel_tokenkpi.testing.fake_groq import FakeGroqServer
from otel_tokenkpi.testing.fake_mistral import FakeMistralServer
from otel_tokenkpi.testing.fake_ollama import FakeOllamaServer

OPENAI_MODEL = "gpt-4o"
ANTHROPIC_MODEL = "claude-sonnet-4-6"
GEMINI_MODEL = "gemini-2.5-flash"
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def run_openai(server: fake_openai.FakeOpenAIServer, billed: int = BIG) -> None:
    client = openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}}
    ]
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    reply = fake_openai.Reply
    server.enqueue(
        reply(text=None, tool_calls=[fake_openai.ToolCall("get_weather", ARGS, "c1")], prompt_tokens=billed),
        reply(
            text=None,
            tool_calls=[fake_openai.ToolCall("get_weather", ARGS_REORDERED, "c2")],
            prompt_tokens=billed,
            completion_tokens=40,
        ),
        reply(text="It is 21", finish_reason="length", prompt_tokens=billed, completion_tokens=8),
        reply(text="It is 21", finish_reason="length", prompt_tokens=billed, completion_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("c1", RESULT_1), ("c2", RESULT_2)):
        response = client.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=tools)
        messages += [response.choices[0].message, {"role": "tool", "tool_call_id": call_id, "content": result}]
    for _ in range(2):
        client.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=tools, max_tokens=8)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model=OPENAI_MODEL, messages=[*messages, {"role": "user", "content": "?"}], tools=tools
        )


def run_anthropic(server: fake_anthropic.FakeAnthropicServer, billed: int = BIG) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0, open_telemetry=False)
    tools = [{"name": "get_weather", "description": "Weather.", "input_schema": PARAMETERS}]
    messages: list[Any] = [{"role": "user", "content": ASK}]
    reply = fake_anthropic.Reply
    server.enqueue(
        reply(text=None, tool_calls=[fake_anthropic.ToolCall("get_weather", ARGS, "t1")], input_tokens=billed),
        reply(
            text=None,
            tool_calls=[fake_anthropic.ToolCall("get_weather", ARGS_REORDERED, "t2")],
            input_tokens=billed,
            output_tokens=40,
        ),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=billed, output_tokens=8),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=billed, output_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("t1", RESULT_1), ("t2", RESULT_2)):
        response = client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=64, system=SYSTEM, messages=messages, tools=tools
        )
        messages += [
            {"role": "assistant", "content": response.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}]},
        ]
    for _ in range(2):
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=8, system=SYSTEM, messages=messages, tools=tools)
    with pytest.raises(anthropic.InternalServerError):
        more = [*messages, {"role": "assistant", "content": "It is 21"}, {"role": "user", "content": "?"}]
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=8, system=SYSTEM, messages=more, tools=tools)


def run_gemini(server: fake_gemini.FakeGeminiServer, billed: int = BIG) -> None:
    client = make_client(server)
    declaration = {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS}
    config: dict[str, Any] = {"system_instruction": SYSTEM, "tools": [{"function_declarations": [declaration]}]}
    contents: list[Any] = [{"role": "user", "parts": [{"text": ASK}]}]
    reply = fake_gemini.Reply
    server.enqueue(
        reply(text=None, tool_calls=[fake_gemini.ToolCall("get_weather", ARGS, "f1")], input_tokens=billed),
        reply(
            text=None,
            tool_calls=[fake_gemini.ToolCall("get_weather", ARGS_REORDERED, "f2")],
            input_tokens=billed,
            output_tokens=40,
        ),
        reply(text="It is 21", finish_reason="MAX_TOKENS", input_tokens=billed, output_tokens=8),
        reply(text="It is 21", finish_reason="MAX_TOKENS", input_tokens=billed, output_tokens=8),
        reply(status=500),
    )
    for call_id, result in (("f1", RESULT_1), ("f2", RESULT_2)):
        response = client.models.generate_content(model=GEMINI_MODEL, contents=contents, config=config)
        answer = {"function_response": {"name": "get_weather", "id": call_id, "response": {"result": result}}}
        contents += [response.candidates[0].content, {"role": "user", "parts": [answer]}]
    for _ in range(2):
        client.models.generate_content(model=GEMINI_MODEL, contents=contents, config={**config, "max_output_tokens": 8})
    with pytest.raises(genai_errors.ServerError):
        more = [*contents, {"role": "user", "parts": [{"text": "?"}]}]
        client.models.generate_content(model=GEMINI_MODEL, contents=more, config=config)


def run_bedrock(server: fake_bedrock.FakeBedrockServer, billed: int = BIG) -> None:
    client = make_bedrock_client(server.url)
    tool_config = {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather.", "inputSchema": {"json": PARAMETERS}}}]
    }
    messages: list[Any] = [{"role": "user", "content": [{"text": ASK}]}]
    reply, call = fake_bedrock.Reply, fake_bedrock.ToolCall
    server.enqueue(
        reply(text=None, tool_calls=[call("get_weather", ARGS, "b1")], input_tokens=billed),
        reply(text=None, tool_calls=[call("get_weather", ARGS_REORDERED, "b2")], input_tokens=billed, output_tokens=40),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=billed, output_tokens=8),
        reply(text="It is 21", finish_reason="max_tokens", input_tokens=billed, output_tokens=8),
        reply(status=500),
    )
    model = BEDROCK_MODEL
    system = [{"text": SYSTEM}]
    for call_id, result in (("b1", RESULT_1), ("b2", RESULT_2)):
        response = client.converse(modelId=model, system=system, messages=messages, toolConfig=tool_config)
        answer = {"toolResult": {"toolUseId": call_id, "content": [{"text": result}]}}
        messages += [response["output"]["message"], {"role": "user", "content": [answer]}]
    for _ in range(2):
        client.converse(
            modelId=model, system=system, messages=messages, toolConfig=tool_config, inferenceConfig={"maxTokens": 8}
        )
    with pytest.raises(botocore.exceptions.ClientError):
        more = [*messages, {"role": "assistant", "content": [{"text": "It is 21"}]}]
        more.append({"role": "user", "content": [{"text": "?"}]})
        client.converse(modelId=model, system=system, messages=more, toolConfig=tool_config)


@dataclass(frozen=True)
class Case:
    make_server: Callable[[], Any]
    instrumentors: tuple[type, ...]
    run: Callable[[Any], None]
    provider: str  # gen_ai.provider.name on the five spans
    model: str  # the model the script calls
    exact_counts: bool = False  # an offline tokenizer exists for the model (else: estimated, and flagged)


CASES = {
    "openai": Case(
        fake_openai.FakeOpenAIServer, (OpenAIInstrumentor,), run_openai, "openai", OPENAI_MODEL, exact_counts=True
    ),
    "anthropic": Case(
        fake_anthropic.FakeAnthropicServer, (AnthropicInstrumentor,), run_anthropic, "anthropic", ANTHROPIC_MODEL
    ),
    "gemini": Case(fake_gemini.FakeGeminiServer, (GoogleGenAIInstrumentor,), run_gemini, "gcp.gemini", GEMINI_MODEL),
    "bedrock": Case(fake_bedrock.FakeBedrockServer, (BedrockInstrumentor,), run_bedrock, "aws.bedrock", BEDROCK_MODEL),
    "mistral": Case(FakeMistralServer, (MistralInstrumentor,), mistral.run_waste_script, "mistral_ai", mistral.MODEL),
    "cohere": Case(FakeCohereServer, (CohereInstrumentor,), cohere.run_waste_script, "cohere", cohere.MODEL),
    "ollama": Case(FakeOllamaServer, (OllamaInstrumentor,), ollama.run_waste_script, "ollama", ollama.MODEL),
    "groq": Case(FakeGroqServer, (GroqInstrumentor,), groq.run_waste_script, "groq", groq.MODEL),
    # litellm to OpenAI, with the OpenAI instrumentor on too: still five spans, all litellm's.
    "litellm": Case(
        fake_openai.FakeOpenAIServer,
        (LiteLLMInstrumentor, OpenAIInstrumentor),
        litellm.run_waste_script,
        "openai",
        litellm.OPENAI_MODEL,
        exact_counts=True,
    ),
}


def expected_kinds(case: Case) -> list[set[str]]:
    """EXPECTED_KINDS as the model's cache rule allows them: re-sent context is waste only where a prompt
    cache could have served it; with no rule (unknown) or no cache ("none") it is never flagged."""
    rule = cache_rules.rule_for(case.provider, case.model)
    if rule is not None and rule.mode != "none":
        return EXPECTED_KINDS
    return [kinds - {"uncached_resent"} for kinds in EXPECTED_KINDS]


def run_case(label: str, billed: int = BIG) -> list[Any]:
    """The script through ``label``'s SDK, every call billed ``billed`` input tokens: its model-call spans."""
    case = CASES[label]
    with (
        instrumented_with(*case.instrumentors) as telemetry,
        case.make_server() as server,
        otel_tokenkpi.conversation(f"planted-{label}-{billed}"),
    ):
        case.run(server, billed=billed)
    return [s for s in telemetry.spans() if s.attributes.get(sc.OPERATION_NAME) in ("chat", "generate_content")]


@pytest.mark.parametrize("label", list(CASES))
def test_every_provider_flags_the_same_calls_with_the_same_kinds(loaded_data, label):
    case = CASES[label]
    calls = run_case(label)
    assert [s.attributes[sc.PROVIDER_NAME] for s in calls] == [case.provider] * 5
    assert {s.instrumentation_scope.name for s in calls} == {
        case.instrumentors[0].instrumentation_scope
    }  # one span per call
    flagged = [{kind for kind, key in KINDS.items() if s.attributes.get(key, 0) > 0} for s in calls]
    assert flagged == expected_kinds(case)
    # Calls 2 and 3 re-send the long system prompt with nothing read from a cache: the cacheable part of the
    # re-sent prefix under the model's rule; 0 without a cache; absent when the rule is unknown.
    rule = cache_rules.rule_for(case.provider, case.model)
    if rule is None:
        assert not any(sc.WASTE_UNCACHED_RESENT_TOKENS in s.attributes for s in calls)
    for span in calls[1:3]:
        resent = span.attributes[sc.CONTEXT_RESENT_TOKENS]
        if rule is None:
            assert sc.WASTE_UNCACHED_RESENT_TOKENS not in span.attributes
        else:
            assert span.attributes[sc.WASTE_UNCACHED_RESENT_TOKENS] == rule.cacheable(resent)
            assert rule.mode == "none" or rule.cacheable(resent) >= rule.min_tokens > 0
    assert [s.attributes.get(sc.TOOL_CALLS_DUPLICATE_COUNT) for s in calls] == [0, 1, 0, 0, None]
    assert calls[4].attributes[sc.WASTE_FAILED_CALL_TOKENS] == 0 and sc.ERROR_TYPE in calls[4].attributes
    assert calls[3].attributes[sc.WASTE_REPEATED_REQUEST_TOKENS] == BIG + 8
    assert calls[2].attributes[sc.WASTE_TRUNCATED_OUTPUT_TOKENS] == 8
    assert all(s.attributes[sc.WASTE_TOKENS] == sum(s.attributes.get(k, 0) for k in KINDS.values()) for s in calls)
    # Without an offline tokenizer local counts are estimates, and say so.
    assert [bool(s.attributes.get(sc.TOKENS_ESTIMATED)) for s in calls[:4]] == [not case.exact_counts] * 4
    # Room for every local count: the breakdown is exact and adds up to the bill.
    parts = (sc.CONTEXT_RESENT_TOKENS, sc.CONTEXT_NEW_TOKENS, sc.CONTEXT_UNATTRIBUTED_TOKENS)
    assert [sum(s.attributes[key] for key in parts) for s in calls[:4]] == [BIG] * 4
    assert all(s.attributes[sc.CONTEXT_UNATTRIBUTED_TOKENS] > 0 for s in calls[:4])


SMALL = 1000  # a bill below the system prompt alone: every call's local parts exceed it
SCALED = (
    sc.CONTEXT_SYSTEM_TOKENS,
    sc.CONTEXT_TOOL_DEFINITIONS_TOKENS,
    sc.CONTEXT_TOOL_RESULTS_TOKENS,
    sc.CONTEXT_RESENT_TOKENS,
)


@pytest.mark.parametrize("label", list(CASES))
def test_a_bill_smaller_than_the_local_parts_scales_them_down_to_it(loaded_data, label):
    """Reconciliation (DESIGN.md): local parts larger than the bill are never published as exact. Each is
    scaled by the same factor (``part * billed // local``, new takes the rounding), they add up to the bill,
    nothing is unattributed, and the span says its figures are estimated. The same script billed BIG gives
    the unscaled parts to compare with."""
    unscaled, scaled = run_case(label, BIG), run_case(label, SMALL)
    for full, small in zip(unscaled[:4], scaled[:4], strict=True):
        local = full.attributes[sc.CONTEXT_RESENT_TOKENS] + full.attributes[sc.CONTEXT_NEW_TOKENS]
        assert local > SMALL
        expected = {key: full.attributes[key] * SMALL // local for key in SCALED}
        expected[sc.CONTEXT_NEW_TOKENS] = SMALL - expected[sc.CONTEXT_RESENT_TOKENS]
        expected[sc.CONTEXT_UNATTRIBUTED_TOKENS] = 0
        assert {key: small.attributes[key] for key in expected} == expected
        assert small.attributes[sc.USAGE_INPUT_TOKENS] == SMALL
        assert small.attributes[sc.TOKENS_ESTIMATED] is True
