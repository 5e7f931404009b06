"""Incremental Server-Sent-Events parser over raw bytes (no HTTP library involved).

Network reads split events anywhere; `feed` keeps the unfinished tail and returns every event
completed so far. LF, CRLF and lone CR line ends are all accepted, comment lines (`:`) are ignored,
multi-line `data:` fields are joined with LF, as the SSE specification says.

An event that spans many reads is gathered in a list and joined once it is complete, so a huge event
costs linear time; one beyond `MAX_EVENT_BYTES` is an error rather than unbounded memory.
"""

from __future__ import annotations

import itertools

Event = tuple[bytes, bytes]
"""(event type, data): the type is b"" for the default `message` event."""

MAX_EVENT_BYTES = 64 * 1024 * 1024
"""The largest event accepted: a stream sending more without an event boundary is broken."""


_BLANK_LINES = itertools.repeat(b"\n\n")


class SSEError(ValueError):
    """The stream cannot be parsed as events (an event larger than `MAX_EVENT_BYTES`)."""


class SSEParser:
    """Turns a byte stream into complete SSE events, one `feed` per network read."""

    __slots__ = ("_parts", "_size", "_after_cr")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        """The unfinished event's bytes so far, one piece per read."""
        self._size = 0
        self._after_cr = False

    def lone_events(self, pieces: list[bytes]) -> list[bytes] | None:
        """The data of each piece when every piece is exactly one whole one-line default event and
        nothing is pending (how servers usually send: a read per event), else None: then `feed` them
        one by one. The checks run over all pieces at once, at C speed."""
        if self._parts or self._after_cr:
            return None
        body = b"".join(pieces)
        if body[-2:] != b"\n\n" or body.find(b"\r") >= 0 or not all(map(bytes.endswith, pieces, _BLANK_LINES)):
            return None
        # Every piece ends with a blank line; split at "data" fields that follow one ("data: " throughout,
        # or "data:" throughout). One data payload per piece, none holding a line end: each piece is
        # exactly one single-line event.
        prefix = b"data: " if body[5:6] == b" " else b"data:"
        if body[:5] != b"data:" or (prefix == b"data:" and body.find(b"\n\ndata: ") >= 0):
            return None
        payloads = body[len(prefix):-2].split(b"\n\n" + prefix)
        if len(payloads) != len(pieces) or b"".join(payloads).find(b"\n") >= 0:
            return None
        return payloads

    def feed(self, data: bytes) -> list[Event]:
        """Add bytes from the stream; return the events they complete, in order."""
        if self._after_cr and data[:1] == b"\n":
            data = data[1:]  # the LF of a CRLF split across reads: its CR already ended the line
        if b"\r" in data:
            self._after_cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            self._after_cr = False
        if not data:
            return []
        parts = self._parts
        if parts:
            if data.find(b"\n\n") < 0 and not (parts[-1][-1:] == b"\n" and data[:1] == b"\n"):
                self._keep(data)  # the event is still open: no join yet
                return []
            parts.append(data)
            buffer = b"".join(parts)
            self._parts, self._size = [], 0
        else:
            buffer = data
        events: list[Event] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _parse_block(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        if start < len(buffer):
            self._keep(buffer[start:] if start else buffer)
        return events

    def _keep(self, piece: bytes) -> None:
        self._size += len(piece)
        if self._size > MAX_EVENT_BYTES:
            raise SSEError(f"an event longer than {MAX_EVENT_BYTES >> 20} MiB (no blank line ends it)")
        self._parts.append(piece)

    def close(self) -> list[Event]:
        """End of stream: a last event not followed by a blank line is still returned."""
        tail = b"".join(self._parts)
        self._parts, self._size = [], 0
        event = _parse_block(tail.rstrip(b"\n")) if tail.strip() else None
        return [event] if event is not None else []


def _parse_block(block: bytes) -> Event | None:
    """One event's lines → (type, data), or None for a block with no data (comments, blank)."""
    if block.startswith(b"data:") and b"\n" not in block:  # the common one-line event
        data = block[5:]
        return b"", data[1:] if data[:1] == b" " else data
    event_type = b""
    data_lines: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event_type = value
    if not data_lines:
        return None
    return event_type, b"\n".join(data_lines)
