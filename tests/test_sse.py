import pytest

from replayer.sse import SSEParser

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
