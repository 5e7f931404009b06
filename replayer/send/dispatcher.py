"""The open-loop scheduler: each request leaves at t0 + its offset, whatever earlier requests are doing.

One monotonic clock (`time.perf_counter_ns`) drives everything. At each wake-up every request whose
instant has come is started as its own task, so rows sharing a timestamp leave together and a slow
or failing server never delays a later send. The gap between a request's intended and actual send
time is its schedule lag, recorded per request.

Two things may hold a request back, both measured: a session turn waits for its session's previous
turn to finish (`session_wait_ns`, part of its schedule lag), and bodies come from a bounded
look-ahead that is refilled in short slices while nothing is due, so memory stays flat on any trace.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from replayer.prompts.bodies import PreparedRequest
from replayer.records import RequestRecord
from replayer.send.client import Client
from replayer.send.eventloop import Alarm

_MAX_SLEEP_NS = 100_000_000
"""Longest single sleep, so a stop request is noticed quickly even across long trace gaps."""
LOOKAHEAD = 10_000
"""Requests prepared ahead of the send clock (all of them, for most traces)."""
_REFILL_SLICE_NS = 500_000
"""Longest stretch of body building between two looks at the clock and the network, so a refill
never delays a send, or the timestamp of an arriving chunk, by more than this."""
_SEND_MARGIN_NS = 200_000
"""Refilling stops this long before the next send is due."""
RECENT_LAGS = 4096
"""Sends whose lag the live display keeps (a bound, so its p99 stays cheap at any rate)."""


class Lookahead:
    """Requests taken from an iterable at most `size` ahead of the one due next."""

    def __init__(self, requests: Iterable[PreparedRequest], size: int = LOOKAHEAD):
        self._source = iter(requests)
        self._pending: deque[PreparedRequest] = deque()
        self.size = size
        self.exhausted = False
        self.position = 0
        """Send position of the next request (its index in the plan)."""

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def can_grow(self) -> bool:
        return not self.exhausted and len(self._pending) < self.size

    def fill(self, budget_ns: int | None = None) -> None:
        """Build requests until the buffer is full, the plan ends, or `budget_ns` has been spent."""
        deadline = None if budget_ns is None else time.perf_counter_ns() + budget_ns
        pending, source = self._pending, self._source
        while len(pending) < self.size:
            request = next(source, None)
            if request is None:
                self.exhausted = True
                return
            pending.append(request)
            if deadline is not None and time.perf_counter_ns() >= deadline:
                return

    def next_offset_ns(self) -> int:
        return self._pending[0].offset_ns

    def pop(self) -> tuple[int, PreparedRequest]:
        """The next request and its send position."""
        self.position += 1
        return self.position - 1, self._pending.popleft()


class SessionHooks(Protocol):
    """What the dispatcher needs from a plan with session turns (`replayer.prompts.bodies.RequestPlan`)."""

    def body(self, position: int, request: PreparedRequest) -> bytes: ...

    def wants_reply(self, position: int) -> bool: ...

    def finished(self, position: int, request: PreparedRequest, reply: str | None) -> None: ...


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

    def abort(self, reason: str) -> None:
        """Stop sending and cancel in-flight requests at once (nothing more can be recorded)."""
        if not self.stopping.is_set():
            self.reason = reason
            self.stopping.set()
        self.aborting.set()


@dataclass
class Progress:
    """Live counters, read by the progress display."""

    planned: int = 0
    sent: int = 0
    finished: int = 0
    failed: int = 0
    recent_lag: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECENT_LAGS))
    """(send time, client lag) of the latest sends, both ns: the live schedule guard's window."""

    @property
    def in_flight(self) -> int:
        return self.sent - self.finished


async def dispatch(requests: Lookahead | Iterable[PreparedRequest], client: Client,
                   on_record: Callable[[RequestRecord], None], t0_ns: int, *, total: int | None = None,
                   sessions: SessionHooks | None = None, stop: StopControl | None = None,
                   drain_timeout_s: float = 30.0, progress: Progress | None = None,
                   max_in_flight: int | None = None) -> Progress:
    """Send every request at its instant (a session turn also after the turn it follows has finished;
    with `max_in_flight`, also once fewer than that many are in flight); return when all have
    finished (or the stop has been handled)."""
    stop = stop or StopControl()
    progress = progress or Progress()
    buffer = requests if isinstance(requests, Lookahead) else Lookahead(requests)
    progress.planned = total if total is not None else len(requests)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task] = set()
    idle = asyncio.Event()
    clock = time.perf_counter_ns
    open_turns: set[int] = set()
    """Positions of session turns taken from the buffer that have not finished (sent or parked)."""
    parked: dict[int, list[tuple[int, PreparedRequest]]] = {}
    """Turns whose instant has come, by the position of the turn they follow up and wait for."""
    capped: deque[tuple[int, PreparedRequest, int, int]] = deque()
    """Requests ready to go while `max_in_flight` are in flight: (position, request, session wait,
    when it became ready), in the order they became ready."""

    sending = True

    def forget(task: asyncio.Task) -> None:
        tasks.discard(task)
        while capped and len(tasks) < (max_in_flight or 0) and not stop.stopping.is_set():
            position, request, waited_ns, ready_ns = capped.popleft()
            launch(position, request, waited_ns, clock() - ready_ns)
        if not tasks and not sending:
            idle.set()

    def start(position: int, request: PreparedRequest, waited_ns: int = 0) -> None:
        if request.turn:
            open_turns.add(position)
        if max_in_flight is not None and len(tasks) >= max_in_flight:
            capped.append((position, request, waited_ns, clock()))
        else:
            launch(position, request, waited_ns)

    def launch(position: int, request: PreparedRequest, waited_ns: int, cap_wait_ns: int = 0) -> None:
        task = loop.create_task(one(position, request, waited_ns, cap_wait_ns))
        tasks.add(task)
        task.add_done_callback(forget)
        progress.sent += 1

    async def one(position: int, request: PreparedRequest, waited_ns: int, cap_wait_ns: int) -> None:
        record = RequestRecord(request.id, request.offset_ns, request.input_tokens, request.output_tokens,
                               turn=request.turn, session_wait_ns=waited_ns, cap_wait_ns=cap_wait_ns,
                               labels=request.labels)
        reply = None
        try:
            body = request.body
            if body is None:
                assert sessions is not None, "a request without a body is a session turn"
                body = sessions.body(position, request)
            now = clock()
            progress.recent_lag.append((now, now - t0_ns - request.offset_ns - waited_ns - cap_wait_ns))
            reply = await client.send(record, body, keep_reply=sessions is not None and sessions.wants_reply(position))
        finally:
            progress.finished += 1
            progress.failed += not record.ok
            on_record(record)
            if request.turn:
                turn_done(position, request, reply if record.ok else None)

    def turn_done(position: int, request: PreparedRequest, reply: str | None) -> None:
        open_turns.discard(position)
        if sessions is not None:
            sessions.finished(position, request, reply)
        for waiting in parked.pop(position, ()):
            if not stop.stopping.is_set():
                start(*waiting, waited_ns=clock() - t0_ns - waiting[1].offset_ns)

    if not len(buffer):
        buffer.fill()
    alarm = Alarm(loop)
    try:
        while len(buffer) and not stop.stopping.is_set():
            now = clock()
            due_ns = t0_ns + buffer.next_offset_ns()
            if due_ns > now:
                budget_ns = _refill_budget(buffer, due_ns - now)
                if budget_ns > 0:
                    buffer.fill(budget_ns)
                    await asyncio.sleep(0)  # let arriving chunks be read between slices
                else:
                    await alarm.until(min(due_ns, now + _MAX_SLEEP_NS))
                continue
            while len(buffer) and t0_ns + buffer.next_offset_ns() <= now:
                position, request = buffer.pop()
                if request.after in open_turns:
                    open_turns.add(position)
                    parked.setdefault(request.after, []).append((position, request))
                else:
                    start(position, request)
            if not len(buffer) and not buffer.exhausted:
                buffer.fill(_REFILL_SLICE_NS)
    finally:
        alarm.close()
    sending = False
    if tasks:
        await _first(idle, stop.stopping)
    if tasks:
        await _first(idle, stop.aborting, timeout_s=drain_timeout_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return progress


def _refill_budget(buffer: Lookahead, wait_ns: int) -> int:
    """How long to spend building bodies now: the slack before the next send, within one slice; a full
    slice when the buffer is running dry, even if that send is then a little late."""
    if not buffer.can_grow:
        return 0
    budget = min(wait_ns - _SEND_MARGIN_NS, _REFILL_SLICE_NS)
    return _REFILL_SLICE_NS if len(buffer) < buffer.size // 4 else budget


async def _first(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Return when any of `events` is set (or after `timeout_s`)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
