"""The bytes of one simulated answer in each API's shapes: the SSE events of a stream (its opening,
one event per token, its closing with the finish and the usage) and the JSON of a whole answer.

Chat and completions follow vLLM's chunks; Responses follows OpenAI's streaming events (a
`response.incomplete` when the answer reached `max_output_tokens`); Messages follows Anthropic's
events. JSON is compact, and a token's event is two constant byte strings around the token's
JSON text, so writing thousands of tokens a second costs a join.
"""

from __future__ import annotations

import json
import time
from typing import Protocol

_DONE = b"data: [DONE]\n\n"


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Framing(Protocol):
    """What the simulator writes for one answer, whatever the API."""

    def opening(self, prompt_tokens: int) -> bytes: ...

    def token(self, piece_json: bytes) -> bytes: ...

    def cut(self) -> bytes: ...

    def closing(self, reason: str, prompt_tokens: int, completion_tokens: int, include_usage: bool) -> bytes: ...

    def whole(self, text: str, prompt_tokens: int, completion_tokens: int) -> dict: ...


def frames_for(api: str, number: str, model: str) -> Framing:
    """The framing of answer `number` of `api` (chat, completions, responses or messages)."""
    if api == "responses":
        return ResponsesFrames(number, model)
    if api == "messages":
        return MessagesFrames(number, model)
    return Frames(api, number, model)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class Frames:
    """Chat and completions chunks, in the exact shapes vLLM sends."""

    def __init__(self, api: str, number: str, model: str):
        self.api = api
        self.created = int(time.time())
        if api == "chat":
            self.id, obj = f"chatcmpl-{number}", "chat.completion.chunk"
        else:
            self.id, obj = f"cmpl-{number}", "text_completion"
        self._head = (f'data: {{"id":"{self.id}","object":"{obj}","created":{self.created},'
                      f'"model":{json.dumps(model)},"choices":').encode()
        self.model = model
        if api == "chat":
            self._token_open = self._head + b'[{"index":0,"delta":{"content":'
            self._token_close = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        else:
            self._token_open = self._head + b'[{"index":0,"text":'
            self._token_close = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def opening(self, prompt_tokens: int) -> bytes:
        """The first, output-free chunk vLLM sends on chat streams (nothing on completions)."""
        if self.api != "chat":
            return b""
        return (self._head + b'[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
                b'"finish_reason":null}]}\n\n')

    def token(self, piece_json: bytes) -> bytes:
        return self._token_open + piece_json + self._token_close

    def cut(self) -> bytes:
        """A token chunk whose JSON breaks off inside the string (what a crashing proxy may forward)."""
        return self._token_open + b'"cut of\n\n'

    def closing(self, reason: str, prompt_tokens: int, completion_tokens: int, include_usage: bool) -> bytes:
        """The finish chunk, the usage chunk when asked for (`stream_options.include_usage`), `[DONE]`."""
        empty = b'"delta":{}' if self.api == "chat" else b'"text":""'
        finish = (self._head + b'[{"index":0,' + empty + b',"logprobs":null,"finish_reason":"' + reason.encode() +
                  b'"}]}\n\n')
        usage = self._head + b'[],"usage":' + _json(_usage(prompt_tokens, completion_tokens)) + b"}\n\n"
        return finish + (usage if include_usage else b"") + _DONE

    def whole(self, text: str, prompt_tokens: int, completion_tokens: int) -> dict:
        if self.api == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length"}
            obj = "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": [choice],
                "usage": _usage(prompt_tokens, completion_tokens)}


class ResponsesFrames:
    """OpenAI Responses API events: created, the message item and its text part, text deltas, then
    the part, the item and the response done, with usage (always, as the API does)."""

    def __init__(self, number: str, model: str):
        self.id = f"resp_{number}"
        self.item_id = f"msg_{number}"
        self.created = int(time.time())
        self.model = model
        self._sequence = 0
        self._token_open = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
                            b'"item_id":"' + self.item_id.encode() + b'","output_index":0,"content_index":0,'
                            b'"delta":')

    def _event(self, kind: str, fields: dict) -> bytes:
        self._sequence += 1
        return (f"event: {kind}\ndata: ".encode() + _json({"type": kind, "sequence_number": self._sequence - 1,
                                                          **fields}) + b"\n\n")

    def _response(self, status: str, output: list, usage: dict | None) -> dict:
        return {"id": self.id, "object": "response", "created_at": self.created, "status": status,
                "model": self.model, "output": output, "usage": usage}

    def _item(self, status: str, text: str | None) -> dict:
        content = [] if text is None else [{"type": "output_text", "text": text, "annotations": []}]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def opening(self, prompt_tokens: int) -> bytes:
        part = {"type": "output_text", "text": "", "annotations": []}
        return (self._event("response.created", {"response": self._response("in_progress", [], None)}) +
                self._event("response.output_item.added", {"output_index": 0, "item": self._item("in_progress", None)})
                + self._event("response.content_part.added", {"item_id": self.item_id, "output_index": 0,
                                                              "content_index": 0, "part": part}))

    def token(self, piece_json: bytes) -> bytes:
        self._sequence += 1
        return self._token_open + piece_json + b',"sequence_number":%d}\n\n' % (self._sequence - 1)

    def cut(self) -> bytes:
        return self._token_open + b'"cut of\n\n'

    def closing(self, reason: str, prompt_tokens: int, completion_tokens: int, include_usage: bool) -> bytes:
        """The done events; a reply cut at its cap is `response.incomplete`, as OpenAI's is."""
        done = "completed" if reason == "stop" else "incomplete"
        item = self._item("completed" if reason == "stop" else "incomplete", "")
        response = self._response(done, [item], self._usage(prompt_tokens, completion_tokens))
        if done == "incomplete":
            response["incomplete_details"] = {"reason": "max_output_tokens"}
        return (self._event("response.output_item.done", {"output_index": 0, "item": item}) +
                self._event(f"response.{done}", {"response": response}))

    @staticmethod
    def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
        return {"input_tokens": prompt_tokens, "output_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    def whole(self, text: str, prompt_tokens: int, completion_tokens: int) -> dict:
        response = self._response("incomplete", [self._item("incomplete", text)],
                                  self._usage(prompt_tokens, completion_tokens))
        response["incomplete_details"] = {"reason": "max_output_tokens"}
        return response


class MessagesFrames:
    """Anthropic Messages API events: message_start (with the input count), a text block's start and
    deltas, its stop, message_delta (stop reason and the output count) and message_stop."""

    _TOKEN_OPEN = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                   b'"delta":{"type":"text_delta","text":')

    def __init__(self, number: str, model: str):
        self.id = f"msg_{number}"
        self.model = model
        self._prompt_tokens = 0

    @staticmethod
    def _event(kind: str, fields: dict) -> bytes:
        return f"event: {kind}\ndata: ".encode() + _json({"type": kind, **fields}) + b"\n\n"

    def _message(self, content: list, stop_reason: str | None, prompt_tokens: int, completion_tokens: int) -> dict:
        return {"id": self.id, "type": "message", "role": "assistant", "content": content, "model": self.model,
                "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}}

    def opening(self, prompt_tokens: int) -> bytes:
        """message_start (with the input count, and one output token as Anthropic counts it) and the
        text block's start."""
        return (self._event("message_start", {"message": self._message([], None, prompt_tokens, 1)}) +
                self._event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))

    def token(self, piece_json: bytes) -> bytes:
        return self._TOKEN_OPEN + piece_json + b"}}\n\n"

    def cut(self) -> bytes:
        return self._TOKEN_OPEN + b'"cut of\n\n'

    def closing(self, reason: str, prompt_tokens: int, completion_tokens: int, include_usage: bool) -> bytes:
        stop = "end_turn" if reason == "stop" else "max_tokens"
        return (self._event("content_block_stop", {"index": 0}) +
                self._event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                              "usage": {"output_tokens": completion_tokens}}) +
                self._event("message_stop", {}))

    def whole(self, text: str, prompt_tokens: int, completion_tokens: int) -> dict:
        return self._message([{"type": "text", "text": text}], "max_tokens", prompt_tokens, completion_tokens)
