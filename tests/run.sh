#!/usr/bin/env bash
# The project's test command: `bash tests/run.sh [pytest args...]`.
# Works from nothing on a fresh machine: creates .venv, installs the project (editable, with the
# `test` extra), seeds an offline tiktoken cache, lints, type-checks, then runs pytest.
# Idempotent: a second run reuses .venv and the reinstall is quick.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

section() { printf '\n==> %s\n' "$*"; }

VENV="$REPO/.venv"
PY="$VENV/bin/python"
if ! "$PY" -c '' 2>/dev/null; then # missing, or broken (e.g. its base interpreter is gone)
    section "creating $VENV with ${PYTHON:-python3}"
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

section "installing otel-tokenkpi (editable, .[test])"
"$PY" -m pip install --quiet --editable ".[test]"

section "seeding the tiktoken cache"
export TIKTOKEN_CACHE_DIR="$VENV/tiktoken-cache"
"$PY" tests/seed_tiktoken_cache.py "$TIKTOKEN_CACHE_DIR"

LINT_PATHS=()
for p in otel_tokenkpi instrumentors tests benchmarks examples; do
    if [ -e "$p" ]; then LINT_PATHS+=("$p"); fi
done

section "ruff check"
"$PY" -m ruff check "${LINT_PATHS[@]}"
section "ruff format --check"
"$PY" -m ruff format --check "${LINT_PATHS[@]}"
section "mypy"
"$PY" -m mypy

section "pytest"
# exec: pytest's exit status is the script's (5 = no tests collected fails the run too).
exec "$PY" -m pytest -q "$@"
