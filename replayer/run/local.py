"""The shard runner of a single process: the whole workload, on this process's event loop."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console

from replayer.records import RecordWriter
from replayer.run.replay import (
    TIME_LIMIT,
    Replay,
    RunOutcome,
    announce_start,
    live_display,
    observing,
    records_header,
    send_plan,
    slo_watch,
    start_instant,
    stop_signals,
)
from replayer.run.server_metrics import ServerMetrics
from replayer.send.dispatcher import Lookahead, Progress, StopControl
from replayer.send.eventloop import run as run_loop
from replayer.send.eventloop import settle_heap


def run_local(replay: Replay, console: Console, server: ServerMetrics | None = None) -> RunOutcome:
    """Replay the whole plan in this process; write `records.jsonl`."""
    return run_loop(_replay(replay, console, server))


async def _replay(replay: Replay, console: Console, server: ServerMetrics | None) -> RunOutcome:
    plan, workload = replay.plan, replay.job.workload
    buffer = Lookahead(plan)
    buffer.fill()
    if not replay.quiet:
        console.print(f"{len(buffer):,} of {len(plan):,} requests prepared; replaying "
                      f"{workload.span_s:,.1f} s at speedup {workload.speedup:g}")
    settle_heap()
    t0_ns, t0_wall_ns = start_instant(replay.scale.start_at_ns)
    if not replay.quiet:
        announce_start(console, replay.scale.start_at_ns)
    writer = RecordWriter(replay.records_path, records_header(replay, t0_ns, t0_wall_ns))
    progress, stop = Progress(), StopControl()
    live = live_display(replay, console, progress, t0_ns)
    if replay.time_limit_s is not None:
        until_limit_s = (t0_ns - time.perf_counter_ns()) / 1e9 + replay.time_limit_s
        asyncio.get_running_loop().call_later(max(0.0, until_limit_s), stop.request_stop, TIME_LIMIT)
    with stop_signals(stop.request_stop):
        async with observing(server, t0_ns, live):
            stop_reason, cpu_s = await send_plan(replay.job, plan, buffer, t0_ns, writer, progress, stop, live,
                                                 slo_watch(replay))
    return RunOutcome(stop_reason, cpu_s)
