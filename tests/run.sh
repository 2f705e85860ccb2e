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

section "Chromium for tests/test_report_html.py (Debian's chromium and chromium-driver)"
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "chromium is missing and apt-get (as root) is not available: the browser tests skip (CI=true fails them)"
    fi
fi

section "seeding the tiktoken cache"
export TIKTOKEN_CACHE_DIR="$VENV/tiktoken-cache"
"$PY" tests/seed_tiktoken_cache.py "$TIKTOKEN_CACHE_DIR"

section "Arize Phoenix in .venv-phoenix (the real OTLP backend of tests/test_phoenix_e2e.py)"
# Its own venv: arize-phoenix pins client SDK versions older than the ones the tests drive.
PHOENIX_VERSION="20.26.1"
PHOENIX_VENV="$REPO/.venv-phoenix"
PHOENIX_PY="$PHOENIX_VENV/bin/python"
if ! "$PHOENIX_PY" -c '' 2>/dev/null; then # missing, or broken
    rm -rf "$PHOENIX_VENV"
    "${PYTHON:-python3}" -m venv "$PHOENIX_VENV"
    "$PHOENIX_PY" -m pip install --quiet --upgrade pip
fi
if ! "$PHOENIX_PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('arize-phoenix') != '$PHOENIX_VERSION')" \
    2>/dev/null; then
    "$PHOENIX_PY" -m pip install --quiet "arize-phoenix==$PHOENIX_VERSION"
fi
export TOKENKPI_PHOENIX_PYTHON="$PHOENIX_PY"

section "agent frameworks in .venv-frameworks and .venv-frameworks-openai2 (tests/test_frameworks.py)"
# Their own venvs: the frameworks pin client SDKs apart from the test env and from each other (crewai
# and llama-index want openai < 3, openai-agents and pydantic-ai openai >= 3). Pinned in
# tests/frameworks/requirements-*.txt; a venv is reinstalled only when its file changes (a stamp in the
# venv holds the file's hash). Each also installs otel-tokenkpi itself from this checkout (editable).
framework_venv() { # $1: venv dir, $2: requirements file
    local venv="$1" requirements="$2" stamp="$1/.tokenkpi-requirements.sha256" wanted
    wanted="$(cat "$requirements" pyproject.toml | sha256sum | cut -d' ' -f1)"
    if ! "$venv/bin/python" -c '' 2>/dev/null || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        rm -rf "$venv"
        "${PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -r "$requirements" --editable ".[openai]"
        echo "$wanted" >"$stamp"
    else # kept: point its otel-tokenkpi at this checkout
        "$venv/bin/python" -m pip install --quiet --no-deps --editable .
    fi
}
framework_venv "$REPO/.venv-frameworks" tests/frameworks/requirements-main.txt
framework_venv "$REPO/.venv-frameworks-openai2" tests/frameworks/requirements-openai2.txt
export TOKENKPI_FRAMEWORKS_PYTHON="$REPO/.venv-frameworks/bin/python"
export TOKENKPI_FRAMEWORKS_OPENAI2_PYTHON="$REPO/.venv-frameworks-openai2/bin/python"

section "opentelemetry-distro beside the test env (tests/test_zero_code.py: living with another distro)"
# Not in .venv: there ours must stay the only distro, so `opentelemetry-instrument` picks it unasked.
# The version matches the installed opentelemetry-instrumentation; the tests put the dir on PYTHONPATH.
OTEL_INSTRUMENTATION_VERSION="$("$PY" -c "import importlib.metadata as m; print(m.version('opentelemetry-instrumentation'))")"
OTEL_DISTRO_DIR="$VENV/side/opentelemetry-distro-$OTEL_INSTRUMENTATION_VERSION"
if [ ! -d "$OTEL_DISTRO_DIR/opentelemetry_distro-$OTEL_INSTRUMENTATION_VERSION.dist-info" ]; then
    rm -rf "$OTEL_DISTRO_DIR"
    "$PY" -m pip install --quiet --no-deps --target "$OTEL_DISTRO_DIR" \
        "opentelemetry-distro==$OTEL_INSTRUMENTATION_VERSION"
fi
export TOKENKPI_TEST_OTEL_DISTRO_DIR="$OTEL_DISTRO_DIR"

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
# pytest's exit status fails the script (set -e; 5 = no tests collected fails the run too).
"$PY" -m pytest -q "$@"

section "version matrix: the oldest supported SDKs (tests/matrix.sh)"
exec bash tests/matrix.sh
