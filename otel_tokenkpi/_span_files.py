"""The report's inputs: span files as the Collector's ``file`` exporter leaves them.

A path is a file of OTLP JSON lines, plain or gzip'd (detected by its first bytes, whatever its name), or a
directory: every regular file in it, in name order (the exporter's rotated backups
``spans-2026-01-05T10-00-00.000.jsonl`` sort before the live ``spans.jsonl``), hidden files skipped.
Files are read line by line, so memory stays flat whatever their size.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator, Sequence
from typing import BinaryIO

__all__ = ["SpanFileError", "expand", "lines"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A Collector line holds up to 512 spans (hundreds of KB): read in large blocks, not the default 8 KB, so
# a line is not assembled from a hundred small reads (a tenth of the report's time on a plain file).
READ_BUFFER = 1 << 22


class SpanFileError(Exception):
    """A path the report cannot read; the message names it and says why. ``after_line`` is set when the
    file broke off after that many lines (the lines before it were read)."""

    def __init__(self, message: str, after_line: int | None = None) -> None:
        super().__init__(message)
        self.after_line = after_line


def expand(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The files to read, in order: files as given, directories expanded."""
    files: list[str] = []
    for path in (os.fspath(p) for p in paths):
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as exc:
                raise SpanFileError(f"cannot read {path}: {exc.strerror or exc}") from None
            found = [
                os.path.join(path, name)
                for name in names
                if not name.startswith(".") and os.path.isfile(os.path.join(path, name))
            ]
            if not found:
                raise SpanFileError(f"{path} is a directory with no span files in it")
            files += found
        elif os.path.exists(path):
            files.append(path)
        else:
            raise SpanFileError(f"no such file: {path}")
    return files


def _open(path: str) -> tuple[io.RawIOBase | gzip.GzipFile, BinaryIO]:
    """(the stream to read lines from, the raw file whose position measures progress)."""
    raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by lines()
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    if magic == ZSTD_MAGIC:
        raw.close()
        raise SpanFileError(f"{path} is zstd-compressed: decompress it first (zstd -d), or read it plain or gzip'd")
    return raw, raw  # type: ignore[return-value]


def lines(path: str) -> Iterator[tuple[int, memoryview, int]]:
    """(line number, line, bytes of the file consumed so far) for each line of ``path``.

    A line is a view into a buffer this reuses: it is valid until the next one is asked for (the report
    decodes it before that; ``bytes(line)`` keeps one). Reading into one buffer and slicing it, rather
    than iterating a buffered file, saves a copy of every byte (about 4% of the report on a plain file).
    Raises :class:`SpanFileError` when the file cannot be opened or its compression is broken.
    """
    try:
        stream, raw = _open(path)
    except OSError as exc:
        raise SpanFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    number = 0
    try:
        for number, line in enumerate(_split(stream), 1):
            yield number, line, raw.tell()
    except (OSError, EOFError, zlib.error) as exc:
        raise SpanFileError(f"the file breaks off after line {number}: {exc}", after_line=number) from None
    finally:
        stream.close()
        raw.close()


def _split(stream: io.RawIOBase | gzip.GzipFile) -> Iterator[memoryview]:
    """The lines of ``stream`` (each with its newline, the last one maybe without) as views of one buffer,
    which doubles when a line does not fit."""
    buffer = bytearray(READ_BUFFER)
    view = memoryview(buffer)
    start = end = searched = 0  # the unread bytes are buffer[start:end]; no newline in buffer[start:searched]
    while True:
        newline = buffer.find(b"\n", searched, end)
        if newline >= 0:
            yield view[start : newline + 1]
            start = searched = newline + 1
            continue
        searched = end
        if start:  # move the part line to the front: through a copy (memcpy must not overlap), same length
            buffer[: end - start] = buffer[start:end]  # (a resize is refused while a view exists)
            end -= start
            searched -= start
            start = 0
        if end == len(buffer):
            grown = bytearray(2 * len(buffer))  # a new buffer: one with views cannot be resized
            grown[:end] = view[:end]
            buffer, view = grown, memoryview(grown)
        read = stream.readinto(view[end:])
        if not read:
            if end:
                yield view[:end]
            return
        end += read
