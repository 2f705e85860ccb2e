"""A real Arize Phoenix server for end-to-end tests and the docs screenshot, and a reader for its REST API.

Phoenix pins old versions of client SDKs that the project tests against, so it lives in its own virtual
environment (``.venv-phoenix``, made by ``tests/run.sh``) and runs here as a subprocess of that
environment's interpreter, named by ``TOKENKPI_PHOENIX_PYTHON``. It listens on 127.0.0.1 on free ports,
keeps its SQLite database in a temporary working directory, and downloads nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

PYTHON_ENV = "TOKENKPI_PHOENIX_PYTHON"
REPO = Path(__file__).resolve().parents[1]
AGENT_SCRIPT = REPO / "tests" / "_phoenix_agent.py"
AGENT_MARK = "RESULT "
START_TIMEOUT_S = 120.0  # ~10 s when the machine is idle; CI shares 2 cores with other work
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PhoenixServer:
    """``phoenix serve`` in a subprocess; a context manager that always stops it and removes its files."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.port = free_port()
        self.grpc_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="tokenkpi-phoenix-"))
        self.log_path = self.workdir / "phoenix.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> PhoenixServer:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))},
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_WORKING_DIR": str(self.workdir),
            "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{self.workdir / 'phoenix.db'}",
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [self.python, "-m", "phoenix.server.main", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"phoenix exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"phoenix not ready after {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PhoenixServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get_json(self, path: str, **query: Any) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def trace_spans(self, project: str, trace_id: str, expected: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """The spans of one trace via ``GET /v1/projects/{project}/spans``, once ``expected`` have arrived.

        Phoenix inserts spans in the background: poll (bounded) until the count is reached, then return
        what it holds (more than expected is returned too, so the caller's count check can fail).
        """
        deadline = time.monotonic() + timeout_s
        spans: list[dict[str, Any]] = []
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
        while time.monotonic() < deadline:
            try:
                spans = self.get_json(path, trace_id=trace_id, limit=1000)["data"]
            except urllib.error.HTTPError as error:
                if error.code != 404:  # 404: the project is created with its first span
                    raise
            if len(spans) >= expected:
                return spans
            time.sleep(0.25)
        return spans


def run_agent(env_overrides: dict[str, str], timeout_s: float = 120.0) -> dict[str, Any]:
    """Run ``tests/_phoenix_agent.py`` in a fresh interpreter of THIS environment; its ``RESULT`` payload."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    env.update({"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", **env_overrides})
    done = subprocess.run(
        [sys.executable, str(AGENT_SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout_s
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(AGENT_MARK)]
    if done.returncode != 0 or len(lines) != 1:
        raise AssertionError(f"agent failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(lines[0][len(AGENT_MARK) :])
    return result


def otlp_env(phoenix: PhoenixServer, transport: str, project: str) -> dict[str, str]:
    """The standard OTEL_* settings that send the agent's spans to ``phoenix`` into ``project``."""
    endpoint = phoenix.grpc_endpoint if transport == "grpc" else phoenix.url
    return {
        "OTEL_SERVICE_NAME": "tokenkpi-e2e",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc" if transport == "grpc" else "http/protobuf",
        # Phoenix files spans under the project this resource attribute names.
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
    }
