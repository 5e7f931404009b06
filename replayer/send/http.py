"""A small HTTP/1.1 client for one server, written on asyncio protocols for the measuring hot path.

Each network read lands in `data_received`, is timestamped there before anything else happens, and
its body bytes go straight to the caller's sink in the same call: no stream reader, no future and no
task switch per chunk. A general-purpose client (aiohttp) costs a wake-up of the reading task per
read; at thousands of token chunks a second that is most of the client's CPU and adds directly to
the measured latencies.

It speaks what OpenAI-compatible servers answer: a status line and headers, then a body framed by
`Content-Length`, `Transfer-Encoding: chunked` or the end of the connection. Connections are kept
alive and reused, never capped (an open loop must not queue requests behind a connection limit).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from replayer.records import CONNECT, DNS, TIMEOUT_CONNECT, TLS

Sink = Callable[[bytes, int], bool]
"""Receives each piece of a 200 event-stream body with its receipt time (perf_counter_ns); returns True
once the payload is logically complete (an SSE `[DONE]`), so the caller need not wait for the framing.
It may raise `StreamError` to abandon the response (the connection is then closed)."""


class Watch(Protocol):
    """Ends a request that has waited too long: armed with the response's future once the request is
    on the wire, it may set an `asyncio.TimeoutError` on it; disarmed when the response settles."""

    def arm(self, future: asyncio.Future) -> None: ...

    def disarm(self) -> None: ...


_MAX_HEAD_BYTES = 65_536
_LAST_CHUNK = b"0\r\n\r\n"
"""The chunked body's end: its zero-size last chunk without trailers."""


@functools.lru_cache(maxsize=4096)
def _frame_head(frame_bytes: int) -> bytes:
    """The size line (lower-case hex, CRLF) that a single chunk frame of `frame_bytes` bytes in all
    starts with, or b"\n" (never a frame's start) when no frame has that length. There is at most one:
    a longer size line leaves a smaller chunk, which cannot need more digits."""
    lines = (b"%x\r\n" % size for size in range(frame_bytes - 5, frame_bytes - 13, -1) if size > 0)
    return next((line for line in lines if len(line) + int(line, 16) + 2 == frame_bytes), b"\n")


def _frame_payload(data: bytes) -> bytes | None:
    """The payload of `data` if it is exactly one whole chunk frame, else None."""
    head = _frame_head(len(data))
    return data[len(head):-2] if data.startswith(head) and data.endswith(b"\r\n") else None


class ConnectError(Exception):
    """No response began: the connection could not be opened, or closed before a status line.
    `kind` names the failure for the request's record."""

    kind = CONNECT


class DNSError(ConnectError):
    """The server's host name did not resolve."""

    kind = DNS


class TLSError(ConnectError):
    """The TLS handshake failed (certificate not trusted, wrong name, or the server does not speak TLS)."""

    kind = TLS


class ConnectTimeout(ConnectError):
    """Opening the connection took longer than the connect timeout."""

    kind = TIMEOUT_CONNECT


class StreamError(Exception):
    """The response began but broke: connection lost mid-body, or malformed framing."""


@dataclass(frozen=True)
class Response:
    """A finished (or, with a sink that said done, logically finished) response."""

    status: int
    body: bytes
    """The whole body, unless a sink consumed it (then b"")."""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    """Header names lower-cased, values as sent."""
    streamed: bool = False
    """True when the body went to the sink."""


class _Exchange:
    """One request's response as it is parsed: head, then body pieces to the sink or a buffer."""

    __slots__ = ("future", "sink", "status", "head", "headers", "streamed", "body_parts")

    def __init__(self, future: asyncio.Future, sink: Sink | None):
        self.future = future
        self.sink = sink
        self.status = 0
        self.head = b""
        self.headers: dict[bytes, bytes] = {}
        self.streamed = False
        self.body_parts: list[bytes] = []

    def resolve(self) -> None:
        if not self.future.done():
            body = b"".join(self.body_parts)
            self.body_parts = []
            self.future.set_result(Response(self.status, body, self.headers, self.streamed))

    def fail(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parses each response as its bytes arrive."""

    __slots__ = ("pool", "transport", "closed", "exchange", "received", "_deliver", "_sink", "_frame_sink",
                 "_length", "_chunked", "_chunk_left", "_line", "_trailers", "_keep_alive")

    def __init__(self, pool: ConnectionPool):
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.exchange: _Exchange | None = None
        self.received = False
        self._deliver: Callable[[bytes, int], None] | None = None
        self._sink: Sink | None = None
        """The exchange's sink while a chunked event stream is being read."""
        self._frame_sink: Sink | None = None
        """The same, but only while the body is at a frame boundary: the next read may be one whole frame."""
        self._length = -1
        """Body bytes still expected with Content-Length; -1 when chunked or until close."""
        self._chunked = False
        self._chunk_left = 0
        self._line = b""
        self._trailers = False
        self._keep_alive = True

    # -- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        try:
            sink = self._frame_sink
            if sink is not None:  # the usual reads of an event stream: one whole chunk frame...
                payload = _frame_payload(data)
                if payload is not None:
                    if sink(payload, now) and self.exchange is not None:
                        self.exchange.resolve()
                    return
                if data.endswith(_LAST_CHUNK) and (payload := _frame_payload(data[:-5])) is not None:
                    sink(payload, now)  # ...or one and the body's last chunk
                    self._finish()
                    return
            self.received = True
            if self._deliver is None:
                data = self._read_head(data)
                if self._deliver is None:
                    return
                if self._length == 0:
                    self._finish()
                    return
            if self._chunked:
                self._read_chunked(data, now)
            elif self._length >= 0:
                self._read_sized(data, now)
            else:
                self._deliver(data, now)
        except StreamError as exc:
            self._break(exc)

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost decides what the EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        if self._deliver is not None and not self._chunked and self._length < 0:
            exchange.resolve()  # a body delimited by the end of the connection
        elif self._deliver is None and not self.received:
            exchange.fail(ConnectError("the server closed the connection before responding"))
        elif self._deliver is None:
            exchange.fail(ConnectError("the connection closed inside the response headers"))
        else:
            exchange.fail(StreamError(f"connection lost mid-response{f' ({exc})' if exc else ''}"))

    # -- sending

    def send(self, data: list[bytes], exchange: _Exchange) -> None:
        self.exchange = exchange
        self.received = False
        self._deliver = None
        self._sink = self._frame_sink = None
        self._line = b""
        self._chunk_left = 0
        self._trailers = False
        assert self.transport is not None, "send on a made connection"
        self.transport.writelines(data)

    # -- parsing

    def _read_head(self, data: bytes) -> bytes:
        """Consume response-head bytes; once the head is complete, set up the body and return the rest."""
        exchange = self.exchange
        if exchange is None:
            raise StreamError("the server sent bytes without a request")
        head = exchange.head + data if exchange.head else data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > _MAX_HEAD_BYTES:
                raise StreamError("response headers longer than 64 KiB")
            exchange.head = head
            return b""
        exchange.head = b""
        lines = head[:end].split(b"\r\n")
        try:
            version, status_text = lines[0].split(b" ", 2)[:2]
            status = int(status_text)
        except ValueError:
            raise StreamError(f"malformed status line {lines[0][:80]!r}") from None
        if 100 <= status < 200:  # interim response: the real one follows
            return self._read_head(head[end + 4:]) if len(head) > end + 4 else b""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        exchange.status = status
        exchange.headers = headers
        self._keep_alive = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
        self._chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        try:
            self._length = -1 if self._chunked else int(headers.get(b"content-length", -1))
        except ValueError:
            raise StreamError("malformed Content-Length") from None
        if status in (204, 304):
            self._length = 0
        if self._length < 0 and not self._chunked:
            self._keep_alive = False
        content_type = headers.get(b"content-type")
        streamed = content_type is None or b"event-stream" in content_type.lower()
        sink = exchange.sink if status == 200 and streamed else None
        exchange.streamed = sink is not None
        self._deliver = self._to_sink(exchange, sink) if sink else lambda data, now: exchange.body_parts.append(data)
        self._sink = self._frame_sink = sink if self._chunked else None
        return head[end + 4 :]

    @staticmethod
    def _to_sink(exchange: _Exchange, sink: Sink) -> Callable[[bytes, int], None]:
        return lambda data, now: exchange.resolve() if sink(data, now) else None

    def _read_sized(self, data: bytes, now: int) -> None:
        left, deliver = self._length, self._deliver
        assert deliver is not None  # (the head has been read)
        if len(data) > left:
            data = data[:left]
        if data:
            deliver(data, now)
        self._length = left - len(data)
        if self._length == 0:
            self._finish()

    def _read_chunked(self, data: bytes, now: int) -> None:
        deliver = self._deliver
        assert deliver is not None  # (the head has been read)
        position, size = 0, len(data)
        while position < size:
            left = self._chunk_left
            if left:
                end = min(position + left, size)
                deliver(data if position == 0 and end == size else data[position:end], now)
                self._chunk_left = left - (end - position)
                position = end
                continue
            newline = data.find(b"\n", position)
            if newline < 0:
                self._line += data[position:]
                if len(self._line) > _MAX_HEAD_BYTES:
                    raise StreamError("malformed chunked encoding (endless size line)")
                break
            line = (self._line + data[position:newline] if self._line else data[position:newline]).rstrip(b"\r")
            self._line = b""
            position = newline + 1
            if self._trailers:
                if not line:
                    self._finish()
                    return
            elif line:
                try:
                    self._chunk_left = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    raise StreamError(f"malformed chunk size {line[:40]!r}") from None
                if self._chunk_left < 0:
                    raise StreamError(f"malformed chunk size {line[:40]!r}")
                self._trailers = self._chunk_left == 0
        at_boundary = not self._chunk_left and not self._line and not self._trailers
        self._frame_sink = self._sink if at_boundary else None

    def _finish(self) -> None:
        exchange, self.exchange = self.exchange, None
        self._deliver = None
        self._sink = self._frame_sink = None
        if exchange is not None:
            exchange.resolve()
        if self._keep_alive and not self.closed:
            self.pool.release(self)
        else:
            self.close()

    def _break(self, exc: Exception) -> None:
        exchange, self.exchange = self.exchange, None
        self._sink = self._frame_sink = None
        if exchange is not None:
            exchange.fail(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def idle(self) -> bool:
        return self.exchange is None and not self.closed


class ConnectionPool:
    """Keep-alive connections to one server, opened on demand; `request` sends one POST."""

    def __init__(self, url: str, headers: dict[str, str], connect_timeout_s: float = 30.0, verify_tls: bool = True):
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = _tls_context(verify_tls) if parts.scheme == "https" else None
        self.connect_timeout_s = connect_timeout_s
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    async def request(
        self, body: bytes, sink: Sink | None = None, extra_header: bytes = b"", watch: Watch | None = None
    ) -> Response:
        """POST `body`; a 200 event-stream body goes to `sink` if given. `extra_header` is one
        `Name: value\r\n` line (the request id). `watch` may end the wait with `asyncio.TimeoutError`;
        that or cancelling aborts the connection."""
        data = [b"%s%sContent-Length: %d\r\n\r\n" % (self._head, extra_header, len(body)), body]
        connection, fresh = self._take_idle(), False
        while True:
            if connection is None:
                connection, fresh = await self._open(), True
            future = asyncio.get_running_loop().create_future()
            connection.send(data, _Exchange(future, sink))
            if watch is not None:
                watch.arm(future)
            try:
                return await future
            except ConnectError:
                if fresh:
                    raise
                connection = None  # a kept-alive connection the server had just closed: once more on a fresh one
            except (asyncio.CancelledError, asyncio.TimeoutError):
                connection.close()
                raise
            finally:
                if watch is not None:
                    watch.disarm()

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.idle and connection.transport is not None and not connection.transport.is_closing():
                return connection
        return None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        where = f"{self.host}:{self.port}"
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                ),
                self.connect_timeout_s,
            )
        except asyncio.TimeoutError:  # (an OSError too, since Python 3.11)
            raise ConnectTimeout(f"connecting to {where} took over {self.connect_timeout_s:g} s") from None
        except socket.gaierror as exc:
            raise DNSError(f"cannot resolve {self.host}: {exc.strerror or exc}") from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSError(
                f"TLS handshake with {where} failed: {getattr(exc, 'verify_message', None) or exc}"
            ) from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {where}: {exc.strerror or exc}") from None
        self._all.add(connection)
        return connection

    def release(self, connection: _Connection) -> None:
        self._idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        self._all.discard(connection)

    def close(self) -> None:
        """Abort every connection (in-flight responses fail as broken streams)."""
        for connection in list(self._all):
            connection.close()
        self._all.clear()
        self._idle.clear()


def _tls_context(verify: bool) -> ssl.SSLContext:
    """The system's trusted CAs with host-name checks; with `verify` off, any certificate (--insecure)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
