"""otel-tokenkpi: OpenTelemetry GenAI spans that show what tokens bought.

One line: ``otel_tokenkpi.instrument()``. See README.md.
"""

from .api import attributes, conversation, record_outcome, task
from .processor import TokenKPISpanProcessor
from .sdk_setup import instrument, uninstrument
from .version import __version__

__all__ = [
    "OTLPJsonLinesSpanExporter",
    "TokenKPISpanProcessor",
    "__version__",
    "attributes",
    "conversation",
    "instrument",
    "record_outcome",
    "task",
    "uninstrument",
]


def __getattr__(name: str) -> object:
    # Imported on first use: the exporter pulls in protobuf, which most users never need.
    if name == "OTLPJsonLinesSpanExporter":
        from .jsonl_exporter import OTLPJsonLinesSpanExporter

        return OTLPJsonLinesSpanExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
