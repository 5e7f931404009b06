"""`replayer bench --hold` and `--soak`: many streams open at once, and memory over many requests."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replayer.bench.harness import (
    INPUT_TOKENS,
    bench_config,
    or_nan,
    pinned,
    simulator_process,
    split_cores,
    summary_of,
)
from replayer.errors import ConfigError
from replayer.records import read_records
from replayer.run.pipeline import execute
from replayer.traces.stats import max_overlap


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
        f"arrivals=constant,rate={streams / ramp_s:g},requests={streams},input=fixed:{INPUT_TOKENS},"
        f"output=fixed:{tokens},seed=1"
    )
    with simulator_process(None, simulator_cores, ms_per_token) as base_url, pinned(client_cores):
        result = execute(bench_config(spec, directory, base_url))
    records = read_records(directory / "run" / "records.jsonl").records
    summary = summary_of(result)
    return HoldResult(
        streams=len(records),
        completed=summary["completed"],
        failures=summary["failures"],
        peak_in_flight=peak_in_flight(records),
        lag_p99_ms=or_nan(summary["schedule_lag_ms"]["p99"]),
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
    spec = f"arrivals=constant,rate={rate:g},requests={requests},input=fixed:{INPUT_TOKENS},output=fixed:4,seed=1"
    out = directory / "run"
    with simulator_process(None, simulator_cores, ms_per_token=2.0) as base_url:
        command = [sys.executable, "-m", "replayer", "run", "--synthetic", spec, "--base-url", base_url,
                   "--out", str(out), "--overwrite", "--quiet", "--seed", "1", "--scrape-metrics", "off"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
