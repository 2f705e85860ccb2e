"""Counts in words for what the command line prints: "1 task", "2 tasks", "1,204 lines"."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and ``noun``, in the plural (``nouns``, default noun + "s") unless ``count`` is 1."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
