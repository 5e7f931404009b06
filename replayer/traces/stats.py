"""Trace statistics for `replayer inspect`: rates and burstiness, lengths, failures, groups, sessions, prefix reuse.

Token percentiles are nearest-rank (the value at rank ⌈p·n⌉), so they are always recorded values;
peak rates count requests in one-second and one-minute bins aligned to the first request.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from replayer.traces.fitting import fit_gamma, fit_weibull
from replayer.traces.model import Categorical, Trace, parent_positions, tree_depths

SPARK = "▁▂▃▄▅▆▇█"
TOKEN_PERCENTILES = (50, 90, 99)


def lengths(values: np.ndarray) -> dict:
    """mean, nearest-rank p50/p90/p99 and max of a token-count column."""
    if values.size == 0:
        return {"mean": None, **{f"p{p}": None for p in TOKEN_PERCENTILES}, "max": None}
    points = np.percentile(values, TOKEN_PERCENTILES, method="inverted_cdf")
    return {"mean": float(values.mean()), **{f"p{p}": int(v) for p, v in zip(TOKEN_PERCENTILES, points)},
            "max": int(values.max())}


def peak(arrival_s: np.ndarray, bin_s: float) -> int:
    """Most requests in one bin of `bin_s` seconds, bins aligned to the first request (the arrivals
    are sorted, so each bin is one run of equal bin numbers)."""
    if not arrival_s.size:
        return 0
    bins = arrival_s // bin_s
    ends = np.flatnonzero(bins[1:] != bins[:-1])
    return int(np.diff(ends, prepend=-1, append=arrival_s.size - 1).max())


def max_overlap(starts: np.ndarray, ends: np.ndarray) -> int:
    """The most intervals [start, end) open at the same instant (0 for none)."""
    if not starts.size:
        return 0
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(starts.size, dtype=np.int64), -np.ones(ends.size, dtype=np.int64)])
    return int(np.cumsum(steps[np.lexsort((steps, times))]).max())  # at equal instants, ends first


def sparkline(arrival_s: np.ndarray, width: int = 60) -> str:
    """Arrival rate over the trace as a one-line bar chart of `width` bins."""
    if arrival_s.size == 0:
        return ""
    span = float(arrival_s[-1]) or 1.0
    edges = np.searchsorted(arrival_s, np.arange(1, width) * (span / width))  # (the arrivals are sorted)
    counts = np.diff(edges, prepend=0, append=arrival_s.size)
    levels = np.rint(counts / counts.max() * (len(SPARK) - 1)).astype(int)
    return "".join(SPARK[level] for level in levels)


def _groups(column: Categorical | None, trace: Trace) -> dict | None:
    if column is None:
        return None
    size = len(column.labels)
    counts = np.bincount(column.codes, minlength=size)
    inputs = np.bincount(column.codes, weights=trace.input_tokens, minlength=size)
    outputs = np.bincount(column.codes, weights=trace.output_tokens, minlength=size)
    return {label or "(none)": {"requests": int(counts[code]),
                                "input_tokens_mean": float(inputs[code] / counts[code]),
                                "output_tokens_mean": float(outputs[code] / counts[code])}
            for code, label in enumerate(column.labels) if counts[code]}


def _sessions(trace: Trace) -> dict | None:
    if trace.sessions is None:
        return None
    codes = trace.sessions.codes
    empty = trace.sessions.code_of("")
    in_session = codes != empty if empty is not None else np.ones(codes.size, bool)
    turns = np.bincount(codes[in_session])
    turns = turns[turns > 0]
    stats = {
        "sessions": int(turns.size),
        "requests_in_sessions": int(in_session.sum()),
        "turns_mean": float(turns.mean()) if turns.size else 0.0,
        "turns_max": int(turns.max()) if turns.size else 0,
    }
    if trace.parents is not None:  # a tree per session: how deep, and how often a turn branches
        previous = parent_positions(trace.row_ids, trace.parents)
        follow_ups = np.bincount(previous[previous >= 0], minlength=len(trace))
        stats["depth_max"] = int(tree_depths(previous).max()) + 1 if len(trace) else 0
        stats["branching_turns"] = int(np.count_nonzero(follow_ups > 1))
    return stats


def _prefix_reuse(trace: Trace) -> dict | None:
    """Share of prefix blocks already seen earlier in the trace (what a perfect prefix cache could hit)."""
    if trace.prefix_blocks is None:
        return None
    seen: set[int] = set()
    total = reused = 0
    for blocks in trace.prefix_blocks:
        for block in blocks.tolist():
            total += 1
            if block in seen:
                reused += 1
            else:
                seen.add(block)
    return {"blocks": total, "distinct_blocks": len(seen), "reuse_ratio": reused / total if total else 0.0,
            "block_tokens": trace.block_tokens}


FIT_SAMPLE = 1_000_000
"""Gaps the arrival fits use at most: a fixed random sample of a longer trace's gaps. A million gaps
pin a shape far closer than the fit describes the trace, and the fits' cost stays bounded."""


def arrival_fits(gaps: np.ndarray) -> dict:
    """Maximum-likelihood Gamma and Weibull fits of the non-zero gaps, with their KS distances."""
    if gaps.size > FIT_SAMPLE:
        gaps = np.random.default_rng(0).choice(gaps, FIT_SAMPLE, replace=False)
    fits = {"gamma": fit_gamma(gaps), "weibull": fit_weibull(gaps)}
    return {
        name: None
        if fit is None
        else {
            "shape": fit.shape,
            "scale": fit.scale,
            "cv": fit.cv,
            "ks_statistic": fit.ks_statistic,
            "samples": fit.samples,
        }
        for name, fit in fits.items()
    }


def trace_stats(trace: Trace) -> dict:
    """Everything `inspect` reports about a trace, as plain JSON-ready values. The arrival fits, a
    third of the work, run on a second thread meanwhile (numpy lets go of the interpreter lock in
    its passes over the data, so a second core shortens `inspect` on a big trace)."""
    arrival = trace.arrival_s
    span = trace.span_s
    gaps = np.diff(arrival)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fits = pool.submit(arrival_fits, gaps)
        stats = _stats_besides_fits(trace, arrival, span, gaps)
        stats["interarrival"].update(fits.result())
    return stats


def _stats_besides_fits(trace: Trace, arrival: np.ndarray, span: float, gaps: np.ndarray) -> dict:
    failed = (trace.input_tokens == 0) | (trace.output_tokens == 0)
    both = ~failed if failed.any() else slice(None)
    correlation = (
        float(np.corrcoef(trace.input_tokens[both], trace.output_tokens[both])[0, 1])
        if len(trace) - failed.sum() > 2 else None
    )
    return {
        "source": trace.source,
        "format": trace.format,
        "rows": len(trace),
        "span_s": span,
        "rate": {
            "mean_per_s": len(trace) / span if span > 0 else None,
            "peak_per_s": peak(arrival, 1.0),
            "peak_per_min": peak(arrival, 60.0),
        },
        "interarrival": {
            "mean_s": float(gaps.mean()) if gaps.size else None,
            "cv": float(gaps.std() / gaps.mean()) if gaps.size and gaps.mean() > 0 else None,
            "zero_gaps": int(np.count_nonzero(gaps == 0)),
        },
        "input_tokens": lengths(trace.input_tokens[both]),
        "output_tokens": lengths(trace.output_tokens[both]),
        "input_output_correlation": correlation,
        "failed_rows": int(failed.sum()),
        "failed_fraction": float(failed.mean()) if len(trace) else 0.0,
        "models": _groups(trace.models, trace),
        "log_types": _groups(trace.log_types, trace),
        "request_types": _groups(trace.request_types, trace),
        "sessions": _sessions(trace),
        "prefix_reuse": _prefix_reuse(trace),
        "sparkline": sparkline(arrival),
    }
