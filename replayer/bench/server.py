"""The bench's stream server: fixed-pace vLLM-shaped SSE streams on raw asyncio protocols.

A bench step measures the client, so the server must never be the bottleneck and must say exactly
when it did what. This one does nothing but stream: each request gets one token chunk every
`ms_per_token`, whatever the load, in the chunk shapes vLLM sends, and its truth log records when
each request arrived and when each chunk was written, on the monotonic clock the client reads.

Two emission modes, because servers differ in when their writes land:
- `step`: one timer for the whole server writes the next chunk of every open stream at once, as an
  engine step does (vLLM, SGLang, the built-in simulator): the client reads bursts.
- `spread`: every stream keeps its own pace, started when its request arrived, as a server that paces
  each stream on its own does: writes are spread evenly and the client wakes once per chunk. (The
  streams due are written by one 1 ms tick, the resolution of uvloop's timers anyway: a timer object
  per chunk would cost this server more than the client it measures.)

Run as `python -m replayer.bench.server --port P [--emission spread] [--truth-log F]`; SIGINT or
SIGTERM stops it and flushes the truth log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from array import array
from pathlib import Path
from typing import IO

from replayer.send.eventloop import new_event_loop, raise_fd_limit, reserve_fd_table, settle_heap
from replayer.sim.frames import Frames
from replayer.sim.server import DEFAULT_MODEL, BadRequest, Simulator, SimulatorConfig, truth_line

EMISSIONS = ("step", "spread")
"""How the server times its writes: all streams in one engine step, or each stream on its own timer."""
_MAX_REQUEST_BYTES = 64 * 1024 * 1024
_SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n")
_LAST_FRAME = b"0\r\n\r\n"
_PATHS = {b"/v1/chat/completions": "chat", b"/v1/completions": "completions"}


def _frame(data: bytes) -> bytes:
    """One chunked-encoding frame."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _plain(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(), content_type, len(body), body)


class _Stream:
    """One streamed response in progress."""

    __slots__ = ("connection", "frames", "request_id", "received_ns", "prompt_tokens", "target", "written",
                 "include_usage", "chunk_ns")

    def __init__(self, connection: _Connection, frames: Frames, request_id: bytes | None, received_ns: int,
                 prompt_tokens: int, target: int, include_usage: bool):
        self.connection = connection
        self.frames = frames
        self.request_id = request_id
        self.received_ns = received_ns
        self.prompt_tokens = prompt_tokens
        self.target = target
        self.written = 0
        self.include_usage = include_usage
        self.chunk_ns = array("q")


_TICK_NS = 1_000_000
"""Spread mode's tick."""


class StreamServer:
    """Serves fixed-pace streams: `step` runs each engine step (step mode), `tick` each millisecond
    (spread mode)."""

    def __init__(self, ms_per_token: float, emission: str, truth: IO[str] | None):
        self.period_ns = int(ms_per_token * 1e6)
        self.emission = emission
        self.truth = truth
        self.simulator = Simulator(SimulatorConfig())
        """For the exact prompt-token count and the reply's words, as the simulator gives them."""
        self.open: list[_Stream] = []
        """Streams waiting for their next step (step mode)."""
        self.due: dict[int, list[_Stream]] = {}
        """Streams by the tick their next chunk is due in (spread mode)."""
        self.loop = asyncio.get_running_loop()
        self._counter = 0
        self._next_step_ns = 0
        self._last_tick = 0

    def start(self, connection: _Connection, api: str, body: bytes, request_id: bytes | None,
              received_ns: int) -> None:
        """Answer one completion request on `connection`."""
        try:
            request = json.loads(body)
            prompt_tokens = self.simulator.prompt_tokens(api, request)
            target = int(request.get("max_completion_tokens") or request.get("max_tokens") or 256)
        except (ValueError, TypeError, AttributeError, BadRequest):
            connection.respond(_plain("400 Bad Request", b'{"object":"error","message":"bad request body"}'))
            return
        if not request.get("stream") or target <= 0:
            connection.respond(_plain("400 Bad Request", b'{"object":"error","message":"only streams are served"}'))
            return
        self._counter += 1
        frames = Frames(api, str(self._counter), DEFAULT_MODEL)
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        stream = _Stream(connection, frames, request_id, received_ns, prompt_tokens, target, include_usage)
        opening = frames.opening(prompt_tokens)
        connection.respond(_SSE_HEAD + _frame(opening) if opening else _SSE_HEAD)
        if self.emission == "spread":
            if not self.due:  # the ticks had stopped
                self._last_tick = time.perf_counter_ns() // _TICK_NS
                self.loop.call_later(_TICK_NS / 1e9, self.tick)
            self._pace(stream)
            return
        if not self.open:  # no step is due: the engine wakes up
            self._next_step_ns = time.perf_counter_ns() + self.period_ns
            self.loop.call_at(self._loop_time(self._next_step_ns), self.step)
        self.open.append(stream)

    def _loop_time(self, perf_ns: int) -> float:
        """The loop's clock time of a perf_counter instant."""
        return self.loop.time() + (perf_ns - time.perf_counter_ns()) / 1e9

    def step(self) -> None:
        """Step mode: the next chunk of every open stream, then the next step one period on."""
        streams, self.open = self.open, []
        for stream in streams:
            if self._write_next(stream):
                self.open.append(stream)
        self._next_step_ns += self.period_ns
        if self.open:
            self.loop.call_at(self._loop_time(self._next_step_ns), self.step)

    def _pace(self, stream: _Stream) -> None:
        """Spread mode: file the stream under the tick of its next chunk, a period after the last one."""
        due = (stream.received_ns + (stream.written + 1) * self.period_ns) // _TICK_NS
        self.due.setdefault(max(due, self._last_tick + 1), []).append(stream)

    def tick(self) -> None:
        """Spread mode: write every chunk due by now, then tick again while any stream is open."""
        now = time.perf_counter_ns() // _TICK_NS
        due = self.due
        for tick in range(self._last_tick + 1, now + 1):
            self._last_tick = tick
            for stream in due.pop(tick, ()):
                if self._write_next(stream):
                    self._pace(stream)
        if due:
            self.loop.call_later(_TICK_NS / 1e9, self.tick)

    def _write_next(self, stream: _Stream) -> bool:
        """Write the stream's next token chunk (with its ending after the last); True while more follow."""
        connection = stream.connection
        if connection.closed:
            return False
        frames = stream.frames
        data = frames.token(self.simulator.piece(stream.written))
        stream.written += 1
        stream.chunk_ns.append(time.perf_counter_ns())
        if stream.written < stream.target:
            connection.write(_frame(data))
            return True
        tail = frames.closing("length", stream.prompt_tokens, stream.target, stream.include_usage)
        connection.write(_frame(data + tail) + _LAST_FRAME)
        connection.answered()
        if self.truth is not None:
            request_id = stream.request_id.decode("latin-1") if stream.request_id else None
            self.truth.write(truth_line(request_id, stream.received_ns, stream.chunk_ns))
        return False


class _Connection(asyncio.Protocol):
    """One keep-alive client connection: reads a request, hands it to the server, waits for the next."""

    def __init__(self, server: StreamServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        received_ns = time.perf_counter_ns()
        self.buffer += data
        if not self.busy:
            self._take_request(received_ns)

    def _take_request(self, received_ns: int) -> None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_REQUEST_BYTES:
                self.close()
            return
        lines = buffer[:end].split(b"\r\n")
        method, path = (lines[0].split(b" ") + [b"", b""])[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0") or 0)
        if len(buffer) < end + 4 + length:
            return
        body, self.buffer = buffer[end + 4:end + 4 + length], buffer[end + 4 + length:]
        self.busy = True
        api = _PATHS.get(path.split(b"?")[0])
        if method == b"GET" and path == b"/v1/models":
            self.respond(_plain("200 OK", json.dumps({"object": "list", "data": [
                {"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "replayer"}]}).encode()))
        elif method == b"POST" and api is not None:
            self.server.start(self, api, body, headers.get(b"x-request-id"), received_ns)
        else:
            self.respond(_plain("404 Not Found", b'{"object":"error","message":"not found"}'))

    def respond(self, data: bytes) -> None:
        self.write(data)
        if not data.startswith(_SSE_HEAD):
            self.answered()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def answered(self) -> None:
        """The response is complete: take the next request, if one came already."""
        if not self.busy:
            return
        self.busy = False
        if self.buffer:
            self._take_request(time.perf_counter_ns())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


async def serve(port: int, ms_per_token: float, emission: str, truth_log: Path | None,
                host: str = "127.0.0.1") -> None:
    """Serve on `host:port` until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    truth = open(truth_log, "w", encoding="utf-8") if truth_log is not None else None
    try:
        server = StreamServer(ms_per_token, emission, truth)
        listener = await loop.create_server(lambda: _Connection(server), host, port, backlog=4096,
                                            reuse_address=True)
        settle_heap()
        stopped = asyncio.Event()
        for name in ("SIGINT", "SIGTERM"):
            loop.add_signal_handler(getattr(signal, name), stopped.set)
        await stopped.wait()
        listener.close()
    finally:
        if truth is not None:
            truth.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m replayer.bench.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ms-per-token", type=float, default=10.0)
    parser.add_argument("--emission", choices=EMISSIONS, default="step")
    parser.add_argument("--truth-log", type=Path)
    args = parser.parse_args(argv)
    reserve_fd_table(min(raise_fd_limit(), 65_536))
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(args.port, args.ms_per_token, args.emission, args.truth_log))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
