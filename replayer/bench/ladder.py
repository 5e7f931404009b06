"""`replayer bench`: how much the client adds to what it measures, and up to what load it keeps up.

Each step of a ladder (request rate × stream length) replays Poisson arrivals through the real
`replayer run` pipeline against the built-in simulator, started as its own process and pinned to
another core than the client. The simulator writes a truth log: when it received each request and
when it wrote each token chunk, on the same monotonic clock the client reads. So per step we know
the achieved rate, the schedule lag, the measurement inflation (client TTFT and ITL minus the
simulator's truth) and the client's CPU cost.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from replayer.bench.baseline import RawRun, replay_raw
from replayer.bench.harness import (
    INPUT_TOKENS,
    bench_config,
    or_nan,
    pinned,
    simulator_process,
    split_cores,
    summary_of,
)
from replayer.bench.truth import measurement_errors, read_truth, ttft_inflation
from replayer.prompts.bodies import api_path
from replayer.records import read_records
from replayer.run.config import RunConfig
from replayer.run.pipeline import execute, load_workload
from replayer.run.replay import plan_for
from replayer.run.target import dry_run_target
from replayer.send.eventloop import run as run_loop
from replayer.send.eventloop import settle_heap

INFLATION_LIMIT_MS = 1.0
"""TTFT inflation p99 under which the verdict counts a step as measured faithfully."""
LAG_LIMIT_MS = 5.0
"""Schedule-lag p99 under which a step counts as kept up with."""
RAW_RATIO_LIMIT = 1.5
"""TTFT inflation p99 up to this multiple of the raw client's counts as measuring as well as it."""


@dataclass(frozen=True)
class Ladder:
    """The steps of a bench: request rates, stream lengths, and seconds of arrivals per step."""

    rates: tuple[float, ...]
    tokens: tuple[int, ...]
    duration_s: float


QUICK = Ladder(rates=(50.0, 100.0, 200.0, 400.0), tokens=(128,), duration_s=6.0)
FULL = Ladder(rates=(50.0, 100.0, 200.0, 400.0, 600.0, 800.0), tokens=(128,), duration_s=20.0)


@dataclass(frozen=True)
class StepResult:
    """What one ladder step measured. Times in milliseconds; CPU in seconds."""

    rate: float
    tokens: int
    planned: int
    completed: int
    intended_rate: float
    """Of this step's sampled Poisson arrivals (close to `rate`)."""
    achieved_rate: float
    lag_ms: tuple[float, ...]
    """Schedule lag p50, p99, max."""
    ttft_inflation_ms: tuple[float, ...]
    """Client TTFT minus the simulator's (first chunk written - request received): p50, p99."""
    itl_error_ms: tuple[float, ...]
    """|client ITL - gap between the simulator's chunk writes|: p50, p99."""
    cpu_per_1k_requests_s: float
    cpu_per_100k_tokens_s: float
    raw_ttft_inflation_ms: tuple[float, ...] = (float("nan"), float("nan"))
    """The same as `ttft_inflation_ms` for the minimal raw client (`replayer.bench.baseline`) on the same
    arrivals and bodies, against a fresh simulator: the floor this machine and simulator set."""
    raw_lag_p99_ms: float = float("nan")
    raw_cpu_per_1k_requests_s: float = float("nan")

    @property
    def ratio_to_raw(self) -> float:
        """TTFT inflation p99 of the client over the raw client's."""
        return self.ttft_inflation_ms[1] / self.raw_ttft_inflation_ms[1]

    @property
    def as_good_as_raw(self) -> bool:
        return (
            self.completed == self.planned
            and self.lag_ms[1] <= LAG_LIMIT_MS
            and self.ttft_inflation_ms[1] <= max(INFLATION_LIMIT_MS, RAW_RATIO_LIMIT * self.raw_ttft_inflation_ms[1])
        )

    @property
    def faithful(self) -> bool:
        return (
            self.completed == self.planned
            and self.ttft_inflation_ms[1] < INFLATION_LIMIT_MS
            and self.lag_ms[1] <= LAG_LIMIT_MS
        )


def _percentiles(values: np.ndarray, *qs: float) -> tuple[float, ...]:
    return tuple(float(v) for v in np.percentile(values, qs)) if values.size else tuple(float("nan") for _ in qs)


def run_step(
    rate: float, tokens: int, duration_s: float, directory: Path, pin: bool = True, workers: int = 1
) -> StepResult:
    """Replay `duration_s` of Poisson arrivals at `rate` with `tokens`-token streams, with the real
    client (as `workers` processes) and then with the raw client; measure both against the simulator's truth."""
    client_cores, simulator_cores = split_cores(workers) if pin else (None, None)
    truth_log = directory / "truth.jsonl"
    spec = (f"arrivals=poisson,rate={rate:g},duration={duration_s:g},input=fixed:{INPUT_TOKENS},"
            f"output=fixed:{tokens},seed=1")
    with simulator_process(truth_log, simulator_cores) as base_url, pinned(client_cores):
        result = execute(bench_config(spec, directory, base_url, workers))
    records = read_records(directory / "run" / "records.jsonl").records
    sent = np.array([r.sent_ns for r in records if r.sent_ns is not None], dtype=np.int64)
    intended = np.array([r.intended_ns for r in records], dtype=np.int64)
    ttft, itl = measurement_errors(records, read_truth(truth_log))
    summary = summary_of(result)
    cpu_s = summary["client_cpu_s"] or 0.0
    streamed = summary["total_output_tokens"] or 1
    raw = _run_raw(
        bench_config(spec, directory), directory / "truth-raw.jsonl", *(split_cores() if pin else (None, None))
    )
    raw_truth = read_truth(directory / "truth-raw.jsonl")
    raw_ttft = ttft_inflation({t.id: t.first_ns - t.sent_ns for t in raw.timings if t.first_ns}, raw_truth)
    raw_lag_ms = np.array([t.sent_ns - t.intended_ns for t in raw.timings]) / 1e6
    return StepResult(
        rate=rate,
        tokens=tokens,
        planned=len(records),
        completed=summary["completed"],
        intended_rate=_rate_of(intended),
        achieved_rate=_rate_of(sent),
        lag_ms=tuple(or_nan(summary["schedule_lag_ms"][name]) for name in ("p50", "p99", "max")),
        ttft_inflation_ms=_percentiles(ttft, 50, 99),
        itl_error_ms=_percentiles(itl, 50, 99),
        cpu_per_1k_requests_s=cpu_s / max(len(records), 1) * 1000,
        cpu_per_100k_tokens_s=cpu_s / streamed * 1e5,
        raw_ttft_inflation_ms=_percentiles(raw_ttft, 50, 99),
        raw_lag_p99_ms=_percentiles(raw_lag_ms, 99)[0],
        raw_cpu_per_1k_requests_s=raw.cpu_s / max(len(raw.timings), 1) * 1000,
    )


def _run_raw(
    config: RunConfig, truth_log: Path, client_cores: set[int] | None, simulator_cores: set[int] | None
) -> RawRun:
    """The same requests (same bodies, same instants) through the minimal raw client."""
    workload = load_workload(config.workload, config.shaping, Console(quiet=True), quiet=True)
    target = dry_run_target(config.target, config.prompts)
    options = target.options
    requests = list(plan_for(config.prompts, workload, target))
    settle_heap()
    with simulator_process(truth_log, simulator_cores) as base_url, pinned(client_cores):
        return run_loop(replay_raw(base_url, api_path(options.api, options.stream), requests))


def _rate_of(instants_ns: np.ndarray) -> float:
    """Events per second between the first and the last instant."""
    if instants_ns.size < 2 or instants_ns.max() == instants_ns.min():
        return float("nan")
    return (instants_ns.size - 1) / ((instants_ns.max() - instants_ns.min()) / 1e9)


def run_ladder(
    rates: tuple[float, ...],
    tokens: tuple[int, ...],
    duration_s: float,
    directory: Path | None = None,
    pin: bool = True,
    on_step: Callable[[StepResult], None] | None = None,
    workers: int = 1,
) -> list[StepResult]:
    """Every (tokens, rate) step in order; `on_step` is called with each result as it comes."""
    results = []
    with tempfile.TemporaryDirectory(prefix="replayer-bench-") as scratch:
        root = directory or Path(scratch)
        for n_tokens in tokens:
            for rate in rates:
                step_dir = root / f"rate{rate:g}-tokens{n_tokens}"
                step_dir.mkdir(parents=True, exist_ok=True)
                result = run_step(rate, n_tokens, duration_s, step_dir, pin, workers)
                results.append(result)
                if on_step:
                    on_step(result)
    return results


def verdict(results: list[StepResult]) -> str:
    """The one-line answer to "is my client the bottleneck?"."""
    faithful = [r for r in results if r.faithful]
    if not faithful:
        lowest = min(results, key=lambda r: (r.rate, r.tokens))
        return (
            f"even at {lowest.rate:g} req/s x {lowest.tokens} tokens the client inflated TTFT p99 by "
            f"{lowest.ttft_inflation_ms[1]:.2f} ms (limit {INFLATION_LIMIT_MS:g} ms; the raw client "
            f"{lowest.raw_ttft_inflation_ms[1]:.2f} ms) or fell behind"
        )
    best = max(faithful, key=lambda r: (r.rate * r.tokens, r.rate))
    return (
        f"this machine can drive {best.rate:g} req/s x {best.tokens} tokens with < {INFLATION_LIMIT_MS:g} ms "
        f"inflation (TTFT p99 +{best.ttft_inflation_ms[1]:.2f} ms, schedule lag p99 {best.lag_ms[1]:.2f} ms)"
    )


def versus_raw(results: list[StepResult]) -> str:
    """How the client's TTFT inflation p99 compares with the raw client's, step by step, and up to what
    load the client is as good as the raw one (kept its schedule, completed all, within RAW_RATIO_LIMIT)."""
    ratios = ", ".join(f"{r.ratio_to_raw:.2f}x at {r.rate:g}x{r.tokens}" for r in results)
    level = [r for r in results if r.as_good_as_raw]
    best = max(level, key=lambda r: (r.rate * r.tokens, r.rate), default=None)
    summary = (
        f"; the client keeps up with the raw client's measurement up to {best.rate:g} req/s x {best.tokens} "
        f"tokens (TTFT inflation p99 within {RAW_RATIO_LIMIT:g}x, schedule lag p99 <= {LAG_LIMIT_MS:g} ms)"
        if best
        else ""
    )
    return f"TTFT inflation p99 against the minimal raw client on the same requests: {ratios}{summary}"


