"""Client chunk-path benchmark: the Python work per streamed chunk, with caches as cold as in a run.

A replay at hundreds of requests/s keeps hundreds of streams open, and each network read belongs to
a different one, so the code and the per-stream objects a read touches are rarely in cache. This
benchmark opens `--streams` connections (real `_Connection` protocols with a `StreamState` sink, on
a fake transport) and delivers `--chunks` vLLM-shaped chunk frames to each, interleaved, one read
per frame as a fresh bytes object. It prints the time per chunk of each stage, measured by adding
them one at a time:

- the HTTP layer's fast path (a whole chunk frame recognised and handed on, to a sink that does nothing);
- handing the read to the stream state (kept, with its receipt time, for a batched parse);
- the batched SSE split and typed JSON decode of every event;
- and, for comparison, the raw client's per-read work (`replayer.bench.baseline`: one regex search and
  the end-of-body check).

    .venv/bin/python benchmarks/client_chunk_path.py [--streams 512] [--chunks 128] [--rounds 3]

No network and no event loop run: what `replayer bench` adds on top (syscalls, loop wake-ups) is the
same for both clients. Each figure is the best of `--rounds`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable

from replayer.bench.baseline import _LAST_FRAME, _OUTPUT
from replayer.send.http import _Connection, _Exchange
from replayer.send.stream import StreamState

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_EVENT = (b'data: {"id":"chatcmpl-%d","object":"chat.completion.chunk","created":1796195543,"model":"m",'
          b'"choices":[{"index":0,"delta":{"content":" w%d"},"logprobs":null,"finish_reason":null}]}\n\n')


class _Pool:
    def release(self, connection: _Connection) -> None:
        pass

    def forget(self, connection: _Connection) -> None:
        pass


class _Transport:
    def writelines(self, data: list[bytes]) -> None:
        pass


class _Kept(StreamState):
    """A stream state that keeps each read but never parses (the hand-off alone)."""

    __slots__ = ()

    def flush(self) -> bool:
        self._pieces, self._piece_ns = [], self._piece_ns[:0]
        return True


def _frames(streams: int) -> list[list[bytes]]:
    events = [[_EVENT % (stream, k) for k in range(8)] for stream in range(streams)]
    return [[b"%x\r\n%s\r\n" % (len(event), event) for event in per_stream] for per_stream in events]


def _per_chunk_us(stage: str, streams: int, chunks: int, loop: asyncio.AbstractEventLoop) -> float:
    """Microseconds per chunk to take every chunk of `streams` interleaved streams through `stage`."""
    frames = _frames(streams)
    readers: list[Callable[[bytes], object]] = []
    states: list[StreamState] = []
    for _ in range(streams):
        if stage == "raw":
            tail = [b""]

            def raw_read(data: bytes, tail: list[bytes] = tail) -> object:
                _OUTPUT.search(data)
                tail[0] = (tail[0] + data)[-len(_LAST_FRAME):]
                return tail[0] == _LAST_FRAME

            readers.append(raw_read)
            continue
        state = StreamState() if stage == "parse" else _Kept()
        sink = (lambda data, now: False) if stage == "http" else state
        connection = _Connection(_Pool())  # type: ignore[arg-type]
        connection.transport = _Transport()  # type: ignore[assignment]
        connection.send([b""], _Exchange(loop.create_future(), sink))
        connection.data_received(_HEAD)
        readers.append(lambda data, connection=connection: connection.data_received(data))
        states.append(state)
    gc.disable()
    try:
        started = time.perf_counter()
        for k in range(chunks):
            for stream, read in enumerate(readers):
                read(bytes(bytearray(frames[stream][k % 8])))  # a fresh object per read, as the loop hands over
        for state in states:
            state.flush()
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    copying = _copy_us(frames, chunks)
    return elapsed / (streams * chunks) * 1e6 - copying


def _copy_us(frames: list[list[bytes]], chunks: int) -> float:
    """The cost per chunk of making the fresh read objects themselves (subtracted from every stage)."""
    started = time.perf_counter()
    for k in range(chunks):
        for per_stream in frames:
            bytes(bytearray(per_stream[k % 8]))
    return (time.perf_counter() - started) / (len(frames) * chunks) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    best = {stage: min(_per_chunk_us(stage, args.streams, args.chunks, loop) for _ in range(args.rounds))
            for stage in ("raw", "http", "kept", "parse")}
    loop.close()
    print(f"{args.streams} interleaved streams x {args.chunks} chunks, best of {args.rounds}, µs per chunk:")
    print(f"  HTTP fast path               {best['http']:.2f}")
    print(f"  + hand-off to the stream     {best['kept'] - best['http']:.2f}")
    print(f"  + batched SSE split, decode  {best['parse'] - best['kept']:.2f}")
    print(f"  = replayer                   {best['parse']:.2f}")
    print(f"  raw client's per-read work   {best['raw']:.2f}")


if __name__ == "__main__":
    main()
