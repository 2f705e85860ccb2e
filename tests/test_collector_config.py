"""The example OpenTelemetry Collector config (``examples/collector/otelcol.yaml``) is well formed.

No Collector binary runs here, so this checks what a Collector would reject at start-up or what would
silently do nothing: every component a pipeline names is defined and every defined one is used, each
connector is an exporter in one pipeline and a receiver in another, the component types and
tail-sampling policy types exist in the Collector's documented set, and the sampling condition reads
our roll-up attribute with a fractional threshold (which only ``ottl_condition`` can compare).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "collector" / "otelcol.yaml"
KINDS = ("receivers", "processors", "exporters", "connectors")

# Component type names of the otelcol-contrib distribution (its builder manifest, v0.136.0), restricted to
# the kinds a config like this one uses. Source:
# https://github.com/open-telemetry/opentelemetry-collector-releases/blob/main/distributions/otelcol-contrib/manifest.yaml
# (module -> type: otlpreceiver -> otlp, memorylimiterprocessor -> memory_limiter, ...).
CONTRIB_COMPONENTS = {
    "receivers": {"otlp", "nop", "jaeger", "zipkin", "kafka", "prometheus", "otlpjsonfile", "filelog"},
    "processors": {
        "batch",
        "memory_limiter",
        "attributes",
        "filter",
        "groupbytrace",
        "k8sattributes",
        "probabilistic_sampler",
        "resource",
        "resourcedetection",
        "span",
        "tail_sampling",
        "transform",
    },
    "exporters": {"debug", "nop", "otlp", "otlphttp", "file", "kafka", "loadbalancing", "prometheus", "zipkin"},
    "connectors": {
        "forward",
        "count",
        "exceptions",
        "failover",
        "roundrobin",
        "routing",
        "servicegraph",
        "spanmetrics",
        "sum",
        "signaltometrics",
    },
}
# Policy types of the tail_sampling processor. Source:
# https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/processor/tailsamplingprocessor/README.md
TAIL_SAMPLING_POLICIES = {
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "trace_state",
    "trace_flags",
    "rate_limiting",
    "bytes_limiting",
    "span_count",
    "boolean_attribute",
    "ottl_condition",
    "and",
    "drop",
    "composite",
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded = yaml.safe_load(CONFIG.read_text())
    assert isinstance(loaded, dict)
    return loaded


def component_type(name: str) -> str:
    """``otlp/backend`` -> ``otlp``: the part before the slash is the type, the rest an instance name."""
    return name.split("/", 1)[0]


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    found = config["service"]["pipelines"]
    assert isinstance(found, dict) and found
    return found


def used(config: dict[str, Any], role: str) -> set[str]:
    return {name for pipeline in pipelines(config).values() for name in pipeline.get(role, [])}


def test_every_pipeline_has_receivers_and_exporters_and_a_known_signal(config: dict[str, Any]) -> None:
    for name, pipeline in pipelines(config).items():
        assert component_type(name) in {"traces", "metrics", "logs"}, name
        assert pipeline.get("receivers") and pipeline.get("exporters"), name
        assert set(pipeline) <= {"receivers", "processors", "exporters"}, name


def test_components_used_in_pipelines_are_defined_and_defined_ones_are_used(config: dict[str, Any]) -> None:
    connectors = set(config.get("connectors") or {})
    for kind in ("receivers", "processors", "exporters"):
        defined = set(config.get(kind) or {})
        in_pipelines = used(config, kind)
        # A connector stands in the receivers / exporters lists of pipelines without being a receiver/exporter.
        expected = in_pipelines - connectors if kind != "processors" else in_pipelines
        assert expected == defined, kind


def test_each_connector_joins_two_pipelines(config: dict[str, Any]) -> None:
    connectors = set(config["connectors"])
    assert connectors == {"signaltometrics", "forward"}
    for connector in connectors:
        exporting = {p for p, spec in pipelines(config).items() if connector in spec.get("exporters", [])}
        receiving = {p for p, spec in pipelines(config).items() if connector in spec.get("receivers", [])}
        assert exporting and receiving, connector
        assert not exporting & receiving, connector  # a pipeline feeding itself would be a cycle
    # The waste metrics come out of a traces pipeline into a metrics pipeline.
    (source,) = [p for p, spec in pipelines(config).items() if "signaltometrics" in spec["exporters"]]
    (sink,) = [p for p, spec in pipelines(config).items() if "signaltometrics" in spec["receivers"]]
    assert (component_type(source), component_type(sink)) == ("traces", "metrics")


def test_component_types_are_in_the_contrib_distribution(config: dict[str, Any]) -> None:
    for kind in KINDS:
        for name in config.get(kind) or {}:
            assert component_type(name) in CONTRIB_COMPONENTS[kind], f"{kind}: {name}"


def test_tail_sampling_keeps_wasteful_traces_and_samples_the_rest(config: dict[str, Any]) -> None:
    policies = config["processors"]["tail_sampling"]["policies"]
    assert {p["type"] for p in policies} <= TAIL_SAMPLING_POLICIES
    for policy in policies:
        assert set(policy) == {"name", "type", policy["type"]} or policy["type"] == "always_sample", policy
    by_type = {p["type"]: p for p in policies}
    assert "numeric_attribute" not in by_type  # integers only: a fractional ratio never matches
    conditions = by_type["ottl_condition"]["ottl_condition"]["span"]
    pattern = re.compile(r'attributes\["tokenkpi\.trace\.waste\.ratio"\]\s*>\s*(0\.\d+)')
    thresholds = [float(m.group(1)) for c in conditions if (m := pattern.search(c))]
    assert thresholds and all(0 < t < 1 for t in thresholds)
    assert 0 < by_type["probabilistic"]["probabilistic"]["sampling_percentage"] < 100
    # The sampled pipeline is the one that forwards to the backend, after the sampler.
    sampled = [spec for spec in pipelines(config).values() if "tail_sampling" in spec.get("processors", [])]
    assert len(sampled) == 1 and any(component_type(e) == "otlp" for e in sampled[0]["exporters"])


def test_waste_tokens_are_summed_per_service_and_model(config: dict[str, Any]) -> None:
    metrics = {m["name"]: m for m in config["connectors"]["signaltometrics"]["spans"]}
    waste = metrics["fleet.llm.waste_tokens"]
    assert 'attributes["tokenkpi.waste.tokens"]' in waste["sum"]["value"]
    assert [a["key"] for a in waste["attributes"]] == ["gen_ai.request.model"]
    assert [a["key"] for a in waste["include_resource_attributes"]] == ["service.name"]
    # Fed before sampling, so the sums count every call.
    (feeder,) = [spec for spec in pipelines(config).values() if "signaltometrics" in spec["exporters"]]
    assert "tail_sampling" not in feeder.get("processors", [])


def test_the_report_file_gets_otlp_json_lines(config: dict[str, Any]) -> None:
    file_exporter = config["exporters"]["file"]
    assert file_exporter["format"] == "json"
    assert file_exporter["path"].endswith(".jsonl")
    (report,) = [spec for spec in pipelines(config).values() if "file" in spec["exporters"]]
    assert "tail_sampling" not in report.get("processors", [])


# --- the report's filter keeps every span the report reads --------------------------------------------------
# The filter processor's conditions here are OTTL comparisons of span attributes with nil, joined by `and` /
# `or`; this evaluates exactly that subset (anything else fails the parse, so a new construct is noticed).
_COMPARISON = re.compile(r'^attributes\["([^"]+)"\] (==|!=) nil$')


def drops(condition: str, attributes: dict[str, Any]) -> bool:
    """Whether the filter drops a span with these attributes (`and` binds tighter than `or`)."""
    alternatives = []
    for alternative in re.split(r"\s+or\s+", condition.strip()):
        terms = []
        for term in re.split(r"\s+and\s+", alternative):
            match = _COMPARISON.match(term.strip())
            assert match, f"unexpected OTTL in the filter: {term!r}"
            present = match.group(1) in attributes
            terms.append(present if match.group(2) == "!=" else not present)
        alternatives.append(all(terms))
    return any(alternatives)


def test_the_report_filter_drops_plain_spans_and_keeps_what_the_report_reads(config: dict[str, Any]) -> None:
    (condition,) = config["processors"]["filter/genai"]["traces"]["span"]
    assert drops(condition, {"http.route": "/v1/ask", "http.response.status_code": 200})
    assert drops(condition, {"db.system.name": "postgresql"})
    assert not drops(condition, {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10})
    assert not drops(condition, {"http.route": "/v1/ask", "tokenkpi.trace.llm_calls": 3})  # an enriched root
    # A late outcome: record_outcome(True, conversation_id=...) after the task.
    assert not drops(condition, {"tokenkpi.outcome": "success", "gen_ai.conversation.id": "T1", "rating": 5})


@pytest.mark.slow
def test_the_report_filter_keeps_every_span_of_a_real_run_that_the_report_reads(
    config: dict[str, Any], tmp_path: Path
) -> None:
    """The feedback app (real SDK, span processor, late outcomes by conversation and trace id) writes its spans;
    every span with a tokenkpi.* attribute passes the filter, so a report of the filtered file is the same."""
    import json
    import os
    import subprocess
    import sys

    spans = tmp_path / "spans.jsonl"
    app = Path(__file__).resolve().parent / "_feedback_app.py"
    env = {**os.environ}
    answered = subprocess.run(
        [sys.executable, str(app), str(spans), "answer"], capture_output=True, text=True, timeout=120, env=env
    )
    assert answered.returncode == 0, answered.stderr
    (condition,) = config["processors"]["filter/genai"]["traces"]["span"]
    seen = {"kept": 0, "dropped": 0, "outcomes": 0}
    for line in spans.read_text().splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    attributes = {a["key"]: a["value"] for a in span["attributes"]}
                    ours = any(key.startswith("tokenkpi.") for key in attributes)
                    dropped = drops(condition, attributes)
                    assert not (ours and dropped), span["name"]
                    seen["dropped" if dropped else "kept"] += 1
                    seen["outcomes"] += span["name"] == "record_outcome"
    # 3 tasks and their 3 model calls (the SDK's HTTP spans are not instrumented here), 2 late outcomes.
    assert seen == {"kept": 8, "dropped": 0, "outcomes": 2}
