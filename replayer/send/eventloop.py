"""Event loops and process set-up for I/O-heavy runs: uvloop where it is installed (faster I/O, less
client overhead), asyncio otherwise; wake-ups at an exact instant; a frozen heap; open-files headroom."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop event loop where uvloop is installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh loop from `new_event_loop`, then close that loop."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class Alarm:
    """Wakes a coroutine at a `perf_counter_ns` instant, to the microsecond and with one wake-up of
    the loop: a Linux timerfd on CLOCK_MONOTONIC (perf_counter's own clock) that the loop watches.

    uvloop's timers count whole milliseconds and round a delay to the nearest one, so sleeping until
    an instant otherwise wakes early and yields to the loop again and again until it comes (tens of
    wake-ups in the last millisecond, each a pass of the loop), or, rounded up, sends late. Where
    there is no timerfd (not Linux), `until` sleeps once and the caller checks the clock again."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._waiter: asyncio.Future | None = None
        self._when_ns = 0
        self._spec = _TimerSpec()
        self._spec_ref = ctypes.byref(self._spec)
        api = _libc_timerfd()
        self._fd = int(api[0](_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)) if api else -1
        self._settime: Any = api[1] if api else None
        if self._fd >= 0:
            loop.add_reader(self._fd, self._fired)

    def until(self, when_ns: int) -> asyncio.Future:
        """A future done at `when_ns` (perf_counter_ns), or a little before it without a timerfd."""
        self._waiter = self._loop.create_future()
        self._arm(when_ns)
        return self._waiter

    def wake_by(self, when_ns: int) -> None:
        """Bring the pending wake-up forward to `when_ns` if that is earlier."""
        if self._waiter is not None and not self._waiter.done() and when_ns < self._when_ns:
            self._arm(when_ns)

    def _arm(self, when_ns: int) -> None:
        self._when_ns = when_ns
        if self._fd < 0:
            assert self._waiter is not None
            delay_s = (when_ns - time.perf_counter_ns()) / 1e9
            self._loop.call_later(max(0.0, delay_s), _set_unless_done, self._waiter)
        else:
            value = self._spec.it_value
            value.tv_sec, value.tv_nsec = divmod(max(when_ns, 1), 1_000_000_000)
            self._settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:  # (re-armed since it fired)
            return
        if self._waiter is not None:
            _set_unless_done(self._waiter)
            self._waiter = None

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _TimerSpec(ctypes.Structure):
    _fields_ = [("it_interval", _TimeSpec), ("it_value", _TimeSpec)]


_CLOCK_MONOTONIC, _TFD_TIMER_ABSTIME = 1, 1


@functools.cache
def _libc_timerfd() -> tuple[Any, Any] | None:
    """libc's (timerfd_create, timerfd_settime) where perf_counter reads CLOCK_MONOTONIC, else None."""
    if not sys.platform.startswith("linux") or "MONOTONIC" not in time.get_clock_info("perf_counter").implementation:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_TimerSpec), ctypes.c_void_p]
    return create, settime


def _set_unless_done(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


YOUNG_COLLECTION_THRESHOLD = 50_000
"""Net new container objects between two young collections during a run (Python's default is 700).
Per request the client and the simulator allocate a few dozen, nearly all freed by reference
counting, so at the default a collection ran every few requests in flight and cost 1-3 ms of the
loop each time; at this threshold they are rare, and cyclic garbage is still bounded."""


def settle_heap() -> None:
    """Collect, then move every object alive now (tokenizer tables, corpus, prepared bodies) out of the
    collector's reach, so a full collection during a run scans only what the run allocates: without
    this, one full pass over the prepared heap stalls the event loop for tens of milliseconds, and
    every send and chunk timestamp in that window with it. Young collections are made rare too
    (YOUNG_COLLECTION_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)


def reserve_fd_table(count: int) -> None:
    """Grow this process's file-descriptor table to hold `count` descriptors now, before t0 (it never
    shrinks). Linux grows the table by doubling as sockets are opened, and in a process with threads
    each growth waits for an RCU grace period: a 5-15 ms stall of the event loop at the 256th,
    512th, ... open connection, right in the middle of a run."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except ImportError:  # not on this platform
        return
    highest = min(count, limit if limit != resource.RLIM_INFINITY else count) - 1
    if highest < 3 or _is_open(highest):  # (an open descriptor that high: the table is that big already)
        return
    spare = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(spare, highest)
        os.close(highest)
    except OSError:
        pass  # a best effort: without it the table still grows, just later
    finally:
        os.close(spare)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (each in-flight request holds a socket)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
