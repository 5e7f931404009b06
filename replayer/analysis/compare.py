"""`replayer compare BASE NEW`: is the new run worse than the base, beyond what we tolerate and
beyond noise?

Each metric's change comes with a 95 % bootstrap interval from the per-request records of both
sides (and across trials where a side has several: `replayer.analysis.noise`), and is called a
regression only when the whole interval lies beyond the limit; otherwise it is "within noise".

Each metric is compared in its own direction: latencies and the error rate regress when they rise,
throughputs, goodput and attainment when they fall. A regression limit is relative (`ttft_p99=10%`:
10 % above the base), except for the error rate and attainment, which are fractions already and
take an absolute limit in percentage points (`error_rate=1%`: one point more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from replayer.analysis.noise import RESAMPLES, Sample, Statistic, bootstrap_change
from replayer.analysis.runs import run_settings, summarize_run
from replayer.analysis.slo import (
    FRACTIONS,
    RATES,
    higher_is_better,
    is_known_metric,
    latency_statistic,
    meets,
    parse_slos,
)
from replayer.analysis.summary import PERCENTILES, latency_samples, measured
from replayer.errors import ConfigError
from replayer.records import RecordFile

SHOWN = ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p99", "e2e_p50", "e2e_p99", "request_throughput",
         "output_throughput", "error_rate", "goodput", "attainment")
"""The metrics a comparison shows (those a run has)."""
DEFAULT_LIMITS = {"ttft_p50": 0.10, "ttft_p99": 0.10, "tpot_p50": 0.10, "tpot_p99": 0.10, "e2e_p99": 0.10,
                  "request_throughput": 0.10, "output_throughput": 0.10, "error_rate": 0.01}
"""The limits a comparison applies; each --max-regression replaces the one of its metric or adds one."""


@dataclass(frozen=True)
class Delta:
    """One metric of two runs: the change (relative, or in points for fractions), its 95 % interval,
    and the verdict: `regression` or `improvement` only when the whole interval lies beyond the limit,
    else `within noise`; a metric without a limit is `worse` or `better` when the interval excludes
    no change, and never a regression."""

    metric: str
    base: float | None
    new: float | None
    change: float | None
    low: float | None
    high: float | None
    limit: float | None
    verdict: str

    @property
    def regressed(self) -> bool:
        return self.verdict == "regression"


def parse_limit(text: str) -> tuple[str, float]:
    """`ttft_p99=10%` → ("ttft_p99", 0.10); `error_rate=0.5%` → ("error_rate", 0.005)."""
    metric, sep, value = text.partition("=")
    metric = metric.strip().lower()
    value = value.strip()
    if not sep or not is_known_metric(metric):
        raise ConfigError(f"--max-regression {text!r}: expected METRIC=PERCENT with a metric like ttft_p99, "
                          "output_throughput or error_rate")
    try:
        limit = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ConfigError(f"--max-regression {text!r}: {value!r} is not a percentage like 10%") from None
    if limit < 0:
        raise ConfigError(f"--max-regression {text!r}: the limit must be >= 0")
    return metric, limit


def compare_runs(base: Sequence[RecordFile], new: Sequence[RecordFile], limits: dict[str, float] | None = None,
                 resamples: int = RESAMPLES, rates_comparable: bool = True) -> list[Delta]:
    """Every shown metric (plus any with a limit) that either side has, from the per-request records
    of each side's runs (several: the trials of one point), with the bootstrap interval of its change.
    `limits` override the default ones metric by metric. Where the two sides replayed different
    workloads (`rates_comparable` False), throughputs and goodput differ by construction: they are
    shown, with the verdict `not comparable`, and never regress."""
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    base_runs, new_runs = [_RunValues.of(f) for f in base], [_RunValues.of(f) for f in new]
    deltas = []
    for metric in dict.fromkeys((*SHOWN, *limits)):
        if not is_known_metric(metric):
            continue
        statistic = metric_statistic(metric)
        before_samples = [run.sample(metric) for run in base_runs]
        after_samples = [run.sample(metric) for run in new_runs]
        before, after = _pooled(before_samples, statistic), _pooled(after_samples, statistic)
        if before is None and after is None:
            continue
        change = _change(metric, before, after)
        interval = None if change is None else bootstrap_change(before_samples, after_samples, statistic,
                                                                metric not in FRACTIONS, resamples)
        low, high = interval or (None, None)
        limit = limits.get(metric)
        verdict = "not comparable" if metric in RATES and not rates_comparable else _verdict(metric, change, interval,
                                                                                               limit)
        deltas.append(Delta(metric, before, after, change, low, high, limit, verdict))
    return deltas


def _verdict(metric: str, change: float | None, interval: tuple[float, float] | None, limit: float | None) -> str:
    if change is None:
        return "n/a"
    low, high = interval if interval is not None else (change, change)
    sign = -1.0 if higher_is_better(metric) else 1.0
    worse_low, worse_high = sorted((sign * low, sign * high))
    bound = limit if limit is not None else 0.0
    if worse_low > bound:
        return "regression" if limit is not None else "worse"
    if worse_high < -bound:
        return "improvement" if limit is not None else "better"
    return "within noise"


def metric_statistic(metric: str) -> Statistic:
    """How a metric is computed from pooled per-request values (see `_RunValues.sample`) and duration."""
    latency = latency_statistic(metric)
    if latency is not None:
        statistic = latency[1]
        if statistic in ("mean", "max"):
            return lambda values, _: float(getattr(np, statistic)(values)) if values.size else None
        quantile = dict(PERCENTILES)[statistic]
        return lambda values, _: float(np.percentile(values, quantile)) if values.size else None
    if metric in FRACTIONS:
        return lambda values, _: float(values.mean()) if values.size else None
    return lambda values, duration_s: float(values.sum()) / duration_s if duration_s > 0 else None


@dataclass(frozen=True)
class _RunValues:
    """One run's per-request values, from which every compared metric is computed."""

    latencies: dict[str, list[float]]
    per_sent: dict[str, np.ndarray]
    """Per sent request: 1 if it failed, 1 if it met the per-request SLOs, its served tokens if it succeeded."""
    duration_s: float

    @staticmethod
    def of(record_file: RecordFile) -> _RunValues:
        summary = summarize_run(record_file)
        streamed = run_settings(record_file)["streamed"]
        sent = [r for r in measured(record_file.records) if r.sent_ns is not None]
        per_request = parse_slos((summary.get("slo") or {}).get("per_request") or ())
        per_sent = {
            "error_rate": np.array([not r.ok for r in sent], dtype=float),
            "request_throughput": np.array([r.ok for r in sent], dtype=float),
            "output_throughput": np.array([(r.served_output_tokens or 0) if r.ok else 0 for r in sent], dtype=float),
            "input_throughput": np.array([(r.served_input_tokens if r.served_input_tokens is not None
                                           else r.input_tokens) if r.ok else 0 for r in sent], dtype=float),
        }
        if per_request:
            good = np.array([meets(r, per_request, streamed) for r in sent], dtype=float)
            per_sent["attainment"] = per_sent["goodput"] = good
        return _RunValues(latency_samples(sent, streamed), per_sent, summary["duration_s"])

    def sample(self, metric: str) -> Sample:
        latency = latency_statistic(metric)
        if latency is not None:
            values = np.asarray(self.latencies.get(latency[0], ()), dtype=float)
        else:
            values = self.per_sent.get(metric, np.empty(0))
        return Sample(values, self.duration_s)


def _pooled(samples: Sequence[Sample], statistic: Statistic) -> float | None:
    values = [sample.values for sample in samples if sample.values.size]
    return statistic(np.concatenate(values) if values else np.empty(0), sum(s.duration_s for s in samples))


def _change(metric: str, before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    if metric in FRACTIONS:
        return after - before
    return (after - before) / before if before else None
