"""The yardstick for `replayer bench`: a minimal raw-socket streaming client.

It does the least a client can do and still measure TTFT: send each prepared body at its instant
over a kept-alive connection, timestamp every read on receipt, note the first read that carries
output text, and recognise the end of the response by its final chunked-encoding frame. No records
file, no SSE parsing, no checks. Whatever inflation it shows against the simulator's truth log is
the floor set by this machine, the loopback and the simulator; the real client is judged against it
in the same bench run.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from replayer.prompts.bodies import PreparedRequest
from replayer.send.addressing import request_id_prefix

_OUTPUT = re.compile(rb'"(?:content|text)":"[^"]')
_LAST_FRAME = b"\r\n0\r\n\r\n"


@dataclass
class RawTiming:
    """One request as the raw client saw it (perf_counter_ns; first_ns 0 until output arrived)."""

    id: int
    intended_ns: int
    sent_ns: int
    first_ns: int = 0


class _RawConnection(asyncio.Protocol):
    def __init__(self, idle: list[_RawConnection]):
        self.idle = idle
        self.transport: asyncio.Transport | None = None
        self.timing: RawTiming | None = None
        self.finished: asyncio.Future | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, timing: RawTiming, finished: asyncio.Future) -> None:
        self.timing, self.finished, self.tail = timing, finished, b""
        assert self.transport is not None, "send on a made connection"
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        timing = self.timing
        if timing is None:
            return
        if not timing.first_ns and _OUTPUT.search(data):
            timing.first_ns = now
        self.tail = (self.tail + data)[-len(_LAST_FRAME):]
        if self.tail == _LAST_FRAME:
            self.timing = None
            self.idle.append(self)
            if self.finished is not None:
                self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.finished is not None and not self.finished.done():
            self.finished.set_result(None)


@dataclass
class RawRun:
    """What a raw-client replay measured."""

    timings: list[RawTiming] = field(default_factory=list)
    cpu_s: float = 0.0


async def replay_raw(base_url: str, path: str, requests: Iterable[PreparedRequest], lead_s: float = 0.05) -> RawRun:
    """Send every request at t0 + its offset (t0 = now + `lead_s`); return when all have ended."""
    parts = urlsplit(base_url)
    loop = asyncio.get_running_loop()
    idle: list[_RawConnection] = []
    run = RawRun()
    pending = []
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n".encode()
    cpu_at_start = time.process_time()
    id_prefix = request_id_prefix()
    t0 = time.perf_counter_ns() + int(lead_s * 1e9)
    for request in requests:
        wait_ns = t0 + request.offset_ns - time.perf_counter_ns()
        if wait_ns > 0:
            await asyncio.sleep(wait_ns / 1e9)
        if idle:
            connection = idle.pop()
        else:
            _, connection = await loop.create_connection(lambda: _RawConnection(idle), parts.hostname or "127.0.0.1",
                                                         parts.port or 80)
        assert request.body is not None, "the raw client sends bodies built ahead"
        timing = RawTiming(request.id, t0 + request.offset_ns, time.perf_counter_ns())
        finished = loop.create_future()
        connection.send(b"%sX-Request-Id: %s%012x\r\nContent-Length: %d\r\n\r\n%s"
                        % (head, id_prefix, request.id, len(request.body), request.body), timing, finished)
        run.timings.append(timing)
        pending.append(finished)
    await asyncio.gather(*pending)
    run.cpu_s = time.process_time() - cpu_at_start
    for connection in idle:
        if connection.transport is not None:
            connection.transport.close()
    return run
