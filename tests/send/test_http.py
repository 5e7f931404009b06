import asyncio

import pytest

from replayer.send.http import ConnectError, ConnectionPool, Response, StreamError, _Connection, _Exchange

PIECES = [b'data: {"a":1}\n\n', b"d", b"ata: [DONE]\n\nxyzw"]
CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";ext=1" if p == b"d" else b"", p) for p in PIECES)
           + b"0\r\nTrailer: x\r\n\r\n")
BODY = b"".join(PIECES)


class FakeTransport:
    def __init__(self):
        self.written = []
        self.aborted = False

    def writelines(self, data):
        self.written.extend(data)

    def abort(self):
        self.aborted = True

    def is_closing(self):
        return self.aborted


class FakePool:
    def __init__(self):
        self.released = []

    def release(self, connection):
        self.released.append(connection)

    def forget(self, connection):
        pass


def feed(response: bytes, splits: list[int], sink=None) -> tuple[asyncio.Future, list, FakePool, _Connection]:
    """Parse `response` delivered in pieces cut at `splits`; returns the future, the pieces the sink saw,
    the pool and the connection."""
    loop = asyncio.new_event_loop()
    pool = FakePool()
    connection = _Connection(pool)
    connection.connection_made(FakeTransport())
    seen = []

    def default_sink(data, now):
        seen.append((data, now))
        return False

    future = loop.create_future()
    connection.send([b"request"], _Exchange(future, sink or default_sink))
    cuts = [0, *splits, len(response)]
    for start, end in zip(cuts, cuts[1:]):
        if start < end:
            connection.data_received(response[start:end])
    loop.close()
    return future, seen, pool, connection


def test_chunked_bodies_reach_the_sink_whole_however_the_reads_split():
    for cut in range(1, len(CHUNKED)):
        for second in (cut + 1, cut + 7):
            future, seen, pool, _ = feed(CHUNKED, [cut, second])
            assert b"".join(piece for piece, _ in seen) == BODY, (cut, second)
            response = future.result()
            assert (response.status, response.body, response.streamed) == (200, b"", True)
            assert response.headers[b"content-type"] == b"text/event-stream"
            assert len(pool.released) == 1


def test_a_last_chunk_in_a_read_of_its_own_ends_the_body():
    end = CHUNKED.index(b"0\r\nTrailer")
    response = CHUNKED[:end] + b"0\r\n\r\n"
    future, seen, pool, _ = feed(response, [end])
    assert future.result().streamed and len(pool.released) == 1


def test_frames_read_one_by_one_and_a_last_frame_read_with_the_bodys_end_are_taken_whole():
    head = CHUNKED[: CHUNKED.index(b"\r\n\r\n") + 4]
    frames = [b"%x\r\n%s\r\n" % (len(p), p) for p in (b'data: {"a":1}\n\n', b"data: [DONE]\n\n")]
    response = head + frames[0] + frames[1] + b"0\r\n\r\n"
    future, seen, pool, connection = feed(response, [len(head), len(head) + len(frames[0])])
    assert [piece for piece, _ in seen] == [b'data: {"a":1}\n\n', b"data: [DONE]\n\n"]
    assert future.result().streamed and pool.released == [connection] and connection.idle


def test_a_body_that_is_not_an_event_stream_is_kept_for_the_caller():
    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4\r\n\r\n<h1>"
    future, seen, _, _ = feed(response, [])
    assert not seen and future.result() == Response(200, b"<h1>", {b"content-type": b"text/html",
                                                                  b"content-length": b"4"}, streamed=False)


def test_every_piece_carries_the_time_of_its_own_read():
    future, seen, _, _ = feed(CHUNKED, [CHUNKED.index(b"1;ext")])
    assert len({now for _, now in seen}) == 2


def test_a_sink_that_says_done_resolves_before_the_framing_ends():
    future, _, pool, connection = feed(
        CHUNKED[: CHUNKED.index(b"0\r\nTrailer")], [], sink=lambda data, now: b"[DONE]" in data
    )
    assert future.done() and not pool.released and not connection.idle


@pytest.mark.parametrize(
    ("response", "status", "body", "kept"),
    [
        (b"HTTP/1.1 429 Too Many\r\nContent-Length: 5\r\n\r\nslow!", 429, b"slow!", True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\ncontent-length: 2\r\n\r\nno", 500, b"no", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
        (b"HTTP/1.1 404 Nope\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", 404, b"abc", False),
    ],
)
def test_sized_and_interim_responses(response, status, body, kept):
    for cut in range(1, len(response)):
        future, _, pool, connection = feed(response, [cut])
        assert (future.result().status, future.result().body) == (status, body)
        assert bool(pool.released) == kept and connection.transport.aborted != kept


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "malformed Content-Length"),
        (b"garbage\r\n\r\n", "malformed status line"),
    ],
)
def test_malformed_framing_breaks_the_stream(response, message):
    future, _, _, connection = feed(response, [])
    with pytest.raises(StreamError, match=message):
        future.result()
    assert connection.transport.aborted


async def _serve(handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/x"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


def test_keep_alive_reuses_one_connection_and_a_body_without_length_ends_with_the_connection():
    connections = []

    async def handler(reader, writer):
        connections.append(writer)
        for answer in (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 200 OK\r\n\r\nuntil close"):
            await _read_request(reader)
            writer.write(answer)
        writer.close()

    async def go():
        server, url = await _serve(handler)
        pool = ConnectionPool(url, {"Content-Type": "application/json"})
        first = await pool.request(b"{}")
        second = await pool.request(b"{}", extra_header=b"X-Request-Id: 7\r\n")
        pool.close()
        server.close()
        return first, second

    first, second = asyncio.run(go())
    assert [(first.status, first.body), (second.status, second.body)] == [(200, b"ok"), (200, b"until close")]
    assert len(connections) == 1


def test_a_kept_alive_connection_the_server_drops_is_retried_on_a_fresh_one():
    requests = []

    async def handler(reader, writer):
        request = await _read_request(reader)
        requests.append(request)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        try:
            await _read_request(reader)  # the second request on this connection: dropped unanswered
        finally:
            writer.close()

    async def go():
        server, url = await _serve(handler)
        pool = ConnectionPool(url, {})
        answers = [await pool.request(b"{}"), await pool.request(b"{}")]
        pool.close()
        server.close()
        return answers

    assert [(answer.status, answer.body) for answer in asyncio.run(go())] == [(200, b"ok")] * 2
    assert len(requests) == 2 and requests[0].startswith(b"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:")


class AfterWatch:
    """A watch that times the request out after a fixed delay."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s
        self.timer = None

    def arm(self, future):
        self.timer = asyncio.get_running_loop().call_later(
            self.delay_s, lambda: future.done() or future.set_exception(asyncio.TimeoutError())
        )

    def disarm(self):
        self.timer.cancel()


def test_a_watch_ends_a_silent_server_and_a_closed_port_is_a_connect_error():
    async def handler(reader, writer):
        await asyncio.sleep(5)

    async def go():
        server, url = await _serve(handler)
        with pytest.raises(asyncio.TimeoutError):
            await ConnectionPool(url, {}).request(b"{}", watch=AfterWatch(0.2))
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectError, match="cannot connect"):
            await ConnectionPool(url, {}).request(b"{}")

    asyncio.run(go())
