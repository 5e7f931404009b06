"""The open-loop scheduler: each request leaves at t0 + its offset, whatever earlier requests are doing.

One monotonic clock (`time.perf_counter_ns`) drives everything. At each wake-up every request whose
instant has come is started as its own task, so rows sharing a timestamp leave together and a slow
or failing server never delays a later send. The gap between a request's intended and actual send
time is its schedule lag, recorded per request.

Two things may hold a request back, both measured: a session turn waits for its session's previous
turn to finish (`session_wait_ns`, part of its schedule lag), and bodies come from a bounded
look-ahead that is refilled in short slices while nothing is due, so memory stays flat on any trace.
With `--max-concurrency`, a due request also waits for a slot (`cap_wait_ns`).

With think-time session timing a follow-up turn has no instant of its own: it leaves its think time
after the turn it follows has finished, and that instant is its intended time.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
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
        self._pending: deque[tuple[int, PreparedRequest]] = deque()
        """Requests in time order, each with its send position (its index in the plan)."""
        self.size = size
        self.exhausted = False
        self.follow_ups: list[tuple[int, PreparedRequest]] = []
        """Think-time turns just built, with their send positions: they leave after the turn they follow,
        not in time order, so they are handed over at once (`take_follow_ups`)."""
        self.held = 0
        """Think-time turns handed over and not yet sent: they count against the look-ahead's size."""
        self._built = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def can_grow(self) -> bool:
        return not self.exhausted and len(self._pending) + self.held < self.size

    def fill(self, budget_ns: int | None = None) -> None:
        """Build requests until the buffer is full, the plan ends, or `budget_ns` has been spent."""
        deadline = None if budget_ns is None else time.perf_counter_ns() + budget_ns
        pending, source = self._pending, self._source
        while len(pending) + self.held < self.size:
            request = next(source, None)
            if request is None:
                self.exhausted = True
                return
            if request.think_ns >= 0:
                self.follow_ups.append((self._built, request))
                self.held += 1
            else:
                pending.append((self._built, request))
            self._built += 1
            if deadline is not None and time.perf_counter_ns() >= deadline:
                return

    def take_follow_ups(self) -> list[tuple[int, PreparedRequest]]:
        """The think-time turns built since the last call, with their send positions."""
        taken, self.follow_ups = self.follow_ups, []
        return taken

    def next_offset_ns(self) -> int:
        return self._pending[0][1].offset_ns

    def pop(self) -> tuple[int, PreparedRequest]:
        """The next request in time order and its send position."""
        return self._pending.popleft()


class ThinkTimeTurns:
    """Think-time turns between being built and being due: each waits for the turn it follows up
    (`after`) to finish, then for its think time; the dispatcher sends them as they come due."""

    def __init__(self) -> None:
        self._waiting: dict[int, list[tuple[int, PreparedRequest]]] = {}
        """Turns whose predecessor has not finished, by the predecessor's send position."""
        self._finished: dict[int, list[int]] = {}
        """[finish time, follow-ups not yet built] of finished turns whose follow-ups are still to come."""
        self._due: list[tuple[int, int, PreparedRequest]] = []
        """A heap of (due instant, send position, turn)."""

    def __bool__(self) -> bool:
        return bool(self._waiting or self._due)

    def add(self, position: int, request: PreparedRequest) -> int | None:
        """Take a turn just built; returns its due instant if it is known now."""
        finished = self._finished.get(request.after)
        if finished is None:
            self._waiting.setdefault(request.after, []).append((position, request))
            return None
        finished[1] -= 1
        if not finished[1]:
            del self._finished[request.after]
        return self._schedule(finished[0], position, request)

    def finished(self, position: int, request: PreparedRequest, at_ns: int) -> int | None:
        """The turn at `position` finished at `at_ns`; returns the earliest due instant this sets."""
        waiting = self._waiting.pop(position, ())
        if request.follow_ups > len(waiting):
            self._finished[position] = [at_ns, request.follow_ups - len(waiting)]
        return min((self._schedule(at_ns, *turn) for turn in waiting), default=None)

    def _schedule(self, finished_ns: int, position: int, request: PreparedRequest) -> int:
        due_ns = finished_ns + request.think_ns
        heapq.heappush(self._due, (due_ns, position, request))
        return due_ns

    def next_due_ns(self) -> int | None:
        return self._due[0][0] if self._due else None

    def pop_due(self, now_ns: int) -> Iterator[tuple[int, int, PreparedRequest]]:
        """The (due instant, send position, turn) of every turn due by `now_ns`, earliest first."""
        due = self._due
        while due and due[0][0] <= now_ns:
            yield heapq.heappop(due)


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
                   max_in_flight: int | None = None, users: int | None = None) -> Progress:
    """Send every request at its instant (a session turn also after the turn it follows has finished;
    with `max_in_flight`, also once fewer than that many are in flight); return when all have
    finished (or the stop has been handled). With `users`, a closed loop instead: that many virtual
    users send the requests in plan order, each as soon as its previous one has finished, and a
    request's intended time is the instant its user took it."""
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
                               labels=request.labels, recorded_e2e_ms=request.recorded_e2e_ms)
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
                ended_ns = clock() if record.end_ns is None else t0_ns + record.end_ns  # (when its answer was whole)
                turn_done(position, request, reply if record.ok else None, ended_ns)

    async def user() -> None:
        """One virtual user of the closed loop: the next request, as soon as its previous one is done."""
        while not stop.stopping.is_set():
            if not len(buffer):
                if not buffer.can_grow:
                    return
                buffer.fill(_REFILL_SLICE_NS)
                continue
            position, request = buffer.pop()
            taken_ns = clock()
            if request.turn:
                open_turns.add(position)
                if request.after in open_turns:  # (a session's earlier turn, another user's in flight)
                    await turn_ended.setdefault(request.after, loop.create_future())
            progress.sent += 1
            await one(position, replace(request, offset_ns=taken_ns - t0_ns), clock() - taken_ns, 0)

    turn_ended: dict[int, asyncio.Future] = {}
    """Closed loop: futures that users wait on for a session's earlier turn, by its position."""

    def turn_done(position: int, request: PreparedRequest, reply: str | None, ended_ns: int) -> None:
        open_turns.discard(position)
        if sessions is not None:
            sessions.finished(position, request, reply)
        if (ended := turn_ended.pop(position, None)) is not None:
            ended.set_result(None)
        for waiting in parked.pop(position, ()):
            if not stop.stopping.is_set():
                start(*waiting, waited_ns=clock() - t0_ns - waiting[1].offset_ns)
        wake_by(thinking.finished(position, request, ended_ns))

    def fill(budget_ns: int | None) -> None:
        buffer.fill(budget_ns)
        take_follow_ups()

    def take_follow_ups() -> None:
        for position, request in buffer.take_follow_ups():
            wake_by(thinking.add(position, request))

    def wake_by(due_ns: int | None) -> None:
        if due_ns is not None:
            alarm.wake_by(due_ns)

    def next_due_ns() -> int:
        due_ns = t0_ns + buffer.next_offset_ns() if len(buffer) else clock() + _MAX_SLEEP_NS
        think_ns = thinking.next_due_ns()
        return due_ns if think_ns is None else min(due_ns, think_ns)

    thinking = ThinkTimeTurns()
    if users is not None:
        if not len(buffer):
            buffer.fill()
        await _until(loop, t0_ns)  # (the users start at t0, as the open loop's first request does)
        for task in [loop.create_task(user()) for _ in range(users)]:
            tasks.add(task)
            task.add_done_callback(forget)
        sending = False
        await _drain(tasks, idle, stop, drain_timeout_s)
        return progress
    alarm = Alarm(loop)
    try:
        if len(buffer) or buffer.held:
            take_follow_ups()  # (of a buffer filled before the run)
        else:
            fill(None)
        while (len(buffer) or thinking or buffer.can_grow) and not stop.stopping.is_set():
            now = clock()
            due_ns = next_due_ns()
            if due_ns > now:
                budget_ns = _refill_budget(buffer, due_ns - now)
                if budget_ns > 0:
                    fill(budget_ns)
                    await asyncio.sleep(0)  # let arriving chunks be read between slices
                else:
                    await alarm.until(min(due_ns, now + _MAX_SLEEP_NS))
                continue
            for due_ns, position, request in thinking.pop_due(now):
                buffer.held -= 1
                start(position, replace(request, offset_ns=due_ns - t0_ns))
            while len(buffer) and t0_ns + buffer.next_offset_ns() <= now:
                position, request = buffer.pop()
                if request.after in open_turns:
                    open_turns.add(position)
                    parked.setdefault(request.after, []).append((position, request))
                else:
                    start(position, request)
            if not len(buffer) and buffer.can_grow:
                fill(_REFILL_SLICE_NS)
    finally:
        alarm.close()
    sending = False
    await _drain(tasks, idle, stop, drain_timeout_s)
    return progress


async def _until(loop: asyncio.AbstractEventLoop, when_ns: int) -> None:
    """Return at `when_ns` (perf_counter_ns)."""
    alarm = Alarm(loop)
    try:
        while time.perf_counter_ns() < when_ns:
            await alarm.until(when_ns)
    finally:
        alarm.close()


async def _drain(tasks: set[asyncio.Task], idle: asyncio.Event, stop: StopControl, drain_timeout_s: float) -> None:
    """Wait for the tasks in flight to finish; once a stop is asked, for `drain_timeout_s` at most (or
    until it is asked again), then cancel what is left."""
    if tasks:
        await _first(idle, stop.stopping)
    if tasks:
        await _first(idle, stop.aborting, timeout_s=drain_timeout_s)
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
