"""`replayer bench`: how much the client adds to what it measures, and up to what load it keeps up.

Each step of a ladder (request rate × stream length) replays Poisson arrivals through the real
`replayer run` pipeline against the built-in simulator, started as its own process and pinned to
another core than the client. The simulator writes a truth log: when it received each request and
when it wrote each token chunk, on the same monotonic clock the client reads. So per step we know
the achieved rate, the schedule lag, the measurement inflation (client TTFT and ITL minus the
simulator's truth) and the client's CPU cost.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from replayer.analysis.summary import Summary
from replayer.bench.baseline import RawRun, replay_raw
from replayer.errors import ConfigError
from replayer.prompts.bodies import api_path
from replayer.records import read_records
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, TargetConfig, WorkloadSource
from replayer.run.pipeline import RunResult, execute, load_workload
from replayer.run.replay import plan_for
from replayer.run.target import dry_run_target
from replayer.send.addressing import row_of_request_id
from replayer.send.eventloop import run as run_loop
from replayer.send.eventloop import settle_heap
from replayer.traces.stats import max_overlap

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
_INPUT_TOKENS = 32
_SIMULATOR_OPTIONS = ("--decode-ms-per-seq", "0", "--prefill-tokens-per-ms", "1000", "--max-running", "1000000",
                      "--max-prefill-tokens", "100000000",
                      "--kv-tokens", "1000000000", "--max-model-len", "100000")
"""An engine that never queues: a fixed token rate per stream whatever the load, so only the client varies."""


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def split_cores(client_processes: int = 1) -> tuple[set[int] | None, set[int] | None]:
    """(client cores, simulator cores): a core per client process and the rest for the simulator, when the
    machine has that many; else no pinning at all."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) <= client_processes:
        return None, None
    return set(cores[:client_processes]), set(cores[client_processes:])


@contextmanager
def simulator_process(truth_log: Path | None, cores: set[int] | None, ms_per_token: float = 10.0) -> Iterator[str]:
    """The simulator in its own process (pinned to `cores`), writing `truth_log` if given, making one token
    per stream every `ms_per_token` whatever the load; yields its base URL."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "replayer",
        "simulate",
        "--port",
        str(port),
        *_SIMULATOR_OPTIONS,
        "--decode-base-ms",
        f"{ms_per_token:g}",
    ]
    if truth_log is not None:
        command += ["--truth-log", str(truth_log)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if cores:
            os.sched_setaffinity(process.pid, cores)
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_serving(base_url, process)
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)  # a graceful stop closes the truth log
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(base_url: str, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = (process.stderr.read() if process.stderr else b"").decode(errors="replace").strip().splitlines()
            raise ConfigError(f"bench: the simulator exited at start ({message[-1] if message else 'no message'})")
        try:
            with urllib.request.urlopen(base_url + "/v1/models", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise ConfigError(f"bench: the simulator did not answer on {base_url} within {timeout_s:g} s")


def read_truth(path: Path) -> dict[int, tuple[int, np.ndarray]]:
    """Request id → (received_ns, chunk write times) from a simulator truth log."""
    truth = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("id") is not None:
            truth[row_of_request_id(entry["id"])] = (
                entry["received_ns"],
                np.asarray(entry["chunk_ns"], dtype=np.int64),
            )
    return truth


def compare(records: list, truth: dict[int, tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT inflation per request, |ITL error| per chunk gap), in ms, over requests both sides saw whole."""
    whole = [r for r in records if r.ok and r.first_token_ns is not None]
    ttft = ttft_inflation({r.id: r.first_token_ns - r.sent_ns for r in whole}, truth)
    itl = []
    for record in whole:
        seen = truth.get(record.id)
        if seen is not None and len(record.itl_ms) == len(seen[1]) - 1:
            itl.append(np.abs(np.asarray(record.itl_ms) - np.diff(seen[1]) / 1e6))
    return ttft, (np.concatenate(itl) if itl else np.zeros(0))


def ttft_inflation(client_ttft_ns: dict[int, int], truth: dict[int, tuple[int, np.ndarray]]) -> np.ndarray:
    """Client TTFT minus the simulator's (first chunk written - request received), in ms, per request."""
    inflation = []
    for request_id, ttft_ns in client_ttft_ns.items():
        seen = truth.get(request_id)
        if seen is not None and len(seen[1]):
            inflation.append((ttft_ns - (seen[1][0] - seen[0])) / 1e6)
    return np.asarray(inflation)


def _percentiles(values: np.ndarray, *qs: float) -> tuple[float, ...]:
    return tuple(float(v) for v in np.percentile(values, qs)) if values.size else tuple(float("nan") for _ in qs)


@contextmanager
def _pinned(cores: set[int] | None) -> Iterator[None]:
    """Run the block with this process pinned to `cores` (no pinning for None)."""
    before = os.sched_getaffinity(0) if cores else None
    if cores:
        os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        if before:
            os.sched_setaffinity(0, before)


def run_step(
    rate: float, tokens: int, duration_s: float, directory: Path, pin: bool = True, workers: int = 1
) -> StepResult:
    """Replay `duration_s` of Poisson arrivals at `rate` with `tokens`-token streams, with the real
    client (as `workers` processes) and then with the raw client; measure both against the simulator's truth."""
    client_cores, simulator_cores = split_cores(workers) if pin else (None, None)
    truth_log = directory / "truth.jsonl"
    spec = (f"arrivals=poisson,rate={rate:g},duration={duration_s:g},input=fixed:{_INPUT_TOKENS},"
            f"output=fixed:{tokens},seed=1")
    with simulator_process(truth_log, simulator_cores) as base_url, _pinned(client_cores):
        result = execute(bench_config(spec, directory, base_url, workers))
    records = read_records(directory / "run" / "records.jsonl").records
    sent = np.array([r.sent_ns for r in records if r.sent_ns is not None], dtype=np.int64)
    intended = np.array([r.intended_ns for r in records], dtype=np.int64)
    ttft, itl = compare(records, read_truth(truth_log))
    summary = _summary_of(result)
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
        lag_ms=tuple(_or_nan(summary["schedule_lag_ms"][name]) for name in ("p50", "p99", "max")),
        ttft_inflation_ms=_percentiles(ttft, 50, 99),
        itl_error_ms=_percentiles(itl, 50, 99),
        cpu_per_1k_requests_s=cpu_s / max(len(records), 1) * 1000,
        cpu_per_100k_tokens_s=cpu_s / streamed * 1e5,
        raw_ttft_inflation_ms=_percentiles(raw_ttft, 50, 99),
        raw_lag_p99_ms=_percentiles(raw_lag_ms, 99)[0],
        raw_cpu_per_1k_requests_s=raw.cpu_s / max(len(raw.timings), 1) * 1000,
    )


def bench_config(spec: str, directory: Path, base_url: str | None = None, workers: int = 1) -> RunConfig:
    """A bench step's run: the synthetic `spec` with fixed prompts (seed 1), quiet, and no metrics
    scraping, so that only the client's own work is measured."""
    return RunConfig(
        workload=WorkloadSource(synthetic=spec),
        target=TargetConfig(base_url=base_url),
        prompts=PromptConfig(seed=1),
        scale=ScaleConfig(workers=workers),
        output=OutputConfig(out_dir=directory / "run", overwrite=True, quiet=True, scrape_metrics="off"),
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
    with simulator_process(truth_log, simulator_cores) as base_url, _pinned(client_cores):
        return run_loop(replay_raw(base_url, api_path(options.api, options.stream), requests))


def _summary_of(result: RunResult) -> Summary:
    """The summary of a bench run (which is never a dry run)."""
    assert result.summary is not None, "a bench run leaves a summary"
    return result.summary


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


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


@dataclass(frozen=True)
class HoldResult:
    """What `replayer bench --hold N` measured: can one client process keep N streams open at once?"""

    streams: int
    completed: int
    failures: dict
    peak_in_flight: int
    lag_p99_ms: float
    client_cpu_s: float
    peak_rss_mb: float
    open_files_limit: int

    def line(self) -> str:
        failures = ", ".join(f"{kind} {count}" for kind, count in self.failures.items()) or "none"
        return (
            f"held {self.peak_in_flight:,} streams open at once ({self.streams:,} planned): "
            f"{self.completed:,} completed, failures: {failures}; schedule lag p99 {self.lag_p99_ms:.2f} ms, "
            f"client CPU {self.client_cpu_s:.1f} s, peak RSS {self.peak_rss_mb:,.0f} MB, "
            f"open-files limit {self.open_files_limit:,}"
        )


def hold_streams(
    streams: int, directory: Path, ramp_s: float = 5.0, tokens: int = 30, ms_per_token: float = 1000.0, pin: bool = True
) -> HoldResult:
    """Open `streams` streaming requests over `ramp_s`, each lasting `tokens` x `ms_per_token`, so all
    are in flight together; count what completed and how many were open at the peak."""
    client_cores, simulator_cores = split_cores() if pin else (None, None)
    spec = (
        f"arrivals=constant,rate={streams / ramp_s:g},requests={streams},input=fixed:{_INPUT_TOKENS},"
        f"output=fixed:{tokens},seed=1"
    )
    with simulator_process(None, simulator_cores, ms_per_token) as base_url, _pinned(client_cores):
        result = execute(bench_config(spec, directory, base_url))
    records = read_records(directory / "run" / "records.jsonl").records
    summary = _summary_of(result)
    return HoldResult(
        streams=len(records),
        completed=summary["completed"],
        failures=summary["failures"],
        peak_in_flight=peak_in_flight(records),
        lag_p99_ms=_or_nan(summary["schedule_lag_ms"]["p99"]),
        client_cpu_s=summary["client_cpu_s"] or 0.0,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        open_files_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    )


def peak_in_flight(records: list) -> int:
    """The most requests that were open (sent, not yet ended) at the same instant."""
    spans = [(r.sent_ns, r.end_ns) for r in records if r.sent_ns is not None and r.end_ns is not None]
    starts, ends = (np.array(column, dtype=np.int64) for column in zip(*spans)) if spans else (np.zeros(0),) * 2
    return max_overlap(starts, ends)


SOAK_CHECKPOINTS = (10.0, 50.0)
"""Percent of the requests recorded at which `soak` reads the client's memory (and at the last
reading before all are recorded: after that the run loads every record to summarize them)."""


@dataclass(frozen=True)
class SoakResult:
    """What `replayer bench --soak N` measured: does the client's memory stay flat over a long run?"""

    requests: int
    completed: int
    failures: dict
    rate: float
    checkpoints: tuple[tuple[float, float, float], ...]
    """(percent of requests recorded, RSS MB then, peak RSS MB so far) of the `replayer run` process,
    at 10 %, 50 % and at the last reading while requests were still being recorded."""
    final_peak_mb: float
    """Its peak at the end, with the summary and report computed from all the records."""

    def line(self) -> str:
        failures = ", ".join(f"{kind} {count}" for kind, count in self.failures.items()) or "none"
        points = "; ".join(
            f"{math.floor(percent * 10) / 10:.1f}%: RSS {rss:,.0f} MB (peak {peak:,.0f} MB)"
            for percent, rss, peak in self.checkpoints
        )  # (floored: 99.99 % is not all)
        return (
            f"soaked {self.requests:,} requests at {self.rate:g} req/s: {self.completed:,} completed, "
            f"failures: {failures}; client memory while replaying at {points}; peak with the final summary "
            f"{self.final_peak_mb:,.0f} MB"
        )


def soak(requests: int, rate: float, directory: Path, pin: bool = True) -> SoakResult:
    """Replay `requests` short requests (32 tokens in, 4 out) at `rate` through a separate `replayer run`
    process, reading its resident memory as the records are written."""
    client_cores, simulator_cores = split_cores() if pin else (None, None)
    spec = f"arrivals=constant,rate={rate:g},requests={requests},input=fixed:{_INPUT_TOKENS},output=fixed:4,seed=1"
    out = directory / "run"
    with simulator_process(None, simulator_cores, ms_per_token=2.0) as base_url:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replayer",
                "run",
                "--synthetic",
                spec,
                "--base-url",
                base_url,
                "--out",
                str(out),
                "--overwrite",
                "--quiet",
                "--seed",
                "1",
                "--scrape-metrics",
                "off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if client_cores:
            os.sched_setaffinity(process.pid, client_cores)
        checkpoints, final_peak_mb = _watch_memory(process, out / "records.jsonl", requests)
        _, errors = process.communicate()
    if process.returncode != 0:
        raise ConfigError(f"bench --soak: replayer run failed (exit {process.returncode}): {errors.decode()[-300:]}")
    summary = json.loads((out / "summary.json").read_text())
    return SoakResult(
        requests=summary["requests_sent"],
        completed=summary["completed"],
        failures=summary["failures"],
        rate=rate,
        checkpoints=checkpoints,
        final_peak_mb=final_peak_mb,
    )


def _watch_memory(
    process: subprocess.Popen, records: Path, requests: int
) -> tuple[tuple[tuple[float, float, float], ...], float]:
    """Poll the run's records file and its /proc status until it exits: the readings at each of
    SOAK_CHECKPOINTS and the last one before every request was recorded, and the final peak."""
    checkpoints: list[tuple[float, float, float]] = []
    last_replaying: tuple[float, float, float] | None = None
    lines, offset, peak = 0, 0, 0.0
    while process.poll() is None:
        if records.exists():
            with open(records, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            lines += chunk.count(b"\n")
        memory = _resident_mb(process.pid)
        if memory is not None:
            peak = memory[1]
            percent = max(lines - 1, 0) * 100 / requests  # (the first line is the header)
            if percent < 100:
                last_replaying = (percent, *memory)
                if len(checkpoints) < len(SOAK_CHECKPOINTS) and percent >= SOAK_CHECKPOINTS[len(checkpoints)]:
                    checkpoints.append(last_replaying)
        time.sleep(0.02)
    if last_replaying is not None and last_replaying not in checkpoints:
        checkpoints.append(last_replaying)
    return tuple(checkpoints), peak


def _resident_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a live process in MB, from Linux's /proc; None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (KeyError, ValueError, IndexError):
        return None
