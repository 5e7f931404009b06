"""Event loops and process set-up for I/O-heavy runs: uvloop where it is installed (faster I/O, less
client overhead), asyncio otherwise; a frozen heap; open-files headroom."""

from __future__ import annotations

import asyncio
import gc
import os
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
