"""Records → summary: the metric definitions of the project, as pure functions.

For a request, `sent` is when it left, `first` the arrival of the first output-bearing chunk,
`last` that of the last one, `n_out` its served output tokens:

- TTFT = first − sent; E2E = last − sent; TPOT = (last − first) / (n_out − 1) for n_out ≥ 2
  (vLLM's `bench serve` definitions: TPOT excludes the first token);
- ITL = gaps between consecutive output-bearing chunks, pooled over all requests;
- user-view TTFT / E2E = the same measured from the intended send time (includes client lag);
- schedule lag = sent − intended; for a session turn it includes the session wait (how long the
  turn waited past its instant for the previous turn of its session to finish), which the summary
  also reports on its own. Whether the client kept up is judged on the lag without that wait, per
  window of intended send times: the run is `client_limited` if any window's p99 is over the limit
  with at least `MIN_LATE_SENDS` of its sends over it;
- duration = last completion − t0; throughputs are completed requests, and their served output and
  input tokens, per second of that duration; the sent rate is one over the mean gap between sends.

Requests marked `warmup` (sent within the run's `--warmup`) are kept out of all of it but the
accounting, and the duration then runs from the warm-up's end.

Latency percentiles are over successful requests only; failures are counted by kind, never
dropped. Percentiles interpolate linearly between recorded values (numpy's default, as vLLM does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, TypedDict, cast

import numpy as np

from replayer.records import LABEL_KINDS, RequestRecord

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))
DISTRIBUTIONS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "user_ttft_ms", "user_e2e_ms", "schedule_lag_ms",
                 "session_wait_ms", "cap_wait_ms", "e2e_vs_recorded")
CLIENT_LIMITED_LAG_MS = 5.0
"""Schedule-lag p99 (in any window) above which a run is flagged as limited by the client."""
LAG_WINDOW_S = 5.0
"""The client is judged window by window: a burst it could not keep up with must not hide inside a
calm run's overall p99."""
MIN_LATE_SENDS = 3
"""A window counts as behind only with at least this many sends over the limit: in a sparse window
(35 sends) the p99 is its worst send, and one hiccup is not a client that cannot keep up."""

_NS_PER_MS = 1e6


class Distribution(TypedDict):
    """count, mean, the percentiles of PERCENTILES and max of one metric's samples (ms; None when empty)."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None


class Summary(TypedDict, total=False):
    """A run's summary: the content of `summary.json` (before vLLM's flat keys are added).

    `summarize` fills the metrics; `replayer.analysis.runs.summarize_run` adds how the run ended
    (`interrupted`, `client_cpu_s`), what the server's metrics endpoint gave, where the load came
    from (`scale_out`) and the SLO verdict (`slo`, see `replayer.analysis.slo.evaluate`)."""

    requests_sent: int
    completed: int
    failed: int
    failures: dict[str, int]
    failure_examples: dict[str, str]
    duration_s: float
    sent_rate: float | None
    """Requests per second at which requests left: one over the mean gap between consecutive sends."""
    warmup: dict[str, float | int]
    request_throughput: float | None
    output_throughput: float | None
    input_throughput: float | None
    total_output_tokens: int
    total_input_tokens: int
    output_tokens_counted: int
    token_mismatch: dict[str, dict[str, float | int]]
    ttft_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2e_ms: Distribution
    user_ttft_ms: Distribution
    user_e2e_ms: Distribution
    schedule_lag_ms: Distribution
    session_wait_ms: Distribution
    cap_wait_ms: Distribution
    """Of the requests that waited for a `--max-concurrency` slot (count 0 without a cap)."""
    e2e_vs_recorded: Distribution
    """Served end-to-end latency over the recording's own (BurstGPT v3 `Elapsed time`), a ratio per
    successful request that has one (count 0 for traces without it)."""
    breakdowns: dict[str, dict[str, dict[str, Any]]]
    accounting: dict[str, Any]
    retries_429: dict[str, int]
    client_lag_p99_ms: float | None
    client_limited: bool
    client_limited_threshold_ms: float
    client_behind_windows: list[dict[str, float]]
    interrupted: str | None
    """The stop reason of a run that stopped early, None for one that ran to its end, or "unfinished"
    when the records file has no trailer (the run's process was killed)."""
    client_cpu_s: float | None
    server_metrics: dict[str, Any]
    scale_out: dict[str, Any]
    slo: dict[str, Any]


def summary_entry(summary: Summary, name: str) -> Any:
    """The summary's entry named `name` (a metric named at run time, e.g. "ttft_ms"), None if absent."""
    return cast("dict[str, Any]", summary).get(name)


def distribution(values: Sequence[float] | np.ndarray) -> Distribution:
    """count, mean, p50, p90, p95, p99, p999 and max of `values` (None for each when empty)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return Distribution(count=0, mean=None, p50=None, p90=None, p95=None, p99=None, p999=None, max=None)
    p50, p90, p95, p99, p999 = (float(v) for v in np.percentile(array, [q for _, q in PERCENTILES]))
    return Distribution(count=int(array.size), mean=float(array.mean()), p50=p50, p90=p90, p95=p95, p99=p99,
                        p999=p999, max=float(array.max()))


def _ms(ns: int) -> float:
    return ns / _NS_PER_MS


def latency_samples(records: Sequence[RequestRecord], streamed: bool = True) -> dict[str, list[float]]:
    """Per-metric lists of samples in milliseconds (TPOT and ITL only exist for streamed runs)."""
    samples: dict[str, list[float]] = {name: [] for name in DISTRIBUTIONS}
    itl_us: list[int] = []
    for r in records:
        if r.sent_ns is not None:
            samples["schedule_lag_ms"].append(_ms(r.sent_ns - r.intended_ns))
            if r.turn >= 2:
                samples["session_wait_ms"].append(_ms(r.session_wait_ns))
            if r.cap_wait_ns:
                samples["cap_wait_ms"].append(_ms(r.cap_wait_ns))
        latencies = request_latencies(r, streamed)
        if latencies is None:
            continue
        for name, value in latencies.items():
            if value is not None:
                samples[name].append(value)
        e2e_ms = latencies["e2e_ms"]
        if r.recorded_e2e_ms and e2e_ms is not None:
            samples["e2e_vs_recorded"].append(e2e_ms / r.recorded_e2e_ms)
        if streamed:
            itl_us.extend(r.itl_us)
    samples["itl_ms"] = (np.asarray(itl_us, dtype=np.float64) / 1000).tolist()
    return samples


def request_latencies(r: RequestRecord, streamed: bool = True) -> dict[str, float | None] | None:
    """One successful request's TTFT, TPOT (None with fewer than 2 tokens, or unstreamed), E2E and their
    user views, in ms; None for a request that failed or never answered. An answer without output
    tokens (embeddings) has only its end-to-end times."""
    if not r.ok or r.sent_ns is None or r.end_ns is None:
        return None
    if r.first_token_ns is None:
        return {"ttft_ms": None, "tpot_ms": None, "e2e_ms": _ms(r.end_ns - r.sent_ns), "user_ttft_ms": None,
                "user_e2e_ms": _ms(r.end_ns - r.intended_ns)}
    n_out = r.served_output_tokens or 0
    return {
        "ttft_ms": _ms(r.first_token_ns - r.sent_ns),
        "tpot_ms": _ms(r.end_ns - r.first_token_ns) / (n_out - 1) if streamed and n_out >= 2 else None,
        "e2e_ms": _ms(r.end_ns - r.sent_ns),
        "user_ttft_ms": _ms(r.first_token_ns - r.intended_ns),
        "user_e2e_ms": _ms(r.end_ns - r.intended_ns),
    }


def token_mismatch(records: Sequence[RequestRecord]) -> dict[str, dict[str, float | int]]:
    """How served token counts differ from the plan, over successful requests that report them."""
    result = {}
    for side, planned, served in (("input", "input_tokens", "served_input_tokens"),
                                  ("output", "output_tokens", "served_output_tokens")):
        diffs = np.array([getattr(r, served) - getattr(r, planned) for r in records
                          if r.ok and getattr(r, served) is not None], dtype=np.int64)
        off = diffs[diffs != 0]
        result[side] = {
            "checked": int(diffs.size),
            "mismatched": int(off.size),
            "fewer": int(np.count_nonzero(off < 0)),
            "more": int(np.count_nonzero(off > 0)),
            "mean_abs_error": float(np.abs(diffs).mean()) if diffs.size else 0.0,
            "max_abs_error": int(np.abs(diffs).max()) if diffs.size else 0,
        }
    return result


def measured(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    """The records that statistics and SLOs count: all but those of the warm-up."""
    return [r for r in records if not r.warmup]


def summarize(records: Sequence[RequestRecord], *, streamed: bool = True,
              client_limited_lag_ms: float = CLIENT_LIMITED_LAG_MS, warmup_s: float = 0.0) -> Summary:
    """The metrics of a run's records, but for the warm-up's (`replayer.analysis.runs.summarize_run`
    adds what the records file says of the run itself)."""
    everything, records = records, measured(records)
    sent = [r for r in records if r.sent_ns is not None]
    ok = [r for r in sent if r.ok]
    failures = Counter(r.status for r in sent if not r.ok)
    examples: dict[str, str] = {}
    for r in sent:
        if not r.ok and r.status not in examples:
            examples[r.status] = r.error or ""
    ends = [r.end_ns for r in sent if r.end_ns is not None]
    duration_s = max(0.0, max(ends) / 1e9 - warmup_s) if ends else 0.0
    send_times = [r.sent_ns for r in sent if r.sent_ns is not None]
    send_span_s = (max(send_times) - min(send_times)) / 1e9 if send_times else 0.0

    def per_second(amount: float) -> float | None:
        return amount / duration_s if duration_s > 0 else None

    output_tokens = sum(r.served_output_tokens or 0 for r in ok)
    input_tokens = sum(r.served_input_tokens if r.served_input_tokens is not None else r.input_tokens for r in ok)
    samples = latency_samples(sent, streamed)
    summary: Summary = {
        "requests_sent": len(sent),
        "completed": len(ok),
        "failed": len(sent) - len(ok),
        "failures": dict(sorted(failures.items())),
        "failure_examples": examples,
        "duration_s": duration_s,
        "sent_rate": (len(sent) - 1) / send_span_s if send_span_s > 0 else None,
        "request_throughput": per_second(len(ok)),
        "output_throughput": per_second(output_tokens),
        "input_throughput": per_second(input_tokens),
        "total_output_tokens": output_tokens,
        "total_input_tokens": input_tokens,
        "output_tokens_counted": sum(1 for r in ok if r.output_counted),
        "token_mismatch": token_mismatch(ok),
        "ttft_ms": distribution(samples["ttft_ms"]),
        "tpot_ms": distribution(samples["tpot_ms"]),
        "itl_ms": distribution(samples["itl_ms"]),
        "e2e_ms": distribution(samples["e2e_ms"]),
        "user_ttft_ms": distribution(samples["user_ttft_ms"]),
        "user_e2e_ms": distribution(samples["user_e2e_ms"]),
        "schedule_lag_ms": distribution(samples["schedule_lag_ms"]),
        "session_wait_ms": distribution(samples["session_wait_ms"]),
        "cap_wait_ms": distribution(samples["cap_wait_ms"]),
        "e2e_vs_recorded": distribution(samples["e2e_vs_recorded"]),
        "breakdowns": breakdowns(sent, streamed),
        "accounting": accounting(everything),
        "retries_429": {"requests": sum(1 for r in sent if r.retries), "retries": sum(r.retries for r in sent)},
    }
    client_lag = np.array([_ms(r.client_lag_ns) for r in sent])
    intended_s = np.array([r.intended_ns / 1e9 for r in sent])
    behind = lagging_windows(intended_s, client_lag, client_limited_lag_ms)
    summary["client_lag_p99_ms"] = float(np.percentile(client_lag, 99)) if client_lag.size else None
    summary["client_limited"] = bool(behind)
    summary["client_limited_threshold_ms"] = client_limited_lag_ms
    summary["client_behind_windows"] = behind
    if warmup_s > 0:
        summary["warmup"] = {"seconds": warmup_s, "requests": len(everything) - len(records)}
    return summary


def lagging_windows(intended_s: np.ndarray, lag_ms: np.ndarray, limit_ms: float,
                    window_s: float = LAG_WINDOW_S) -> list[dict]:
    """The windows of intended send time (`window_s` long, from 0) whose lag p99 exceeds `limit_ms`,
    with at least `MIN_LATE_SENDS` sends over it."""
    if not lag_ms.size:
        return []
    index = np.floor(intended_s / window_s).astype(np.int64)
    order = np.argsort(index, kind="stable")
    windows, starts = np.unique(index[order], return_index=True)
    behind = []
    for window, lags in zip(windows, np.split(lag_ms[order], starts[1:])):
        p99 = float(np.percentile(lags, 99))
        late = int(np.count_nonzero(lags > limit_ms))
        if p99 > limit_ms and late >= MIN_LATE_SENDS:
            behind.append({"start_s": float(window * window_s), "end_s": float((window + 1) * window_s),
                           "requests": int(lags.size), "late": late, "lag_p99_ms": p99})
    return behind


INPUT_BUCKETS = (0, 256, 1024, 4096, 16384)
"""Lower bounds of the input-length groups of the breakdown (prompt tokens as planned)."""


def breakdowns(records: Sequence[RequestRecord], streamed: bool = True) -> dict[str, dict[str, dict]]:
    """Per group of requests, their counts and key latency percentiles: single-turn vs session turns,
    input-length buckets, and each kind of label the records carry (`LABEL_KINDS`: the trace's model,
    log type and request type); only groups that have requests."""
    sent = [r for r in records if r.sent_ns is not None]
    groups: dict[str, dict[str, list[RequestRecord]]] = {"turns": {}, "input_tokens": {}}
    kinds = sorted({kind for r in sent if r.labels for kind in r.labels}, key=LABEL_KINDS.index)
    for kind in kinds:
        groups[kind] = {}
    for r in sent:
        groups["turns"].setdefault("session turn" if r.turn else "single-turn", []).append(r)
        groups["input_tokens"].setdefault(_bucket(r.input_tokens), []).append(r)
        for kind in kinds:
            groups[kind].setdefault((r.labels or {}).get(kind) or "(none)", []).append(r)
    order = [_bucket(bound) for bound in INPUT_BUCKETS]
    groups["input_tokens"] = {name: groups["input_tokens"][name] for name in order if name in groups["input_tokens"]}
    return {kind: {name: _group_stats(members, streamed) for name, members in by_name.items()}
            for kind, by_name in groups.items()}


def _bucket(tokens: int) -> str:
    lower = max(bound for bound in INPUT_BUCKETS if bound <= tokens)
    upper = next((bound for bound in INPUT_BUCKETS if bound > tokens), None)
    return f"{lower}-{upper - 1}" if upper is not None else f">={lower}"


def _group_stats(members: list[RequestRecord], streamed: bool) -> dict:
    samples = latency_samples(members, streamed)
    ok = sum(1 for r in members if r.ok)
    stats: dict = {"requests": len(members), "completed": ok, "failed": len(members) - ok}
    for name in ("ttft_ms", "tpot_ms", "e2e_ms", "e2e_vs_recorded"):
        values = samples[name]
        if name == "e2e_vs_recorded" and not values:
            continue  # (a trace without recorded durations)
        stats[name] = ({"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}
                       if values else {"p50": None, "p99": None})
    return stats


def accounting(records: Sequence[RequestRecord]) -> dict:
    """The invariant every run must keep: each sent request has exactly one record, ok or one failure
    kind (sent == ok + sum of failures), and no id is counted twice."""
    sent = [r for r in records if r.sent_ns is not None]
    ok = sum(1 for r in sent if r.ok)
    failures = Counter(r.status for r in sent if not r.ok)
    unique = len({r.id for r in records}) == len(records)
    return {"records": len(records), "sent": len(sent), "ok": ok, "failed": sum(failures.values()),
            "unique_ids": unique, "balanced": unique and len(sent) == ok + sum(failures.values())}
