"""Other instrumentations alone, processor-only (no instrument()): their spans of the plain openai tool
loop (fw_openllmetry.drive), enriched by TokenKPISpanProcessor from what each writes. OpenLLMetry, the
official openai-v2 (opentelemetry-util-genai), OpenInference; content capture on where it is opt-in."""

from __future__ import annotations

import os

from _harness import run_twice, telemetry
from fw_openllmetry import drive


def _setup(emitter: str):
    def instrument() -> None:
        provider = telemetry()
        if emitter == "openllmetry":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor

            OpenAIInstrumentor().instrument(tracer_provider=provider)
        elif emitter == "util-genai":
            os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
            os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OfficialInstrumentor

            OfficialInstrumentor().instrument(tracer_provider=provider)
        else:
            from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor

            OpenInferenceInstrumentor().instrument(tracer_provider=provider)

    return instrument


SCENARIOS = {
    emitter: (lambda emitter=emitter: run_twice(drive, _setup(emitter)))
    for emitter in ("openllmetry", "util-genai", "openinference")
}
