"""DSPy 3: a Predict module through dspy.LM, with its default engine (native, a vendored HTTP client:
not traced, see the README) and with engine="litellm" (traced through our litellm instrumentor)."""

from __future__ import annotations

from typing import Any

from _harness import MODEL, QUESTION, Run, instrument_ours, run_twice

from otel_tokenkpi.testing.fake_openai import Reply

ANSWER = "Paris is sunny."
# DSPy's ChatAdapter asks for its output fields between [[ ## name ## ]] markers.
REPLY_TEXT = f"[[ ## answer ## ]]\n{ANSWER}\n\n[[ ## completed ## ]]"


def script() -> list[Reply]:
    return [Reply(text=REPLY_TEXT, prompt_tokens=700, completion_tokens=25)]


def _drive(engine: str | None):
    def drive(run: Run) -> Any:
        import dspy

        options: dict[str, Any] = {"api_base": run.base_url, "api_key": "sk-test", "cache": False, "num_retries": 0}
        if engine is not None:
            options["engine"] = engine
        lm = dspy.LM(f"openai/{MODEL}", **options)
        with dspy.context(lm=lm):
            return dspy.Predict("question -> answer")(question=QUESTION).answer

    return drive


SCENARIOS = {
    "default-engine": lambda: run_twice(_drive(None), lambda: instrument_ours("openai", "litellm"), replies=script),
    "litellm-engine": lambda: run_twice(_drive("litellm"), lambda: instrument_ours("litellm"), replies=script),
}
