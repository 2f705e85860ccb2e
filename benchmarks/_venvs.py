"""The peers' virtualenvs for ``peers.py``: one per peer instrumentation, pinned, under ``benchmarks/.venvs``.

Each venv gets the peer plus the SAME versions of ``openai``, the OpenTelemetry
API/SDK and the SDK's own dependencies as the environment running the
benchmark (read from its installed metadata), so the only difference between
configurations is the instrumentation. A venv is rebuilt when its pins change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

VENVS = Path(__file__).resolve().parent / ".venvs"

# configuration -> (PyPI requirement, what it is). The official OpenTelemetry one is the successor of
# opentelemetry-instrumentation-openai-v2; both exist on PyPI, the newer name is used.
PEERS: dict[str, tuple[str, str]] = {
    "otel-genai": ("opentelemetry-instrumentation-genai-openai==1.3b0", "OpenTelemetry official"),
    "openllmetry": ("opentelemetry-instrumentation-openai==0.62.4", "OpenLLMetry (Traceloop)"),
    "openinference": ("openinference-instrumentation-openai==0.1.66", "OpenInference (Arize)"),
}
# Taken at the benchmark environment's versions, so every configuration runs the same client and SDK.
SHARED = ("openai", "opentelemetry-api", "opentelemetry-sdk", "httpx", "pydantic", "pydantic-core", "wrapt")


def shared_pins() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in SHARED]


def python_for(config: str) -> str:
    """The interpreter that runs ``config``: the peer's venv, or this one for ours and the baselines."""
    if config not in PEERS:
        return sys.executable
    return str(VENVS / config / "bin" / "python")


def ensure(config: str) -> str:
    """Create or refresh the venv of a peer configuration; returns its interpreter."""
    if config not in PEERS:
        return sys.executable
    venv = VENVS / config
    pins = [PEERS[config][0], *shared_pins()]
    marker = venv / "pins.json"
    if marker.exists() and json.loads(marker.read_text()) == pins and Path(python_for(config)).exists():
        return python_for(config)
    print(f"setting up {venv} with {' '.join(pins)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [python_for(config), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--pre", *pins], check=True
    )
    marker.write_text(json.dumps(pins))
    return python_for(config)


def installed_version(config: str) -> str:
    """The peer's installed version (for the report)."""
    requirement = PEERS[config][0].split("==")[0]
    out = subprocess.run(
        [python_for(config), "-c", f"from importlib.metadata import version; print(version({requirement!r}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()
