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
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.errors import ConfigError
from replayer.prompts.bodies import RequestPlan
from replayer.records import RecordWriter, record_lines, write_record_lines
from replayer.run.live import window_lag_p99_ms
from replayer.run.replay import (
    WORKER_FAILED,
    Replay,
    RunOutcome,
    ShardJob,
    announce_start,
    live_display,
    observing,
    prepare_shard,
    records_header,
    send_plan,
    start_instant,
    stop_signals,
)
from replayer.run.server_metrics import ServerMetrics
from replayer.send.dispatcher import Lookahead, Progress, StopControl
from replayer.send.eventloop import run as run_loop
from replayer.send.eventloop import settle_heap
from replayer.workload.shards import shard_positions

T0_LEAD_S = 0.2
"""Between the last worker reporting ready and the shared t0 (time to hand every worker its t0)."""
_PUBLISH_S = 0.25
"""How often each worker publishes its counters for the parent's live line."""
_FIELDS = 4
"""Per worker in the shared counters: sent, finished, failed, lag p99 over the last window (µs, -1: none)."""


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process needs: its shard's job and where its records go."""

    index: int
    job: ShardJob
    records_path: Path


def part_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"records.worker-{index}.jsonl"


def run_workers(replay: Replay, console: Console, server: ServerMetrics | None = None) -> RunOutcome:
    """Replay the workload with `scale.workers` processes; write the merged `records.jsonl`."""
    n = replay.scale.workers
    workload = replay.job.workload
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", _FIELDS * n, lock=False)
    jobs = [WorkerJob(k, replay.job.shard(workload.take(positions)), part_path(replay.out_dir, k))
            for k, positions in enumerate(shard_positions(workload, n))]
    pipes: list[Connection] = []
    processes: list[BaseProcess] = []
    for job in jobs:
        parent_end, child_end = context.Pipe()
        process: BaseProcess = context.Process(
            target=_work, args=(job, child_end, counters), name=f"replayer-worker-{job.index}", daemon=True
        )
        process.start()
        child_end.close()
        pipes.append(parent_end)
        processes.append(process)
    try:
        for pipe, process in zip(pipes, processes):
            _expect(pipe, process, "ready")
        if not replay.quiet:
            console.print(
                f"{n} workers ready ({', '.join(f'{len(job.job.workload):,}' for job in jobs)} requests); "
                f"replaying {workload.span_s:,.1f} s at speedup {workload.speedup:g}"
            )
        t0_ns, t0_wall_ns = start_instant(replay.scale.start_at_ns, T0_LEAD_S)
        if not replay.quiet:
            announce_start(console, replay.scale.start_at_ns)
        for pipe in pipes:
            pipe.send(t0_ns)
        header = records_header(replay, t0_ns, t0_wall_ns, workers=n)
        outcome = run_loop(_supervise(replay, pipes, processes, counters, t0_ns, console, server))
    except BaseException:
        for process in processes:  # a worker failed to prepare (or the parent was interrupted): stop them all
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    merge_parts(replay.records_path, header, [job.records_path for job in jobs])
    return outcome


def _expect(pipe: Connection, process: BaseProcess, what: str) -> None:
    """The worker's next message, which must be `what`; its error (or death) becomes a ConfigError."""
    try:
        message = pipe.recv()
    except EOFError:
        process.join(timeout=5)
        raise ConfigError(f"{process.name} exited (code {process.exitcode}) before it was {what}") from None
    if message[0] == "error":
        raise ConfigError(f"{process.name}: {message[1]}")
    assert message[0] == what, message


async def _supervise(
    replay: Replay,
    pipes: list[Connection],
    processes: list[BaseProcess],
    counters: Any,
    t0_ns: int,
    console: Console,
    server: ServerMetrics | None,
) -> RunOutcome:
    """Forward stop signals, keep the summed live line, and collect each worker's outcome."""
    stopped: list[str] = []

    def forward(name: str) -> None:
        stopped.append(name)
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, getattr(signal, name))

    progress = Progress(planned=len(replay.job.workload))
    live = live_display(replay, console, progress, t0_ns, lag_p99=lambda: _worst_lag_ms(counters, len(processes)))
    outcomes: dict[int, tuple] = {}
    with stop_signals(forward):
        async with observing(server, t0_ns, live):
            while len(outcomes) < len(pipes):
                _sum_counters(progress, counters, len(processes))
                for index, (pipe, process) in enumerate(zip(pipes, processes)):
                    if index not in outcomes and (pipe.poll() or not process.is_alive()):
                        outcomes[index] = _outcome(pipe, process)
                await asyncio.sleep(0.05)
            _sum_counters(progress, counters, len(processes))
    failed = tuple(f"{processes[i].name}: {o[1]}" for i, o in sorted(outcomes.items()) if o[0] == "error")
    reasons = [o[1] for o in outcomes.values() if o[0] == "done" and o[1]]
    stop_reason = (
        stopped[0] if stopped else (f"{WORKER_FAILED}: {failed[0]}" if failed else (reasons[0] if reasons else None))
    )
    return RunOutcome(stop_reason, sum(o[2] for o in outcomes.values() if o[0] == "done"), failed)


def _outcome(pipe: Connection, process: BaseProcess) -> tuple:
    """("done", stop reason, cpu seconds) or ("error", message)."""
    try:
        if pipe.poll(1.0):
            return pipe.recv()
    except EOFError:
        pass
    process.join(timeout=1)
    return ("error", f"exited with code {process.exitcode} without reporting")


def _sum_counters(progress: Progress, counters: Any, n: int) -> None:
    progress.sent = sum(counters[k * _FIELDS] for k in range(n))
    progress.finished = sum(counters[k * _FIELDS + 1] for k in range(n))
    progress.failed = sum(counters[k * _FIELDS + 2] for k in range(n))


def _worst_lag_ms(counters: Any, n: int) -> float | None:
    lags = [counters[k * _FIELDS + 3] for k in range(n) if counters[k * _FIELDS + 3] >= 0]
    return max(lags) / 1000 if lags else None


def merge_parts(path: Path, header: dict, parts: list[Path]) -> int:
    """Write `records.jsonl` from the workers' files: every complete record line of each (a torn last
    line of an interrupted worker is dropped); the part files are removed once merged."""
    count = write_record_lines(path, header, (line for part in parts if part.exists() for line in record_lines(part)))
    for part in parts:
        part.unlink(missing_ok=True)
    return count


def _work(job: WorkerJob, pipe: Connection, counters: Any) -> None:
    """A worker process: prepare the shard, wait for t0, send, report."""
    os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent only; it forwards each stop once
    try:
        plan, buffer = prepare_shard(job.job)
        pipe.send(("ready",))
        t0_ns = pipe.recv()
        stop_reason, cpu_s = run_loop(_send_shard(job, plan, buffer, t0_ns, counters))
        pipe.send(("done", stop_reason, cpu_s))
    except Exception as exc:  # reported to the parent, which keeps every record
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


async def _send_shard(
    job: WorkerJob, plan: RequestPlan, buffer: Lookahead, t0_ns: int, counters: Any
) -> tuple[str | None, float]:
    writer = RecordWriter(job.records_path, {"worker": job.index, "t0_monotonic_ns": t0_ns})
    progress, stop = Progress(), StopControl()
    publisher = asyncio.get_running_loop().create_task(_publish(progress, counters, job.index))
    settle_heap()
    try:
        with stop_signals(stop.request_stop):
            return await send_plan(job.job, plan, buffer, t0_ns, writer, progress, stop)
    finally:
        publisher.cancel()
        _publish_once(progress, counters, job.index)


async def _publish(progress: Progress, counters: Any, index: int) -> None:
    while True:
        _publish_once(progress, counters, index)
        await asyncio.sleep(_PUBLISH_S)


def _publish_once(progress: Progress, counters: Any, index: int) -> None:
    base = index * _FIELDS
    lag = window_lag_p99_ms(progress)
    counters[base : base + _FIELDS] = [
        progress.sent,
        progress.finished,
        progress.failed,
        -1 if lag is None else int(lag * 1000),
    ]
