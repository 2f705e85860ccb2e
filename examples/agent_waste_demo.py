"""A tool-calling agent that wastes tokens in the common ways, instrumented by otel-tokenkpi.

It runs against a fake provider embedded in the package (no API key, no network) and prints the waste
of each model call, then the task's roll-up: tokens per success, waste ratio, cost. The agent itself is
``otel_tokenkpi/demo.py``; this script is ``otel-tokenkpi demo`` and takes the same options:

    python examples/agent_waste_demo.py                       # openai SDK, table only
    python examples/agent_waste_demo.py --provider anthropic  # the same agent through the anthropic SDK
    python examples/agent_waste_demo.py --out spans.jsonl     # then: otel-tokenkpi report spans.jsonl --by team
    python examples/agent_waste_demo.py --otlp http://localhost:4318   # Jaeger, a Collector, ...
"""

import sys

from otel_tokenkpi.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
