"""Statistics and the markdown tables of ``peers.py``.

Added cost of a configuration = its statistic (median or p95 over every call of every round) minus the
same statistic of ``plain``. The noise is shown twice: ``plain-b`` is a second uninstrumented process
(its "added" cost is pure noise), and each added median comes with the spread (interquartile range) of
the per-round differences.
"""

from __future__ import annotations

import statistics
from typing import Any

WORKLOAD_NAMES = {
    "short": "short chat call",
    "stream": "streamed call, 200 chunks",
    "stream-short": "streamed call, 20 chunks",
    "conversation": "50-turn tool conversation, per call",
}
PEER_NAMES = {
    "plain-b": "uninstrumented (2nd process: noise)",
    "tokenkpi": "**otel-tokenkpi**",
    "otel-genai": "OpenTelemetry genai-openai",
    "openllmetry": "OpenLLMetry",
    "openinference": "OpenInference",
}
CLOCK_NAMES = {
    "cpu": "process CPU",
    "thread": "calling-thread CPU",
    "delivered": "calling-thread CPU until the last chunk was delivered",
}
TOKENIZER_TARGET = 1.2
CHUNK_TARGET_US = 2.0


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]


def _workload_stats(rounds: list[list[float]], base: list[list[float]]) -> dict[str, float]:
    flat, base_flat = [x for r in rounds for x in r], [x for r in base for x in r]
    per_round = [statistics.median(a) - statistics.median(b) for a, b in zip(rounds, base, strict=True)]
    return {
        "median_us": statistics.median(flat) * 1e6,
        "p95_us": p95(flat) * 1e6,
        "added_median_us": (statistics.median(flat) - statistics.median(base_flat)) * 1e6,
        "added_p95_us": (p95(flat) - p95(base_flat)) * 1e6,
        "round_iqr_us": _iqr(per_round) * 1e6,
    }


def _turn_growth(rounds: list[list[float]], base: list[list[float]]) -> dict[str, float]:
    """Added median per call in the first and last ten turns (per turn: median over rounds)."""
    turns = len(rounds[0])
    added = [statistics.median(r[t] for r in rounds) - statistics.median(b[t] for b in base) for t in range(turns)]
    k = min(10, turns)
    return {
        "first_turns_added_us": statistics.median(added[:k]) * 1e6,
        "last_turns_added_us": statistics.median(added[-k:]) * 1e6,
    }


def _configs(raw: dict[str, Any], chunks: tuple[int, int]) -> dict[str, Any]:
    base = raw["plain"]
    configs: dict[str, Any] = {}
    for config, workloads in raw.items():
        stats = {w: _workload_stats(rounds, base[w]) for w, rounds in workloads.items()}
        stats["conversation"].update(_turn_growth(workloads["conversation"], base["conversation"]))
        long_added, short_added = stats["stream"]["added_median_us"], stats["stream-short"]["added_median_us"]
        stats["per_chunk"] = {
            "marginal_us": (long_added - short_added) / (chunks[0] - chunks[1]),
            "upper_bound_us": long_added / chunks[0],
        }
        configs[config] = stats
    return configs


METRICS = {  # summary key -> (raw key, title, the clock of the in-process paired chunk figure)
    "wall": ("timings", "Wall-clock time per call", "delivered"),
    "cpu": ("cpu", "CPU time of the client process per call (all its threads)", "cpu"),
    "thread": ("thread", "CPU time of the calling thread per call (what the request itself pays)", "thread"),
}


def summarize(measured: dict[str, Any], chunks: tuple[int, int]) -> dict[str, Any]:
    """Per metric (``wall``: wall-clock latency; ``cpu``: CPU time of the client process; ``thread``: CPU
    time of the calling thread), the statistics of every configuration and the targets; plus the
    tokenizer tally and the peers' versions."""
    summary: dict[str, Any] = {"versions": measured["versions"]}
    tally = measured["tokenizer"]
    if tally:
        encoded, unique = sum(t["encoded_tokens"] for t in tally), sum(t["unique_tokens"] for t in tally)
        summary["tokenizer"] = {"encoded_tokens": encoded, "unique_tokens": unique, "ratio": encoded / unique}
        calls = sum(t.get("calls", 0) for t in tally)
        if calls:
            encode_cpu_s = sum(t.get("encode_cpu_s", 0.0) for t in tally)
            summary["tokenizer"]["encode_cpu_us_per_call"] = encode_cpu_s / calls * 1e6
    summary["paired_chunk"] = _paired_chunk(measured.get("paired_stream") or {}, chunks)
    summary["paired_chunk_base"] = _paired_chunk(measured.get("paired_stream_base") or {}, chunks)
    for metric, (key, _, paired_clock) in METRICS.items():
        if key not in measured["raw"]:
            continue
        configs = _configs(measured["raw"][key], chunks)
        paired_figure = summary["paired_chunk"].get(paired_clock)
        targets = _targets(configs, summary.get("tokenizer"), paired_figure, paired_clock)
        summary[metric] = {"configs": configs, "targets": targets}
    return summary


def _targets(
    configs: dict[str, Any], tokenizer: dict[str, Any] | None, paired: dict[str, Any] | None, clock: str
) -> list[dict[str, Any]]:
    ours = configs.get("tokenkpi")
    if ours is None:
        return []
    peers = [c for c in configs if c not in ("plain", "plain-b", "tokenkpi", "tokenkpi-base")]
    targets: list[dict[str, Any]] = []
    if peers:
        cheapest = min(configs[p]["short"]["added_median_us"] for p in peers)
        mine = ours["short"]["added_median_us"]
        targets.append(
            {
                "target": "short call: added <= cheapest peer's",
                "figure": f"{mine:.0f} us vs {cheapest:.0f} us",
                "met": mine <= cheapest,
            }
        )
        lowest = min(configs[p]["conversation"]["added_median_us"] for p in peers)
        mine = ours["conversation"]["added_median_us"]
        targets.append(
            {
                "target": "50-turn conversation: added < every peer's",
                "figure": f"{mine:.0f} us vs lowest peer {lowest:.0f} us",
                "met": mine < lowest,
            }
        )
    chunk = ours["per_chunk"]["marginal_us"]
    label = "cross-process slope"
    if paired is not None:  # the precise figure, when measured
        chunk, label = paired["marginal_us"], f"in-process paired slope ({CLOCK_NAMES[clock]})"
    targets.append(
        {
            "target": f"streamed chunk: < {CHUNK_TARGET_US:g} us",
            "figure": f"{chunk:.2f} us ({label})",
            "met": chunk < CHUNK_TARGET_US,
        }
    )
    if tokenizer is not None:
        ratio = tokenizer["ratio"]
        targets.append(
            {
                "target": f"tokenizer work over the conversation <= {TOKENIZER_TARGET}x unique content",
                "figure": f"{ratio:.3f}x",
                "met": ratio <= TOKENIZER_TARGET,
            }
        )
    return targets


def _ratio(mine: float, theirs: float) -> str:
    return f"{mine / theirs:.2f}" if theirs > 0 and mine > 0 else "n/a"


def tables(summary: dict[str, Any]) -> str:
    """Markdown: for wall-clock time, then for CPU time, the per-workload table, the growth and chunk
    table and the targets; then the tokenizer line and the peers' versions."""
    out = []
    for metric, (_, title, _) in METRICS.items():
        if metric in summary:
            out += [f"### {title}", "", _metric_tables(summary[metric]), ""]
    if "tokenizer" in summary:
        t = summary["tokenizer"]
        out.append(
            f"otel-tokenkpi tokenizer work over the conversations: {t['encoded_tokens']} tokens encoded for "
            f"{t['unique_tokens']} tokens of distinct content ({t['ratio']:.3f}x)"
            + (
                f"; {t['encode_cpu_us_per_call']:.0f} us of encoding CPU per call, in the background thread."
                if "encode_cpu_us_per_call" in t
                else "."
            )
        )
    for key, who in (("paired_chunk", "otel-tokenkpi"), ("paired_chunk_base", "tokenkpi-base")):
        for clock, c in summary.get(key, {}).items():
            out.append(
                f"{who} in-process, switch off/on for alternate calls ({c['pairs']} pairs, {CLOCK_NAMES[clock]}): "
                f"+{c['stream_added_us']:.0f} us per 200-chunk stream, +{c['stream_short_added_us']:.0f} us per "
                f"20-chunk stream: {c['marginal_us']:.2f} us per chunk."
            )
    if summary.get("versions"):
        out += ["", "Peers: " + ", ".join(f"{c} {v}" for c, v in summary["versions"].items())]
    return "\n".join(out)


def _paired_chunk(paired_stream: dict[str, dict[str, list[float]]], chunks: tuple[int, int]) -> dict[str, Any]:
    """Per clock: the in-process paired cost of the long and short streams, and per chunk (their slope)."""
    found: dict[str, Any] = {}
    for clock, paired in paired_stream.items():
        if paired.get("stream"):
            long_added, short_added = statistics.median(paired["stream"]), statistics.median(paired["stream-short"])
            found[clock] = {
                "stream_added_us": long_added * 1e6,
                "stream_short_added_us": short_added * 1e6,
                "marginal_us": (long_added - short_added) * 1e6 / (chunks[0] - chunks[1]),
                "pairs": len(paired["stream"]),
            }
    return found


def _metric_tables(summary: dict[str, Any]) -> str:
    configs = summary["configs"]
    ours = configs.get("tokenkpi")
    lines = [
        "| workload | configuration | median (us) | p95 (us) | added median (us) | added p95 (us) "
        "| round-to-round IQR of added (us) | otel-tokenkpi added / this (median, p95) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, title in WORKLOAD_NAMES.items():
        for config, stats in configs.items():
            s = stats[workload]
            if config == "plain":
                lines.append(f"| {title} | uninstrumented | {s['median_us']:.0f} | {s['p95_us']:.0f} | | | | |")
                continue
            versus = ""
            if ours is not None and config not in ("tokenkpi", "plain-b"):
                o = ours[workload]
                versus = _ratio(o["added_median_us"], s["added_median_us"])
                versus += ", " + _ratio(o["added_p95_us"], s["added_p95_us"])
            lines.append(
                f"| {title} | {PEER_NAMES.get(config, config)} | {s['median_us']:.0f} | {s['p95_us']:.0f} "
                f"| {s['added_median_us']:.0f} | {s['added_p95_us']:.0f} | {s['round_iqr_us']:.0f} | {versus} |"
            )
    lines += [
        "",
        "| configuration | conversation added, turns 1-10 (us) | turns 41-50 (us) "
        "| added per streamed chunk (us, slope 20->200 chunks) | added per chunk, upper bound (us, all / 200) |",
        "|---|---|---|---|---|",
    ]
    for config, stats in configs.items():
        if config == "plain":
            continue
        c, k = stats["conversation"], stats["per_chunk"]
        lines.append(
            f"| {PEER_NAMES.get(config, config)} | {c['first_turns_added_us']:.0f} | {c['last_turns_added_us']:.0f} "
            f"| {k['marginal_us']:.2f} | {k['upper_bound_us']:.2f} |"
        )
    if summary["targets"]:
        lines += ["", "| target | figure | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['figure']} | {'yes' if t['met'] else 'NO'} |" for t in summary["targets"]]
    return "\n".join(lines)
