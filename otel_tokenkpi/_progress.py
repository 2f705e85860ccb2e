"""A progress bar on a terminal stream, for reading large files; silent when given no stream."""

from __future__ import annotations

import time
from typing import IO, Any

WIDTH = 30
INTERVAL_S = 0.1


class Progress:
    """``with Progress(total_bytes, stream) as bar: bar.update(done)``; draws at most every 0.1 s and clears
    its line at the end, so the output that follows starts on a clean line."""

    def __init__(self, total: int, stream: IO[str] | None) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self._last = 0.0

    def __enter__(self) -> Progress:
        return self

    def update(self, done: int) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self._last < INTERVAL_S:
            return
        self._last = now
        share = min(done / self.total, 1.0)
        filled = int(share * WIDTH)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (WIDTH - filled)}] {share:4.0%} {done / 2**20:.1f}/{self.total / 2**20:.1f} MiB"
        )
        self.stream.flush()

    def clear(self) -> None:
        if self.stream is not None and self._last:
            self.stream.write("\r" + " " * (WIDTH + 30) + "\r")
            self.stream.flush()
            self._last = 0.0

    def __exit__(self, *exc_info: Any) -> None:
        self.clear()
