import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replayer.send.http import StreamError
from replayer.send.sse import SSEParser
from replayer.send.stream import StreamState

STREAM = (b'data: {"a":1}\n\n'
          b': keep-alive comment\n\n'
          b'event: error\ndata: {"error":"boom"}\n\n'
          b'data: line one\ndata: line two\n\n'
          b'data:no-space\n\n'
          b'data: [DONE]\n\n')
EXPECTED = [(b"", b'{"a":1}'), (b"error", b'{"error":"boom"}'), (b"", b"line one\nline two"),
            (b"", b"no-space"), (b"", b"[DONE]")]


def feed_all(parser: SSEParser, pieces) -> list:
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events + parser.close()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_split_at_every_position_gives_the_same_events(newline):
    stream = STREAM.replace(b"\n", newline)
    for cut in range(len(stream) + 1):
        assert feed_all(SSEParser(), [stream[:cut], stream[cut:]]) == EXPECTED, cut


def test_byte_by_byte_with_crlf():
    stream = STREAM.replace(b"\n", b"\r\n")
    assert feed_all(SSEParser(), [stream[i:i + 1] for i in range(len(stream))]) == EXPECTED


def test_events_are_returned_as_soon_as_complete():
    parser = SSEParser()
    assert parser.feed(b'data: {"x":1}\n\ndata: {"y"') == [(b"", b'{"x":1}')]
    assert parser.feed(b':2}\n') == []
    assert parser.feed(b'\n') == [(b"", b'{"y":2}')]


def test_last_event_without_blank_line_is_kept_at_close():
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]\n") == []
    assert parser.close() == [(b"", b"[DONE]")]


def test_comment_only_and_empty_input():
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.feed(b": ping\n\n\n\n") == []
    assert parser.close() == []


# Fuzzing (hypothesis): whatever bytes a server sends, however the network splits them, the parser
# gives the same events and never raises; a stream state fed garbage fails only as a StreamError.

SSE_PIECES = st.lists(
    st.sampled_from(
        [
            b"data: ",
            b"data:",
            b"event: x",
            b": c",
            b"\n",
            b"\r\n",
            b"\r",
            b"{",
            b"}",
            b'"content":"a"',
            b"[DONE]",
            b"id: 1",
            b"\xff\xfe",
            b" ",
        ]
    )
    | st.binary(max_size=8),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(stream=SSE_PIECES | st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_any_bytes_split_anywhere_parse_to_the_same_events(stream, cuts):
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    assert feed_all(SSEParser(), pieces) == feed_all(SSEParser(), [stream])


@settings(max_examples=300, deadline=None)
@given(stream=SSE_PIECES | st.binary(max_size=300))
def test_a_stream_state_survives_any_bytes(stream):
    state = StreamState(keep_outputs=True)
    try:
        state(stream, 1)
    except StreamError:
        return
    state.close(2)
    state.reply()
    assert len(state.arrivals) <= stream.count(b"data")
