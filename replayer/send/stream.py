"""What one SSE stream shows, chunk by chunk: output arrivals, finish, usage and errors.

Per network read the hot path does the SSE split and one regex pass that finds which keys carry
values. Inside a JSON string every quote is escaped, so a match of `"content":"x` can only be a real
key with a non-empty string value: that test is exact, and only the rare usage and error payloads
are decoded with `json`.
"""

from __future__ import annotations

import json
import re
from array import array

from replayer.records import RequestRecord
from replayer.send.http import StreamError
from replayer.send.sse import SSEError, SSEParser

_KEYS = re.compile(rb'"(content|reasoning_content|reasoning|text|finish_reason|usage|details|error)"\s*:\s*(?=(.?.?))')
"""A key of interest and the first two characters of its value, peeked at without consuming them, so
a key nested right inside another's value (TGI's `"details":{"finish_reason":…}`) is found too."""
_OUTPUT_KEYS = frozenset((b"content", b"reasoning_content", b"reasoning", b"text"))
_DONE = b"[DONE]"
_ERROR_TEXT_LIMIT = 300


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


class StreamState:
    """What one SSE stream has shown so far; called with each body piece as it arrives."""

    __slots__ = ("parser", "arrivals", "usage_payload", "finished", "done", "error", "outputs")

    def __init__(self, keep_outputs: bool = False) -> None:
        self.parser = SSEParser()
        self.arrivals = array("q")
        self.outputs: list[bytes] | None = [] if keep_outputs else None
        """The output-bearing payloads, kept only when the reply text is wanted."""
        self.usage_payload: bytes | None = None
        self.finished = False
        self.done = False
        self.error: str | None = None

    def __call__(self, data: bytes, now_ns: int) -> bool:
        """Take one network read of the body, received at `now_ns`; True once `[DONE]` has been seen."""
        try:
            events = self.parser.feed(data)
        except SSEError as exc:
            raise StreamError(str(exc)) from None
        for _, payload in events:
            self.take(payload, now_ns)
        return self.done

    def take(self, payload: bytes, now_ns: int) -> None:
        """Account for one event's data, received at `now_ns`. Event data that is not framed as a JSON
        object (`{...}`) marks the stream malformed; a full JSON decode per chunk would cost the hot
        path too much, and a cut or garbled chunk fails this check."""
        if payload == _DONE:
            self.done = True
            return
        if payload[:1] != b"{" or (payload[-1:] != b"}" and not payload.rstrip().endswith(b"}")):
            if self.error is None:
                self.error = f"malformed event (not a JSON object): {payload[:80].decode('utf-8', 'replace')!r}"
            return
        has_output = False
        for key, value in _KEYS.findall(payload):
            if key in _OUTPUT_KEYS:
                if value[:1] == b'"' and value[1:2] != b'"':
                    has_output = True
            elif key == b"finish_reason":
                if value[:1] == b'"':
                    self.finished = True
            elif key == b"usage" or key == b"details":  # (TGI's native API counts tokens in details)
                if value[:1] == b"{":
                    self.usage_payload = payload
            elif value[:1] in (b"{", b'"'):
                self.error = error_message(payload)
        if has_output:
            self.arrivals.append(now_ns)
            if self.outputs is not None:
                self.outputs.append(payload)

    def close(self, now_ns: int) -> None:
        """The body has ended: an event not followed by a blank line still counts."""
        for _, payload in self.parser.close():
            self.take(payload, now_ns)

    def reply(self) -> str:
        """The reply's visible text (reasoning excluded), decoded from the kept payloads."""
        parts = []
        for payload in self.outputs or ():
            try:
                choice = json.loads(payload)["choices"][0]
            except (ValueError, KeyError, IndexError, TypeError):
                continue
            if isinstance(choice, dict):
                text = (choice.get("delta") or {}).get("content") or choice.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)


def usage_in(payload: bytes | None) -> dict:
    if payload is None:
        return {}
    try:
        return usage_of(json.loads(payload))
    except ValueError:
        return {}


def usage_of(data: object) -> dict:
    """The token counts of a response or chunk, in OpenAI's `usage` terms: its `usage`, or the
    `details.generated_tokens` of TGI's native API."""
    if not isinstance(data, dict):
        return {}
    usage = data.get("usage")
    if isinstance(usage, dict):
        return usage
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


