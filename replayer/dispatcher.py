"""The open-loop scheduler: each request leaves at t0 + its offset, whatever earlier requests are doing.

One monotonic clock (`time.perf_counter_ns`) drives everything. At each wake-up every request whose
instant has come is started as its own task, so rows sharing a timestamp leave together and a slow
or failing server never delays a later send. The gap between a request's intended and actual send
time is its schedule lag, recorded per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from replayer.client import Client
from replayer.prompts import PreparedRequest
from replayer.records import RequestRecord

_MAX_SLEEP_S = 0.1
"""Longest single sleep, so a stop request is noticed quickly even across long trace gaps."""


class StopControl:
    """Two-stage stop: `request_stop` ends sending and drains; calling it again aborts in-flight requests."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.aborting = asyncio.Event()
        self.reason: str | None = None

    def request_stop(self, reason: str = "stopped") -> None:
        if self.stopping.is_set():
            self.aborting.set()
        else:
            self.reason = reason
            self.stopping.set()


@dataclass
class Progress:
    """Live counters, read by the progress display."""

    planned: int = 0
    sent: int = 0
    finished: int = 0
    failed: int = 0

    @property
    def in_flight(self) -> int:
        return self.sent - self.finished


async def dispatch(requests: Sequence[PreparedRequest], client: Client, on_record: Callable[[RequestRecord], None],
                   t0_ns: int, *, stop: StopControl | None = None, drain_timeout_s: float = 30.0,
                   progress: Progress | None = None) -> Progress:
    """Send every request at its instant; return when all have finished (or the stop has been handled)."""
    stop = stop or StopControl()
    progress = progress or Progress()
    progress.planned = len(requests)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()
    idle = asyncio.Event()
    clock = time.perf_counter_ns

    sending = True

    def forget(task: asyncio.Task) -> None:
        tasks.discard(task)
        if not tasks and not sending:
            idle.set()

    async def one(request: PreparedRequest) -> None:
        record = RequestRecord(request.id, request.offset_ns, request.input_tokens, request.output_tokens)
        try:
            await client.fill(record, request.body)
        finally:
            progress.finished += 1
            progress.failed += not record.ok
            on_record(record)

    index, total = 0, len(requests)
    while index < total and not stop.stopping.is_set():
        wait_ns = t0_ns + requests[index].offset_ns - clock()
        if wait_ns > 0:
            await asyncio.sleep(min(wait_ns / 1e9, _MAX_SLEEP_S))
            continue
        now = clock()
        while index < total and t0_ns + requests[index].offset_ns <= now:
            task = loop.create_task(one(requests[index]))
            tasks.add(task)
            task.add_done_callback(forget)
            index += 1
        progress.sent = index
    sending = False
    if tasks:
        await _first(idle, stop.stopping)
    if tasks:
        await _first(idle, stop.aborting, timeout_s=drain_timeout_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return progress


async def _first(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Return when any of `events` is set (or after `timeout_s`)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
