"""What the Bedrock patch costs an AWS call that is NOT a Bedrock model call.

The Bedrock instrumentor patches ``botocore.client.BaseClient._make_api_call``, which every AWS call of
every client goes through. For any operation outside the four it instruments, the wrapper does one tuple
index and one frozenset lookup and calls the original. This measures that, in one run, against a baseline
measured in the same run:

- http: ``bedrock-runtime`` ``ListAsyncInvokes`` (an operation we do not instrument) against the fake
  Bedrock server running in a separate process: a full botocore call (serialise, sign, HTTP, parse);
- no-http: the same call with the HTTP exchange short-circuited by a botocore ``before-call`` handler,
  i.e. botocore's own pure-Python path only, where a fixed added cost weighs the most.

Blocks of unpatched and patched calls alternate (``instrument()`` / ``uninstrument()`` between blocks) so
machine noise hits both sides alike; each round's ratio is median(patched) / median(unpatched), and the
figure reported is the median of the rounds' ratios.

    python benchmarks/bedrock_patch_overhead.py [--rounds 30] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

_SERVER = """
import sys
from otel_tokenkpi.testing.fake_bedrock import FakeBedrockServer
server = FakeBedrockServer().start()
print(server.url, flush=True)
sys.stdin.read()
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def make_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"total_max_attempts": 1}),
    )


def short_circuit(client: Any) -> None:
    """Answer ListAsyncInvokes from a ``before-call`` handler: botocore skips the HTTP exchange."""
    from botocore.awsrequest import AWSResponse

    def answer(**_: Any) -> tuple[Any, dict[str, Any]]:
        return AWSResponse("http://stub/", 200, {}, None), {"asyncInvokeSummaries": [], "ResponseMetadata": {}}

    client.meta.events.register("before-call.bedrock-runtime.ListAsyncInvokes", answer)


def block(call: Any, n: int) -> float:
    """Median seconds per call over ``n`` calls."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def is_patched() -> bool:
    import wrapt
    from botocore.client import BaseClient

    return isinstance(vars(BaseClient)["_make_api_call"], wrapt.FunctionWrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200, help="calls per block")
    args = parser.parse_args()

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_tokenkpi.instrumentors.bedrock import BedrockInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = BedrockInstrumentor()
    proc, url = start_server()
    try:
        http_client = make_client(url)
        stub_client = make_client(url)
        short_circuit(stub_client)
        workloads = {"http": http_client.list_async_invokes, "no-http": stub_client.list_async_invokes}
        for call in workloads.values():  # warm up: connection pool, botocore caches
            for _ in range(50):
                call()
        ratios: dict[str, list[float]] = {name: [] for name in workloads}
        plain_us: dict[str, list[float]] = {name: [] for name in workloads}
        added_us: dict[str, list[float]] = {name: [] for name in workloads}
        for round_number in range(args.rounds):
            for name, call in workloads.items():
                order = (False, True) if round_number % 2 == 0 else (True, False)
                medians = {}
                for patched in order:
                    if patched:
                        instrumentor.instrument(tracer_provider=provider)
                        assert is_patched()
                    medians[patched] = block(call, args.calls)
                    if patched:
                        instrumentor.uninstrument()
                        assert not is_patched()
                ratios[name].append(medians[True] / medians[False])
                plain_us[name].append(medians[False] * 1e6)
                added_us[name].append((medians[True] - medians[False]) * 1e6)
    finally:
        proc.kill()
    assert not exporter.get_finished_spans(), "a non-Bedrock call made a span"

    print(f"rounds={args.rounds} calls/block={args.calls} (alternating blocks, unpatched vs patched)")
    print(
        "| non-Bedrock call | unpatched median (us) | added median (us) | ratio patched/unpatched (median of rounds) |"
    )
    print("|---|---|---|---|")
    for name in workloads:
        print(
            f"| ListAsyncInvokes, {name} | {statistics.median(plain_us[name]):.1f} | "
            f"{statistics.median(added_us[name]):.2f} | {statistics.median(ratios[name]):.4f} |"
        )


if __name__ == "__main__":
    main()
