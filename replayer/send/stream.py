"""What one SSE stream shows, chunk by chunk: output arrivals, finish, usage and errors.

Per network read the hot path does the SSE split and one typed JSON decode (msgspec) of each event
into the few fields a measurement needs (`_Chunk`); every other field is skipped unread. The decode
also validates the event, so a chunk that is not valid JSON (cut by a crashing proxy, garbled) or not
shaped like a chunk fails the stream exactly. Measured on this project's 2-core VM, a vLLM chat chunk
decodes in about 1.1 µs, where the regex scan that came before took 2.7 µs and checked only the
braces around the event.
"""

from __future__ import annotations

import json
from array import array
from typing import Any

import msgspec

from replayer.records import RequestRecord
from replayer.send.http import StreamError
from replayer.send.sse import SSEError, SSEParser

_DONE = b"[DONE]"
_ERROR_TEXT_LIMIT = 300
_TYPED_ENDS = frozenset(("response.completed", "response.incomplete", "message_stop"))
"""Events that end a Responses or Messages stream whole (`incomplete`: it reached max_output_tokens)."""
_TYPED_ERRORS = frozenset(("error", "response.failed"))


class _Delta(msgspec.Struct, gc=False):
    """A chat choice's delta (or message): the output-bearing texts, reasoning included."""

    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class _Choice(msgspec.Struct, gc=False):
    delta: _Delta | None = None
    message: _Delta | None = None
    text: str | None = None
    """The output of a completions choice."""
    finish_reason: str | None = None


class _Token(msgspec.Struct, gc=False):
    """TGI's native `/generate_stream` token."""

    text: str | None = None


class _Details(msgspec.Struct, gc=False):
    """TGI's native `details`, on its last event."""

    finish_reason: str | None = None
    generated_tokens: int | None = None


class _BlockDelta(msgspec.Struct, gc=False):
    """An Anthropic Messages `delta`: a content block's text or thinking, or the message's stop reason."""

    text: str | None = None
    thinking: str | None = None
    stop_reason: str | None = None


class _Envelope(msgspec.Struct, gc=False):
    """The message of Anthropic's `message_start`, or the response of an OpenAI Responses event."""

    usage: dict[str, Any] | None = None
    error: Any = None


class _Chunk(msgspec.Struct, gc=False):
    """The fields of a streamed chunk that a measurement reads, in OpenAI's and TGI's shapes."""

    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    token: _Token | None = None
    details: _Details | None = None
    error: Any = None


class _Event(msgspec.Struct, gc=False):
    """The fields a measurement reads of an event of OpenAI's Responses API or Anthropic's Messages
    API, which name their events in `type` (a decoder of their own, so chat chunks pay nothing)."""

    type: str | None = None
    delta: str | _BlockDelta | None = None
    """A Responses text delta (a string), or a Messages delta (an object)."""
    message: str | _Envelope | None = None
    """Anthropic's `message_start` message, or the text of a Responses `error` event."""
    response: _Envelope | None = None
    usage: dict[str, Any] | None = None
    """Anthropic's `message_delta` counts."""
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_event = msgspec.json.Decoder(_Event).decode
EVENT_APIS = ("responses", "messages")
"""The APIs whose streams are typed events (`StreamState(events=True)`)."""


def error_message(body: bytes | str) -> str:
    """The human message inside an error body, whatever shape the server uses."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:_ERROR_TEXT_LIMIT]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error
        else:
            message = error if error is not None else data.get("message") or data.get("detail") or data
        return str(message)[:_ERROR_TEXT_LIMIT]
    return str(data)[:_ERROR_TEXT_LIMIT]


FLUSH_PIECES = 64
"""Body pieces held before they are parsed together (a bound on a stream's unparsed bytes)."""
_SMALLEST_RUN = 8
"""Pieces that fail the one-event-each check in runs no longer than this are parsed one by one."""


class StreamState:
    """What one SSE stream has shown so far; called with each body piece as it arrives.

    A piece is only kept, with its receipt time, as it arrives: the SSE split and the decode run
    over many pieces at once (`flush`), every FLUSH_PIECES pieces, when the body ends, and whenever
    someone needs the arrivals so far (a timeout check). Each event is still decoded on its own and
    timed by the read that completed it; only the per-read work shrinks to what a raw socket needs.
    """

    __slots__ = ("parser", "arrivals", "usage", "finished", "done", "error", "outputs", "_pieces", "_piece_ns",
                 "_events")

    def __init__(self, keep_outputs: bool = False, events: bool = False) -> None:
        self._events = events
        """The stream is typed events (Responses or Messages, `EVENT_APIS`), not chunks."""
        self.parser: SSEParser | None = SSEParser()
        """None once the stream proved unparsable."""
        self.arrivals = array("q")
        """Receipt times of the output-bearing events parsed so far (perf_counter ns)."""
        self.outputs: list[str] | None = [] if keep_outputs else None
        """The visible output texts (reasoning left out), kept only when the reply text is wanted."""
        self.usage: dict[str, Any] | None = None
        """The server's token counts in OpenAI's `usage` terms, from the last event that gave them."""
        self.finished = False
        self.done = False
        self.error: str | None = None
        self._pieces: list[bytes] = []
        self._piece_ns = array("q")

    def __call__(self, data: bytes, now_ns: int) -> bool:
        """Take one network read of the body, received at `now_ns`; True once `[DONE]` has been seen
        (so the caller need not wait for the framing)."""
        pieces = self._pieces
        pieces.append(data)
        self._piece_ns.append(now_ns)
        if len(pieces) >= FLUSH_PIECES or data.endswith(b"[DONE]\n\n"):
            if not self.flush():
                raise StreamError(self.error or "unparsable stream")
        return self.done

    def flush(self) -> bool:
        """Parse the pieces kept so far; False once the stream cannot be parsed as events (an event
        without end beyond `MAX_EVENT_BYTES`: `error` says so, and nothing more is parsed)."""
        pieces, times = self._pieces, self._piece_ns
        if pieces:
            self._pieces, self._piece_ns = [], array("q")
            self._parse(pieces, times)
        return self.parser is not None

    def _parse(self, pieces: list[bytes], times: array) -> None:
        """Parse pieces in order: a run of one-event pieces at once, the others (a read that holds
        the last events and the end, a split event) one by one through the incremental parser."""
        parser = self.parser
        if parser is None:
            return
        payloads = parser.lone_events(pieces)
        if payloads is not None:
            take = self.take
            for payload, now_ns in zip(payloads, times):
                take(payload, now_ns)
        elif len(pieces) > _SMALLEST_RUN:  # most pieces are usually lone events still: halve and retry
            half = len(pieces) // 2
            self._parse(pieces[:half], times[:half])
            self._parse(pieces[half:], times[half:])
        else:
            for piece, now_ns in zip(pieces, times):
                try:
                    events = parser.feed(piece)
                except SSEError as exc:
                    self.parser, self.error = None, str(exc)
                    return
                for _, payload in events:
                    self.take(payload, now_ns)

    def take(self, payload: bytes, now_ns: int) -> None:
        """Account for one event's data, received at `now_ns`. Data that is not a JSON object shaped
        like a chunk marks the stream malformed (its timings so far are kept)."""
        try:
            chunk = _decode_event(payload) if self._events else _decode_chunk(payload)
        except msgspec.DecodeError as exc:  # (a ValidationError too)
            if payload == _DONE:
                self.done = True
            elif self.error is None:
                self.error = f"malformed event ({exc}): {payload[:80].decode('utf-8', 'replace')!r}"
            return
        if isinstance(chunk, _Event):
            if self._take_event(chunk, payload):
                self.arrivals.append(now_ns)
            return
        has_output = False
        for choice in chunk.choices or ():
            delta = choice.delta or choice.message
            if delta is not None and (delta.content or delta.reasoning_content or delta.reasoning) or choice.text:
                has_output = True
                if self.outputs is not None:
                    self.outputs.append((delta.content if delta is not None else None) or choice.text or "")
            if choice.finish_reason is not None:
                self.finished = True
        if chunk.token is not None or chunk.details is not None or chunk.usage is not None or chunk.error is not None:
            has_output = self._take_rare(chunk, payload) or has_output
        if has_output:
            self.arrivals.append(now_ns)

    def _take_event(self, chunk: _Event, payload: bytes) -> bool:
        """An event of OpenAI's Responses API or Anthropic's Messages API (named by its `type`); True
        when it carries output text."""
        kind, delta = chunk.type, chunk.delta
        visible = reasoning = None
        if isinstance(delta, str):
            if kind == "response.output_text.delta":
                visible = delta
            elif kind == "response.reasoning_text.delta":
                reasoning = delta
        elif delta is not None:
            visible, reasoning = delta.text, delta.thinking
            if delta.stop_reason is not None:
                self.finished = True
        for usage in (chunk.usage, *(e.usage for e in (chunk.message, chunk.response) if isinstance(e, _Envelope))):
            if usage:
                self.usage = openai_usage(usage, self.usage)
        if kind in _TYPED_ENDS:
            self.finished = self.done = True
        elif kind in _TYPED_ERRORS or chunk.error is not None:
            failed = chunk.response.error if chunk.response is not None else None
            self.error = error_message(payload if failed is None else json.dumps({"error": failed}))
        if visible and self.outputs is not None:
            self.outputs.append(visible)
        return bool(visible or reasoning)

    def _take_rare(self, chunk: _Chunk, payload: bytes) -> bool:
        """The fields of the last chunk or of TGI's native shapes: usage, details, errors and tokens;
        True when the chunk carries a TGI token's output."""
        has_output = False
        token = chunk.token
        if token is not None and token.text:
            has_output = True
            if self.outputs is not None:
                self.outputs.append(token.text)
        details = chunk.details
        if details is not None:
            if details.finish_reason is not None:
                self.finished = True
            if details.generated_tokens is not None:  # TGI's native API counts tokens in details
                self.usage = {"completion_tokens": details.generated_tokens}
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.error is not None:
            self.error = error_message(payload)
        return has_output

    def close(self, now_ns: int) -> None:
        """The body has ended: an event not followed by a blank line still counts."""
        if self.flush() and self.parser is not None:
            for _, payload in self.parser.close():
                self.take(payload, now_ns)

    def reply(self) -> str:
        """The reply's visible text (reasoning excluded)."""
        return "".join(self.outputs or ())


def openai_usage(usage: dict[str, Any], earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """Token counts in OpenAI's chat terms (`prompt_tokens`, `completion_tokens`). The Responses and
    Messages APIs say `input_tokens` and `output_tokens`, and Anthropic's stream gives them in two
    events (the input in `message_start`, the final output count in `message_delta`), so the
    counts are merged over what `earlier` events gave."""
    if "input_tokens" not in usage and "output_tokens" not in usage:
        return usage
    merged = dict(earlier or {})
    if isinstance(usage.get("input_tokens"), int):
        merged["prompt_tokens"] = usage["input_tokens"]
    if isinstance(usage.get("output_tokens"), int):
        merged["completion_tokens"] = usage["output_tokens"]
    return merged


def usage_of(data: object) -> dict:
    """The token counts of a response or chunk, in OpenAI's `usage` terms: its `usage`, or the
    `details.generated_tokens` of TGI's native API."""
    if not isinstance(data, dict):
        return {}
    usage = data.get("usage")
    if isinstance(usage, dict):
        return openai_usage(usage)
    details = data.get("details")
    if isinstance(details, dict) and isinstance(details.get("generated_tokens"), int):
        return {"completion_tokens": details["generated_tokens"]}
    return {}


def apply_usage(record: RequestRecord, usage: dict, counted_output: int) -> None:
    record.served_input_tokens = usage.get("prompt_tokens")
    served_output = usage.get("completion_tokens")
    if served_output is None:
        record.served_output_tokens = counted_output
        record.output_counted = True
    else:
        record.served_output_tokens = served_output


