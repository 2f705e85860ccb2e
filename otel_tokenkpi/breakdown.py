"""The context breakdown, reconciled with what the provider billed.

Our parts (system, tool definitions, tool results; re-sent and new) are counted locally, per message
content. The provider bills more than content (per-message framing, hidden prompts) and, where our
counting rule differs from its own, sometimes less. A breakdown is only worth publishing if it adds up
to the bill (docs/architecture.md "Reconciliation"):

    resent + new + unattributed == billed input tokens,   unattributed >= 0

``unattributed`` is what the provider added that we cannot attribute to a part. When our parts exceed
the bill they are scaled down to it (each part by the same factor) and the span says the figures are
estimated: a part larger than the bill is never published as exact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Breakdown:
    system: int
    tool_definitions: int
    tool_results: int
    resent: int
    new: int
    unattributed: int | None  # None when there is no billed input to reconcile with
    scaled: bool = False  # the local parts exceeded the bill and were scaled down to it


def reconcile(
    system: int, tool_definitions: int, tool_results: int, resent: int, new: int, billed_input: int | None
) -> Breakdown:
    """The breakdown of a request whose billed input is ``billed_input`` (None: not reported)."""
    local = resent + new
    if billed_input is None:
        return Breakdown(system, tool_definitions, tool_results, resent, new, None)
    if local <= billed_input:
        return Breakdown(system, tool_definitions, tool_results, resent, new, billed_input - local)
    # Floors keep every scaled part, and any sum of them, within the bill; new takes the rounding.
    scaled_resent = resent * billed_input // local
    return Breakdown(
        system * billed_input // local,
        tool_definitions * billed_input // local,
        tool_results * billed_input // local,
        scaled_resent,
        billed_input - scaled_resent,
        0,
        scaled=True,
    )
