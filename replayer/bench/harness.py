"""The bench's harness: the simulator as its own process on its own cores, core pinning, and the
config of a bench run (quiet, fixed prompts, no metrics scraping, so only the client's work is measured)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from replayer.analysis.summary import Summary
from replayer.errors import ConfigError
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, TargetConfig, WorkloadSource
from replayer.run.pipeline import RunResult

INPUT_TOKENS = 32


_SIMULATOR_OPTIONS = ("--decode-ms-per-seq", "0", "--prefill-tokens-per-ms", "1000", "--max-running", "1000000",
                      "--max-prefill-tokens", "100000000",
                      "--kv-tokens", "1000000000", "--max-model-len", "100000")
"""An engine that never queues: a fixed token rate per stream whatever the load, so only the client varies."""


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
    command = [sys.executable, "-m", "replayer", "simulate", "--port", str(port), *_SIMULATOR_OPTIONS,
               "--decode-base-ms", f"{ms_per_token:g}"]
    if truth_log is not None:
        command += ["--truth-log", str(truth_log)]
    with _serving(command, port, cores, "the simulator") as base_url:
        yield base_url


@contextmanager
def stream_server_process(truth_log: Path, cores: set[int] | None, emission: str,
                          ms_per_token: float = 10.0) -> Iterator[str]:
    """The bench's stream server (`replayer.bench.server`) in its own process (pinned to `cores`): one
    chunk per stream every `ms_per_token`, timed by `emission`, each write in `truth_log`; yields its
    base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "replayer.bench.server", "--port", str(port), "--emission", emission,
               "--ms-per-token", f"{ms_per_token:g}", "--truth-log", str(truth_log)]
    with _serving(command, port, cores, "the stream server") as base_url:
        yield base_url


@contextmanager
def _serving(command: list[str], port: int, cores: set[int] | None, name: str) -> Iterator[str]:
    """Run a server command as its own process until the block ends; yields its base URL."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if cores:
            os.sched_setaffinity(process.pid, cores)
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_serving(base_url, process, name)
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)  # a graceful stop closes the truth log
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(base_url: str, process: subprocess.Popen, name: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = (process.stderr.read() if process.stderr else b"").decode(errors="replace").strip().splitlines()
            raise ConfigError(f"bench: {name} exited at start ({message[-1] if message else 'no message'})")
        try:
            with urllib.request.urlopen(base_url + "/v1/models", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise ConfigError(f"bench: {name} did not answer on {base_url} within {timeout_s:g} s")


@contextmanager
def pinned(cores: set[int] | None) -> Iterator[None]:
    """Run the block with this process pinned to `cores` (no pinning for None)."""
    before = os.sched_getaffinity(0) if cores else None
    if cores:
        os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        if before:
            os.sched_setaffinity(0, before)


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


def summary_of(result: RunResult) -> Summary:
    """The summary of a bench run (which is never a dry run)."""
    assert result.summary is not None, "a bench run leaves a summary"
    return result.summary


def or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
