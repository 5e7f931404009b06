"""`replayer bench`: how much the client adds to what it measures, and up to what load it keeps up.

Each step of a ladder (request rate × stream length) replays Poisson arrivals through the real
`replayer run` pipeline against the bench's stream server (`replayer.bench.server`), started as its
own process and pinned to another core than the client, then the same requests through a minimal
raw-socket client (`replayer.bench.baseline`) against a fresh server. The server writes a truth log:
when it received each request and when it wrote each token chunk, on the same monotonic clock the
client reads. So per step we know the achieved rate, the schedule lag, the measurement inflation
(client TTFT and ITL minus the server's truth) and the CPU cost, of both clients side by side.

The ladder runs once per emission mode: writes in engine steps (`step`) and writes spread on
per-stream timers (`spread`), since a client's cost and accuracy differ between the two.
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
    split_cores,
    stream_server_process,
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
"""TTFT inflation p99 up to this multiple of the raw client's counts as measuring as well as it..."""
RAW_INFLATION_FLOOR_MS = 2.0
"""...or up to this, whatever the raw client's."""
CPU_RATIO_LIMIT = 1.25
"""Client CPU per request up to this multiple of the raw client's counts as as cheap as it."""
CPU_TARGET_RATES = (200.0, 400.0)
CPU_TARGET_TOKENS = 128
"""The steps (request rates x stream length) at which the CPU target is judged."""


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
    emission: str
    """How the server timed its writes (`replayer.bench.server.EMISSIONS`)."""
    planned: int
    completed: int
    intended_rate: float
    """Of this step's sampled Poisson arrivals (close to `rate`)."""
    achieved_rate: float
    lag_ms: tuple[float, ...]
    """Schedule lag p50, p99, max."""
    ttft_inflation_ms: tuple[float, ...]
    """Client TTFT minus the server's (first chunk written - request received): p50, p99."""
    itl_error_ms: tuple[float, ...]
    """|client ITL - gap between the server's chunk writes|: p50, p99."""
    cpu_per_1k_requests_s: float
    cpu_per_100k_tokens_s: float
    raw_ttft_inflation_ms: tuple[float, ...] = (float("nan"), float("nan"))
    """The same as `ttft_inflation_ms` for the minimal raw client (`replayer.bench.baseline`) on the same
    arrivals and bodies, against a fresh server: the floor this machine and server set."""
    raw_lag_p99_ms: float = float("nan")
    raw_cpu_per_1k_requests_s: float = float("nan")

    @property
    def ratio_to_raw(self) -> float:
        """TTFT inflation p99 of the client over the raw client's."""
        return self.ttft_inflation_ms[1] / self.raw_ttft_inflation_ms[1]

    @property
    def cpu_ratio_to_raw(self) -> float:
        """CPU per request of the client over the raw client's."""
        return self.cpu_per_1k_requests_s / self.raw_cpu_per_1k_requests_s

    @property
    def raw_kept_up(self) -> bool:
        """The raw client kept its schedule: a step where measuring accurately is possible at all."""
        return self.raw_lag_p99_ms <= LAG_LIMIT_MS

    @property
    def as_good_as_raw(self) -> bool:
        """Measured as accurately as the raw client: every request completed, lag p99 within
        LAG_LIMIT_MS, TTFT inflation p99 within max(RAW_INFLATION_FLOOR_MS, RAW_RATIO_LIMIT x raw)."""
        return (
            self.completed == self.planned
            and self.lag_ms[1] <= LAG_LIMIT_MS
            and self.ttft_inflation_ms[1]
            <= max(RAW_INFLATION_FLOOR_MS, RAW_RATIO_LIMIT * self.raw_ttft_inflation_ms[1])
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
    rate: float, tokens: int, duration_s: float, directory: Path, pin: bool = True, workers: int = 1,
    emission: str = "step",
) -> StepResult:
    """Replay `duration_s` of Poisson arrivals at `rate` with `tokens`-token streams, with the real
    client (as `workers` processes) and then with the raw client; measure both against the server's truth."""
    client_cores, server_cores = split_cores(workers) if pin else (None, None)
    truth_log = directory / "truth.jsonl"
    spec = (f"arrivals=poisson,rate={rate:g},duration={duration_s:g},input=fixed:{INPUT_TOKENS},"
            f"output=fixed:{tokens},seed=1")
    with stream_server_process(truth_log, server_cores, emission) as base_url, pinned(client_cores):
        result = execute(bench_config(spec, directory, base_url, workers))
    records = read_records(directory / "run" / "records.jsonl").records
    sent = np.array([r.sent_ns for r in records if r.sent_ns is not None], dtype=np.int64)
    intended = np.array([r.intended_ns for r in records], dtype=np.int64)
    ttft, itl = measurement_errors(records, read_truth(truth_log))
    summary = summary_of(result)
    cpu_s = summary["client_cpu_s"] or 0.0
    streamed = summary["total_output_tokens"] or 1
    raw = _run_raw(bench_config(spec, directory), directory / "truth-raw.jsonl", emission,
                   *(split_cores() if pin else (None, None)))
    raw_truth = read_truth(directory / "truth-raw.jsonl")
    raw_ttft = ttft_inflation({t.id: t.first_ns - t.sent_ns for t in raw.timings if t.first_ns}, raw_truth)
    raw_lag_ms = np.array([t.sent_ns - t.intended_ns for t in raw.timings]) / 1e6
    return StepResult(
        rate=rate,
        tokens=tokens,
        emission=emission,
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
    config: RunConfig, truth_log: Path, emission: str, client_cores: set[int] | None, server_cores: set[int] | None
) -> RawRun:
    """The same requests (same bodies, same instants) through the minimal raw client."""
    workload = load_workload(config.workload, config.shaping, Console(quiet=True), quiet=True)
    target = dry_run_target(config.target, config.prompts)
    options = target.options
    requests = list(plan_for(config.prompts, workload, target))
    settle_heap()
    with stream_server_process(truth_log, server_cores, emission) as base_url, pinned(client_cores):
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
    emission: str = "step",
) -> list[StepResult]:
    """Every (tokens, rate) step in order against a server timing its writes by `emission`; `on_step`
    is called with each result as it comes."""
    results = []
    with tempfile.TemporaryDirectory(prefix="replayer-bench-") as scratch:
        root = directory or Path(scratch)
        for n_tokens in tokens:
            for rate in rates:
                step_dir = root / f"{emission}-rate{rate:g}-tokens{n_tokens}"
                step_dir.mkdir(parents=True, exist_ok=True)
                result = run_step(rate, n_tokens, duration_s, step_dir, pin, workers, emission)
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
    """How the client's TTFT inflation p99 and CPU compare with the raw client's, step by step, and up
    to what load the client is as good as the raw one (`StepResult.as_good_as_raw`)."""
    ratios = ", ".join(f"{r.ratio_to_raw:.2f}x at {r.rate:g}x{r.tokens}" for r in results)
    cpu = ", ".join(f"{r.cpu_ratio_to_raw:.2f}x at {r.rate:g}x{r.tokens}" for r in results)
    level = [r for r in results if r.as_good_as_raw]
    best = max(level, key=lambda r: (r.rate * r.tokens, r.rate), default=None)
    summary = (
        f"; the client keeps up with the raw client's measurement up to {best.rate:g} req/s x {best.tokens} "
        f"tokens (TTFT inflation p99 within max({RAW_INFLATION_FLOOR_MS:g} ms, {RAW_RATIO_LIMIT:g}x), "
        f"schedule lag p99 <= {LAG_LIMIT_MS:g} ms)"
        if best
        else ""
    )
    return (f"against the minimal raw client on the same requests: TTFT inflation p99 {ratios}; "
            f"CPU per request {cpu}{summary}")


def targets(results: list[StepResult]) -> list[tuple[str, bool]]:
    """The client's targets against the raw client in the same run, each with whether it was met:
    CPU per request within CPU_RATIO_LIMIT at CPU_TARGET_RATES x CPU_TARGET_TOKENS, and as accurate as the raw client
    (`StepResult.as_good_as_raw`) at every step where the raw client kept its schedule."""
    judged = [r for r in results if r.rate in CPU_TARGET_RATES and r.tokens == CPU_TARGET_TOKENS]
    cpu = ", ".join(f"{r.cpu_ratio_to_raw:.2f}x at {r.rate:g}x{r.tokens}" for r in judged)
    cpu_met = bool(judged) and all(r.cpu_ratio_to_raw <= CPU_RATIO_LIMIT for r in judged)
    accurate = [r for r in results if r.raw_kept_up]
    missed = [f"{r.rate:g}x{r.tokens}" for r in accurate if not r.as_good_as_raw]
    where = ", ".join(f"{r.rate:g}" for r in accurate) or "no step"
    return [
        (f"CPU per request <= {CPU_RATIO_LIMIT:g}x the raw client's at "
         f"{'/'.join(f'{rate:g}' for rate in CPU_TARGET_RATES)} req/s x {CPU_TARGET_TOKENS} tokens: "
         f"{cpu or 'no such step'}", cpu_met),
        (f"as accurate as the raw client wherever it kept its schedule ({where} req/s): TTFT inflation p99 <= "
         f"max({RAW_INFLATION_FLOOR_MS:g} ms, {RAW_RATIO_LIMIT:g}x raw) and lag p99 <= {LAG_LIMIT_MS:g} ms"
         + (f", missed at {', '.join(missed)}" if missed else ""), bool(accurate) and not missed),
    ]
