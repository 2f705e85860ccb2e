"""otel-tokenkpi: OpenTelemetry GenAI spans that show what tokens bought.

One line: ``otel_tokenkpi.instrument()``. See README.md.
"""

from .api import attributes, conversation, record_outcome, task
from .processor import TokenKPISpanProcessor
from .setup import instrument, uninstrument
from .version import __version__

__all__ = [
    "TokenKPISpanProcessor",
    "__version__",
    "attributes",
    "conversation",
    "instrument",
    "record_outcome",
    "task",
    "uninstrument",
]
