"""Event loops: uvloop where it is installed (faster I/O, less client overhead), asyncio otherwise."""

from __future__ import annotations

import asyncio
import gc
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


def settle_heap() -> None:
    """Collect, then move every object alive now (tokenizer tables, corpus, prepared bodies) out of the
    collector's reach, so a full collection during a run scans only what the run allocates: without
    this, one full pass over the prepared heap stalls the event loop for tens of milliseconds, and
    every send and chunk timestamp in that window with it."""
    gc.collect()
    gc.freeze()
