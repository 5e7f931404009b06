"""`replayer run --workers N`: one trace replayed by N processes, for loads beyond one core.

The workload is dealt into N disjoint shards in send order, a session (all its turns) at a time, so
each shard is as bursty as the trace and every conversation stays in one process. The parent
settles the target once (model, backend, template, seed), so each worker builds exactly the bodies a
single process would. Each worker prepares its shard, reports ready, and is given one shared t0 on
the machine's monotonic clock (the clock every process here reads). Each one then sends its requests
at their recorded instants and writes its own records file. The parent merges those into
`records.jsonl`, keeping every complete line, and shows one live line summed over the workers.

Workers run in their own process group: Ctrl-C reaches the parent, which forwards each signal to
them once, so the two-stage stop (drain, then abort) behaves as in a single process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from rich.console import Console

from replayer.dispatcher import Lookahead, Progress
from replayer.errors import ConfigError
from replayer.eventloop import run as run_loop, settle_heap
from replayer.live import LiveDisplay, window_lag_p99_ms
from replayer.records import RecordWriter, record_lines, write_record_lines
from replayer.runner import (EXIT_SIGNALS, WORKER_FAILED, RunConfig, Target, describe_plan, plan_for, prepare_shard,
                             resolve_target, run_header, sampling, save_plan, send_plan, start_instant)
from replayer.scrape import ServerMetrics
from replayer.shards import shard_positions
from replayer.workload import Workload

T0_LEAD_S = 0.2
"""Between the last worker reporting ready and the shared t0 (time to hand every worker its t0)."""
_PUBLISH_S = 0.25
"""How often each worker publishes its counters for the parent's live line."""
_FIELDS = 4
"""Per worker in the shared counters: sent, finished, failed, lag p99 over the last window (µs, -1: none)."""


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process needs: its shard and where its records go."""

    index: int
    config: RunConfig
    target: Target
    workload: Workload
    records_path: Path


def part_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"records.worker-{index}.jsonl"


def run_workers(config: RunConfig, workload: Workload, base_url: str, out_dir: Path, console: Console,
                server: ServerMetrics | None = None) -> tuple[str | None, float]:
    """Replay `workload` with `config.workers` processes; write the merged `records.jsonl`.
    Returns the stop reason (if any) and the CPU seconds all workers spent from t0 on."""
    n = config.workers
    target = run_loop(resolve_target(config, base_url))
    plan = plan_for(config, workload, target)
    if config.save_requests is not None:
        save_plan(plan, config.save_requests, console)
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", _FIELDS * n, lock=False)
    jobs = [WorkerJob(k, config, target, workload.take(positions), part_path(out_dir, k))
            for k, positions in enumerate(shard_positions(workload, n))]
    pipes, processes = [], []
    for job in jobs:
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_work, args=(job, child_end, counters), name=f"replayer-worker-{job.index}",
                                  daemon=True)
        process.start()
        child_end.close()
        pipes.append(parent_end)
        processes.append(process)
    try:
        for job, pipe, process in zip(jobs, pipes, processes):
            _expect(pipe, process, "ready")
        if not config.quiet:
            describe_plan(console, plan, target)
            console.print(f"{n} workers ready ({', '.join(f'{len(job.workload):,}' for job in jobs)} requests); "
                          f"replaying {workload.describe()['span_s']:,.1f} s at speedup {workload.speedup:g}")
        t0_ns, t0_wall_ns = start_instant(config, T0_LEAD_S)
        for pipe in pipes:
            pipe.send(t0_ns)
        header = run_header(config, workload, target, plan, t0_ns, t0_wall_ns, workers=n)
        stop_reason, cpu_s = run_loop(_supervise(config, workload, pipes, processes, counters, t0_ns, console, server))
    except BaseException:
        for process in processes:  # a worker failed to prepare (or the parent was interrupted): stop them all
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    merge_parts(out_dir / "records.jsonl", header, [job.records_path for job in jobs])
    return stop_reason, cpu_s


def _expect(pipe: Connection, process: multiprocessing.Process, what: str) -> None:
    """The worker's next message, which must be `what`; its error (or death) becomes a ConfigError."""
    try:
        message = pipe.recv()
    except EOFError:
        process.join(timeout=5)
        raise ConfigError(f"{process.name} exited (code {process.exitcode}) before it was {what}") from None
    if message[0] == "error":
        raise ConfigError(f"{process.name}: {message[1]}")
    assert message[0] == what, message


async def _supervise(config: RunConfig, workload: Workload, pipes: list[Connection], processes: list,
                     counters, t0_ns: int, console: Console, server: ServerMetrics | None) -> tuple[str | None, float]:
    """Forward stop signals, keep the summed live line, and collect each worker's outcome."""
    loop = asyncio.get_running_loop()
    stopped: list[str] = []

    def forward(name: str) -> None:
        stopped.append(name)
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, getattr(signal, name))

    for name in EXIT_SIGNALS:
        loop.add_signal_handler(getattr(signal, name), forward, name)
    progress = Progress(planned=len(workload))
    live = None if config.quiet else LiveDisplay(console, progress, t0_ns, workload.describe()["span_s"],
                                                 workload.speedup, config.lag_limit_ms,
                                                 lag_p99=lambda: _worst_lag_ms(counters, len(processes)))
    live_task = loop.create_task(live.run()) if live else None
    outcomes: dict[int, tuple] = {}
    try:
        async with sampling(server, t0_ns):
            while len(outcomes) < len(pipes):
                _sum_counters(progress, counters, len(processes))
                for index, (pipe, process) in enumerate(zip(pipes, processes)):
                    if index not in outcomes and (pipe.poll() or not process.is_alive()):
                        outcomes[index] = _outcome(pipe, process)
                await asyncio.sleep(0.05)
        _sum_counters(progress, counters, len(processes))
    finally:
        for name in EXIT_SIGNALS:
            loop.remove_signal_handler(getattr(signal, name))
        if live_task:
            live_task.cancel()
            await asyncio.gather(live_task, return_exceptions=True)
    failed = [f"{processes[i].name}: {o[1]}" for i, o in sorted(outcomes.items()) if o[0] == "error"]
    if failed:
        console.print(f"[red]error:[/] {'; '.join(failed)} (the records of every worker are kept)")
    reasons = [o[1] for o in outcomes.values() if o[0] == "done" and o[1]]
    stop_reason = stopped[0] if stopped else (f"{WORKER_FAILED}: {failed[0]}" if failed else
                                              (reasons[0] if reasons else None))
    return stop_reason, sum(o[2] for o in outcomes.values() if o[0] == "done")


def _outcome(pipe: Connection, process: multiprocessing.Process) -> tuple:
    """("done", stop reason, cpu seconds) or ("error", message)."""
    try:
        if pipe.poll(1.0):
            return pipe.recv()
    except EOFError:
        pass
    process.join(timeout=1)
    return ("error", f"exited with code {process.exitcode} without reporting")


def _sum_counters(progress: Progress, counters, n: int) -> None:
    progress.sent = sum(counters[k * _FIELDS] for k in range(n))
    progress.finished = sum(counters[k * _FIELDS + 1] for k in range(n))
    progress.failed = sum(counters[k * _FIELDS + 2] for k in range(n))


def _worst_lag_ms(counters, n: int) -> float | None:
    lags = [counters[k * _FIELDS + 3] for k in range(n) if counters[k * _FIELDS + 3] >= 0]
    return max(lags) / 1000 if lags else None


def merge_parts(path: Path, header: dict, parts: list[Path]) -> int:
    """Write `records.jsonl` from the workers' files: every complete record line of each (a torn last
    line of an interrupted worker is dropped); the part files are removed once merged."""
    count = write_record_lines(path, header, (line for part in parts if part.exists() for line in record_lines(part)))
    for part in parts:
        part.unlink(missing_ok=True)
    return count


def _work(job: WorkerJob, pipe: Connection, counters) -> None:
    """A worker process: prepare the shard, wait for t0, send, report."""
    os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only; it forwards each stop once
    try:
        plan, buffer = prepare_shard(job.config, job.target, job.workload)
        pipe.send(("ready",))
        t0_ns = pipe.recv()
        stop_reason, cpu_s = run_loop(_send_shard(job, plan, buffer, t0_ns, counters))
        pipe.send(("done", stop_reason, cpu_s))
    except Exception as exc:  # reported to the parent, which prints one line and keeps every record
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


async def _send_shard(job: WorkerJob, plan, buffer: Lookahead, t0_ns: int, counters) -> tuple[str | None, float]:
    writer = RecordWriter(job.records_path, {"worker": job.index, "t0_monotonic_ns": t0_ns})
    progress = Progress()
    publisher = asyncio.get_running_loop().create_task(_publish(progress, counters, job.index))
    settle_heap()
    try:
        return await send_plan(job.config, job.target, plan, buffer, t0_ns, writer, progress, live=None)
    finally:
        publisher.cancel()
        _publish_once(progress, counters, job.index)


async def _publish(progress: Progress, counters, index: int) -> None:
    while True:
        _publish_once(progress, counters, index)
        await asyncio.sleep(_PUBLISH_S)


def _publish_once(progress: Progress, counters, index: int) -> None:
    base = index * _FIELDS
    lag = window_lag_p99_ms(progress)
    counters[base:base + _FIELDS] = [progress.sent, progress.finished, progress.failed,
                                     -1 if lag is None else int(lag * 1000)]
