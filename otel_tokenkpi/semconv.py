"""Attribute and metric names, in one place.

GenAI names follow the OpenTelemetry GenAI semantic conventions (Development
stability, see docs/architecture.md). They are spelled out here rather than
imported from ``opentelemetry-semantic-conventions`` because that package lags
the GenAI drafts and renames things between releases; our users' dashboards
must not break when it does. ``tokenkpi.*`` names are this project's public
contract (docs/architecture.md): never rename them.
"""

# --- GenAI semantic conventions -------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
CONVERSATION_ID = "gen_ai.conversation.id"
OUTPUT_TYPE = "gen_ai.output.type"

REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"

RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"

USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
# The newest draft renamed cache_creation -> cache_write; we emit the new name
# and read both on foreign spans.
USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS_OLD = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"

SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# HTTP semconv, for attempts a client library retried inside one model call.
HTTP_REQUEST_RESEND_COUNT = "http.request.resend_count"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
# Ours: an event per failed attempt that the client library sent again.
EVENT_RETRY = "tokenkpi.retry"

TOKEN_TYPE = "gen_ai.token.type"

METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"

# Bucket boundaries the reference code advises for the two histograms.
TOKEN_USAGE_BUCKETS = tuple(4**i for i in range(14))  # 1, 4, 16, ... 67108864
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

# Operations that are model calls (docs/architecture.md "Coexistence").
MODEL_CALL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})

# --- tokenkpi.* : the project's contract (docs/architecture.md "Attribute contract") ---
CONTEXT_WINDOW = "tokenkpi.context.window"
# Tokens a provider processed when it bills a different number (Cohere: ``usage.tokens`` beside
# ``usage.billed_units``, which is what gen_ai.usage.* reports).
USAGE_PROCESSED_INPUT_TOKENS = "tokenkpi.usage.processed.input_tokens"
USAGE_PROCESSED_OUTPUT_TOKENS = "tokenkpi.usage.processed.output_tokens"
CONTEXT_UTILIZATION = "tokenkpi.context.utilization"
CONTEXT_SYSTEM_TOKENS = "tokenkpi.context.system_tokens"
CONTEXT_TOOL_DEFINITIONS_TOKENS = "tokenkpi.context.tool_definitions_tokens"
CONTEXT_TOOL_RESULTS_TOKENS = "tokenkpi.context.tool_results_tokens"
CONTEXT_RESENT_TOKENS = "tokenkpi.context.resent_tokens"
CONTEXT_NEW_TOKENS = "tokenkpi.context.new_tokens"
# Billed input minus (resent + new): what the provider adds that no part accounts for (framing, hidden prompts).
CONTEXT_UNATTRIBUTED_TOKENS = "tokenkpi.context.unattributed_tokens"
TOKENS_ESTIMATED = "tokenkpi.tokens.estimated"
TOOLS_DEFINED_COUNT = "tokenkpi.tools.defined_count"
TOOL_CALLS_COUNT = "tokenkpi.tool_calls.count"
TOOL_CALLS_DUPLICATE_COUNT = "tokenkpi.tool_calls.duplicate_count"
COST_USD = "tokenkpi.cost.usd"
WASTE_COST_USD = "tokenkpi.waste.cost.usd"
WASTE_UNCACHED_RESENT_TOKENS = "tokenkpi.waste.uncached_resent_tokens"
WASTE_DUPLICATE_TOOL_CALL_TOKENS = "tokenkpi.waste.duplicate_tool_call_tokens"
WASTE_TRUNCATED_OUTPUT_TOKENS = "tokenkpi.waste.truncated_output_tokens"
WASTE_REPEATED_REQUEST_TOKENS = "tokenkpi.waste.repeated_request_tokens"
WASTE_FAILED_CALL_TOKENS = "tokenkpi.waste.failed_call_tokens"
WASTE_TOKENS = "tokenkpi.waste.tokens"
WASTE_RATIO = "tokenkpi.waste.ratio"

# Roll-ups on a trace's local root span and on task() spans.
TRACE_LLM_CALLS = "tokenkpi.trace.llm_calls"
TRACE_INPUT_TOKENS = "tokenkpi.trace.input_tokens"
TRACE_OUTPUT_TOKENS = "tokenkpi.trace.output_tokens"
TRACE_CACHE_READ_TOKENS = "tokenkpi.trace.cache_read_tokens"
TRACE_COST_USD = "tokenkpi.trace.cost.usd"
TRACE_WASTE_TOKENS = "tokenkpi.trace.waste.tokens"
TRACE_WASTE_RATIO = "tokenkpi.trace.waste.ratio"
TRACE_WASTE_COST_USD = "tokenkpi.trace.waste.cost.usd"
TRACE_WASTE_UNUSED_TOOL_DEFINITIONS_TOKENS = "tokenkpi.trace.waste.unused_tool_definitions_tokens"
# Not in DESIGN.md's table (an addition for `report --html`'s "what to fix first"): the names of the tools
# behind the unused definitions above, most tokens first (tool names, never arguments or content).
TRACE_UNUSED_TOOL_NAMES = "tokenkpi.trace.unused_tool_names"
TRACE_TOOL_CALLS = "tokenkpi.trace.tool_calls"
TRACE_MAX_TOOL_FANOUT = "tokenkpi.trace.max_tool_fanout"
TRACE_DUPLICATE_TOOL_CALLS = "tokenkpi.trace.duplicate_tool_calls"
TRACE_MAX_CONTEXT_UTILIZATION = "tokenkpi.trace.max_context_utilization"
TRACE_TOKENS_PER_SUCCESS = "tokenkpi.trace.tokens_per_success"
OUTCOME = "tokenkpi.outcome"

# Waste kinds: the value of tokenkpi.waste.kind on the tokenkpi.waste.tokens metric.
WASTE_KIND = "tokenkpi.waste.kind"
WASTE_KIND_ATTRIBUTES = {
    "failed_call": WASTE_FAILED_CALL_TOKENS,
    "repeated_request": WASTE_REPEATED_REQUEST_TOKENS,
    "truncated_output": WASTE_TRUNCATED_OUTPUT_TOKENS,
    "duplicate_tool_call": WASTE_DUPLICATE_TOOL_CALL_TOKENS,
    "uncached_resent": WASTE_UNCACHED_RESENT_TOKENS,
}

# tokenkpi.* metrics, recorded by the engine once per model call, sampled or not.
METRIC_WASTE_TOKENS = "tokenkpi.waste.tokens"
METRIC_COST_USD = "tokenkpi.cost.usd"
METRIC_CONTEXT_UTILIZATION = "tokenkpi.context.utilization"
# Not in the original design table (an addition, proposed in the issue notes): outcomes as a counter, so
# success rates sit beside waste in a metrics backend.
METRIC_OUTCOMES = "tokenkpi.outcomes"
UTILIZATION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

# Workflow spans opened by otel_tokenkpi.task(). The newest GenAI draft names workflows with
# gen_ai.agent.name; older drafts used gen_ai.workflow.name: both are written.
AGENT_NAME = "gen_ai.agent.name"
WORKFLOW_NAME = "gen_ai.workflow.name"
INVOKE_WORKFLOW = "invoke_workflow"
