"""Records → per-interval series, so bursts can be lined up with latency spikes (the BurstGPT paper's
central analysis): what was sent, what finished, what was in flight, how fast tokens streamed, and the
latency and schedule lag of the requests sent in each interval.

Bins are `bin_s` wide from t0. Counts go to the bin of their event (sent: the send; completed and
failed: the end); output tokens are spread over the request's chunk arrivals; latency percentiles
and lag belong to the bin the request was sent in, so a burst and the latency it caused share a row.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from replayer.analysis.summary import request_latencies
from replayer.records import RequestRecord

COLUMNS = ("t_s", "sent", "completed", "failed", "in_flight", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms",
           "tpot_p50_ms", "tpot_p99_ms", "lag_p99_ms")


def time_series(records: Sequence[RequestRecord], bin_s: float = 1.0, streamed: bool = True) -> dict[str, list]:
    """Columns (see COLUMNS) of one row per bin, from t0 to the last event; latency cells are None in a
    bin that sent no successful request."""
    sent = [(r, r.sent_ns) for r in records if r.sent_ns is not None]
    if not sent:
        return {name: [] for name in COLUMNS}
    bin_ns = int(bin_s * 1e9)
    last = max(max(r.end_ns or sent_ns for r, sent_ns in sent), max(sent_ns for _, sent_ns in sent))
    n = last // bin_ns + 1
    series = {name: [0] * n for name in ("sent", "completed", "failed")}
    in_flight = np.zeros(n + 1, dtype=np.int64)
    tokens = np.zeros(n, dtype=np.float64)
    by_bin: list[list[tuple[float | None, float | None, float]]] = [[] for _ in range(n)]
    for r, sent_ns in sent:
        start = sent_ns // bin_ns
        series["sent"][start] += 1
        if r.end_ns is not None:
            end = r.end_ns // bin_ns
            series["completed" if r.ok else "failed"][end] += 1
            in_flight[start] += 1
            in_flight[end] -= 1  # open at the end of every bin from its send's up to (not incl.) its end's
        else:
            in_flight[start] += 1
        _spread_tokens(r, tokens, bin_ns)
        latencies = request_latencies(r, streamed)
        lag = r.client_lag_ns / 1e6
        by_bin[start].append((latencies["ttft_ms"] if latencies else math.nan,
                              latencies["tpot_ms"] if latencies else None, lag))
    result: dict[str, list] = {"t_s": [round(i * bin_s, 6) for i in range(n)], **series,
                               "in_flight": np.cumsum(in_flight)[:n].tolist(),
                               "output_tokens_per_s": (tokens / bin_s).round(3).tolist()}
    for name in COLUMNS[6:]:
        result[name] = []
    for rows in by_bin:
        ttft = [t for t, _, _ in rows if t is not None and not math.isnan(t)]
        tpot = [t for _, t, _ in rows if t is not None]
        for name, values in (("ttft", ttft), ("tpot", tpot)):
            p50, p99 = _percentiles(values)
            result[f"{name}_p50_ms"].append(p50)
            result[f"{name}_p99_ms"].append(p99)
        result["lag_p99_ms"].append(_percentiles([lag for _, _, lag in rows])[1])
    return result


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    p50, p99 = np.percentile(values, [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def _spread_tokens(record: RequestRecord, tokens: np.ndarray, bin_ns: int) -> None:
    """Add the record's served output tokens to the bins its chunks arrived in (evenly per chunk)."""
    served = record.served_output_tokens or 0
    if not served or record.first_token_ns is None:
        return
    arrivals = record.first_token_ns + np.concatenate([[0], np.cumsum(record.itl_us)]) * 1e3
    np.add.at(tokens, np.minimum(arrivals.astype(np.int64) // bin_ns, tokens.size - 1), served / arrivals.size)


def write_series_csv(series: dict[str, list], path: Path) -> None:
    """The series as CSV, one row per bin (empty cells where a bin has no latency sample)."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in zip(*(series[name] for name in COLUMNS)):
            writer.writerow("" if value is None else value for value in row)
