"""The built-in OpenAI-compatible server, with a continuous-batching latency model.

One engine task runs steps like vLLM's scheduler: waiting requests are admitted in arrival order
while the KV-token budget and the running-sequence cap allow; each step prefills up to a token
budget of prompts (chunked prefill) and decodes one token for every running sequence. A step takes
`decode_base_ms + decode_ms_per_seq × running + prefill tokens / prefill_tokens_per_ms`, so a burst
raises TTFT (queueing, prefill) and TPOT (bigger batches) the way a real engine does.

Prompt tokens are counted with the same tokenizer the client uses; `max_tokens`, `ignore_eos`,
`min_tokens` and `stream_options.include_usage` are honoured. `Faults` inject HTTP errors, refused
connections, stalls and broken streams of every kind a client must survive.

With a truth log, it writes one JSON line per streamed response: the request id (`X-Request-Id`),
when the handler received the request and when each token chunk was written, all on the monotonic
clock that the client's `perf_counter_ns` also reads. `replayer bench` compares these with the
client's records to measure how much the client inflates TTFT and ITL.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiohttp import web

from replayer.errors import ConfigError
from replayer.eventloop import new_event_loop, raise_fd_limit, reserve_fd_table, settle_heap
from replayer.prompts import PromptSynthesizer, TemplateOverhead
from replayer.tokenizer import DEFAULT_TOKENIZER, Tokenizer, load_tokenizer

DEFAULT_MODEL = "replayer-sim"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
SHUTDOWN_TIMEOUT_S = 1.0
"""On shutdown, in-flight responses get this long before they are cut (a stalled one never ends)."""


@dataclass(frozen=True)
class EngineModel:
    """Latency and capacity of the simulated engine (defaults: roughly a 7-8B model on one big GPU)."""

    prefill_tokens_per_ms: float = 50.0
    decode_base_ms: float = 10.0
    decode_ms_per_seq: float = 0.1
    kv_tokens: int = 400_000
    max_running: int = 256
    max_prefill_tokens_per_step: int = 2048
    max_model_len: int = 200_000

    def __post_init__(self) -> None:
        for name in ("prefill_tokens_per_ms", "decode_base_ms", "kv_tokens", "max_running",
                     "max_prefill_tokens_per_step", "max_model_len"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"simulator {name.replace('_', '-')} must be > 0")
        if self.decode_ms_per_seq < 0:
            raise ConfigError("simulator decode-ms-per-seq must be >= 0")
        if self.max_model_len > self.kv_tokens:
            raise ConfigError("simulator max-model-len must not exceed kv-tokens")

    def step_ms(self, decoding: int, prefill_tokens: int) -> float:
        return self.decode_base_ms + self.decode_ms_per_seq * decoding + prefill_tokens / self.prefill_tokens_per_ms


FAULT_NAMES = ("refuse", "reset", "stall", "drip", "malformed", "truncate", "huge", "wrong-type")
"""The faults besides HTTP errors, each with its `<name>_rate` field in `Faults` (drawn in this order)."""
_STREAM_FAULTS = ("reset", "drip", "malformed", "truncate", "huge")
"""Faults that only a streamed answer can show (a non-streamed request drawing one is served normally)."""


def rate_field(fault: str) -> str:
    """The `Faults` field holding a fault's rate (`wrong-type` → `wrong_type_rate`)."""
    return f"{fault.replace('-', '_')}_rate"


@dataclass(frozen=True)
class Faults:
    """Injected misbehaviour, so that every failure path of a client can be exercised. Each rate is a
    fraction of requests; one draw per request picks at most one fault, so the rates add up to at
    most 1. Stream faults strike half way through the tokens."""

    error_rates: tuple[tuple[int, float], ...] = ()
    """(HTTP status, fraction answered with it), e.g. ((429, 0.05), (503, 0.01))."""
    retry_after_s: float | None = None
    """A `Retry-After` header on injected 429 and 503 answers, if set."""
    refuse_rate: float = 0.0
    """Connections closed before any response."""
    reset_rate: float = 0.0
    """Streams whose connection is reset mid-way."""
    stall_rate: float = 0.0
    stall_s: float = 0.0
    """How long a stall before the first token lasts (`inf`: forever)."""
    drip_rate: float = 0.0
    drip_s: float = 1.0
    """The gap before each token of a dripping stream."""
    malformed_rate: float = 0.0
    """Streams with one chunk cut inside its JSON."""
    truncate_rate: float = 0.0
    """Streams ended cleanly but early, with neither a finish_reason nor `[DONE]`."""
    huge_rate: float = 0.0
    huge_bytes: int = 4 * 1024 * 1024
    """The size of the one huge content chunk such a stream carries."""
    wrong_type_rate: float = 0.0
    """HTTP 200 answers with an HTML page instead of an event stream or JSON."""
    seed: int = 0

    def __post_init__(self) -> None:
        rates = self._rates()
        for name, rate in rates:
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"simulator {name}-rate must be in [0, 1], got {rate}")
        if sum(rate for _, rate in rates) > 1.0 + 1e-9:
            raise ConfigError("simulator fault rates add up to more than 1")
        for status, _ in self.error_rates:
            if not 400 <= status <= 599:
                raise ConfigError(f"simulator error status must be an HTTP error status (400-599), got {status}")
        if self.stall_s < 0 or self.drip_s < 0 or (self.retry_after_s or 0) < 0:
            raise ConfigError("simulator stall-s, drip-s and retry-after must be >= 0")
        if self.huge_bytes < 1:
            raise ConfigError("simulator huge-bytes must be >= 1")

    def _rates(self) -> list[tuple[str | int, float]]:
        return [*self.error_rates, *((name, getattr(self, rate_field(name))) for name in FAULT_NAMES)]

    @property
    def active(self) -> bool:
        return any(rate for _, rate in self._rates())

    def pick(self, draw: float) -> str | int | None:
        """The fault of a request whose uniform draw is `draw`: an HTTP status, a fault name, or None."""
        edge = 0.0
        for fault, rate in self._rates():
            edge += rate
            if draw < edge:
                return fault
        return None


@dataclass(frozen=True)
class SimulatorConfig:
    model: str = DEFAULT_MODEL
    tokenizer: str = DEFAULT_TOKENIZER
    engine: EngineModel = field(default_factory=EngineModel)
    faults: Faults = field(default_factory=Faults)
    template: TemplateOverhead = field(default_factory=TemplateOverhead)
    """Tokens a chat template would add to each prompt's count (BASE per request, PER_MSG per message)."""
    truth_log: Path | None = None
    """Where to write each streamed response's server-side timings (JSON lines), if anywhere."""


class _Sequence:
    """One request inside the engine."""

    __slots__ = ("prompt_tokens", "target_tokens", "prefilled", "generated", "ready", "on_token")

    def __init__(self, prompt_tokens: int, target_tokens: int):
        self.prompt_tokens = prompt_tokens
        self.target_tokens = target_tokens
        self.prefilled = 0
        self.generated = 0
        self.ready = asyncio.Event()
        """Set at each new token for a handler that waits (non-streaming, or a stream during a stall)."""
        self.on_token: Callable[[], None] | None = None
        """Called at each new token instead, once a stream writes its tokens directly."""

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.target_tokens

    async def made(self, tokens: int) -> None:
        """Return once the engine has generated `tokens` tokens of this sequence."""
        while self.generated < tokens:
            await self.ready.wait()
            self.ready.clear()


class Engine:
    """The continuous-batching scheduler loop: admits, prefills and decodes in timed steps."""

    def __init__(self, model: EngineModel):
        self.model = model
        self.waiting: deque[_Sequence] = deque()
        self.running: list[_Sequence] = []
        self.kv_used = 0
        self._wake = asyncio.Event()

    def submit(self, sequence: _Sequence) -> None:
        self.waiting.append(sequence)
        self._wake.set()

    def abort(self, sequence: _Sequence) -> None:
        """Forget a sequence whose client went away, freeing its memory (as vLLM aborts it)."""
        if sequence in self.running:
            self.running.remove(sequence)
            self.kv_used -= sequence.kv_tokens
        elif sequence in self.waiting:
            self.waiting.remove(sequence)

    def _admit(self) -> None:
        model = self.model
        while self.waiting and len(self.running) < model.max_running:
            head = self.waiting[0]
            if self.kv_used + head.kv_tokens > model.kv_tokens:
                break  # first come, first served: the head blocks until memory frees
            self.waiting.popleft()
            self.kv_used += head.kv_tokens
            self.running.append(head)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_step = loop.time()
        while True:
            if not self.waiting and not self.running:
                self._wake.clear()
                await self._wake.wait()
                next_step = loop.time()
            self._admit()
            budget = self.model.max_prefill_tokens_per_step
            emitting: list[_Sequence] = []
            decoding = 0
            for sequence in self.running:
                missing = sequence.prompt_tokens - sequence.prefilled
                if missing == 0:
                    decoding += 1
                    emitting.append(sequence)
                elif budget > 0:
                    take = min(missing, budget)
                    sequence.prefilled += take
                    budget -= take
                    if take == missing:
                        emitting.append(sequence)  # the prefill step yields the first token
            next_step += self.model.step_ms(decoding, self.model.max_prefill_tokens_per_step - budget) / 1000
            await asyncio.sleep(max(0.0, next_step - loop.time()))
            self._emit(emitting)

    def _emit(self, emitting: list[_Sequence]) -> None:
        finished = False
        for sequence in emitting:
            sequence.generated += 1
            if sequence.on_token is None:
                sequence.ready.set()
            else:
                sequence.on_token()
            finished = finished or sequence.generated >= sequence.target_tokens
        if finished:
            keep = []
            for sequence in self.running:
                if sequence.generated >= sequence.target_tokens:
                    self.kv_used -= sequence.kv_tokens
                else:
                    keep.append(sequence)
            self.running = keep


class _BadRequest(Exception):
    """A request the simulator refuses with HTTP 400 and this message."""


def _prompt_parts(api: str, body: dict) -> list[str]:
    """The texts the prompt is made of: one per chat message (a chat template keeps messages apart, so
    each is tokenized on its own), or the completion prompt."""
    if api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty list")
        parts = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                parts.append("".join(p.get("text", "") for p in content if isinstance(p, dict)))
            elif isinstance(content, str):
                parts.append(content)
        return parts
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = "".join(p for p in prompt if isinstance(p, str))
    if not isinstance(prompt, str):
        raise _BadRequest("'prompt' must be a string")
    return [prompt]


def _positive_int(body: dict, *names: str, default: int) -> int:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _BadRequest(f"'{name}' must be a non-negative integer")
            return value
    return default


class Simulator:
    """The HTTP side: request parsing, fault injection, SSE framing, on top of one `Engine`."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.tokenizer: Tokenizer = load_tokenizer(config.tokenizer)
        words = PromptSynthesizer(self.tokenizer).words
        self._pieces = [json.dumps(word).encode() for word in words]
        self._random = random.Random(config.faults.seed)
        self._counter = 0
        self.engine: Engine | None = None
        self._engine_task: asyncio.Task | None = None
        self.requests_received = 0
        self._truth: IO[str] | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.on_startup.append(self._start_engine)
        app.on_cleanup.append(self._stop_engine)
        return app

    async def _start_engine(self, app: web.Application) -> None:
        settle_heap()
        if self.config.truth_log is not None:
            self._truth = open(self.config.truth_log, "w", encoding="utf-8")
        self.engine = Engine(self.config.engine)
        self._engine_task = asyncio.get_running_loop().create_task(self.engine.run())

    async def _stop_engine(self, app: web.Application) -> None:
        if self._truth is not None:
            self._truth.close()
        self._engine_task.cancel()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "completions")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.config.model, "object": "model", "created": 0, "owned_by": "replayer",
             "max_model_len": self.config.engine.max_model_len}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        """The engine's state under vLLM's Prometheus names, so `--scrape-metrics` is tested end to end."""
        engine = self.engine
        running, waiting = (len(engine.running), len(engine.waiting)) if engine else (0, 0)
        usage = engine.kv_used / self.config.engine.kv_tokens if engine else 0.0
        label = f'{{model_name="{self.config.model}"}}'
        lines = []
        for name, kind, value, about in (
                ("vllm:num_requests_running", "gauge", running, "Requests in the running batch."),
                ("vllm:num_requests_waiting", "gauge", waiting, "Requests waiting to be admitted."),
                ("vllm:kv_cache_usage_perc", "gauge", usage, "Fraction of KV-cache tokens in use."),
                ("vllm:num_preemptions_total", "counter", 0, "Preemptions (the simulator never preempts).")):
            lines += [f"# HELP {name} {about}", f"# TYPE {name} {kind}", f"{name}{label} {value}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    def _natural_length(self, min_tokens: int, max_tokens: int) -> int:
        """Where the model would stop by itself without `ignore_eos` (median about 128 tokens)."""
        natural = int(self._random.lognormvariate(math.log(128), 1.0)) + 1
        return max(min_tokens, min(max_tokens, natural))

    async def _complete(self, request: web.Request, api: str) -> web.StreamResponse:
        received_ns = time.perf_counter_ns()
        self.requests_received += 1
        faults = self.config.faults
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise _BadRequest("the body must be a JSON object")
            prompt_tokens = self._prompt_tokens(api, body)
            max_tokens = _positive_int(body, "max_completion_tokens", "max_tokens", default=256)
            min_tokens = _positive_int(body, "min_tokens", default=0)
            if prompt_tokens + max_tokens > self.config.engine.max_model_len:
                raise _BadRequest(f"This model's maximum context length is {self.config.engine.max_model_len} tokens. "
                                  f"However, you requested {prompt_tokens + max_tokens} tokens "
                                  f"({prompt_tokens} in the messages, {max_tokens} in the completion).")
        except (ValueError, _BadRequest) as exc:
            return _error(400, str(exc) if isinstance(exc, _BadRequest) else "the body is not valid JSON")
        fault = faults.pick(self._random.random()) if faults.active else None
        if isinstance(fault, int):
            return _error(fault, f"injected error {fault}", faults.retry_after_s)
        if fault == "refuse":
            return _refuse(request)
        if fault == "wrong-type":
            return web.Response(text="<html><body><h1>Gateway says hello</h1></body></html>", content_type="text/html")
        target = max_tokens if body.get("ignore_eos") else self._natural_length(min_tokens, max_tokens)
        stall_s = faults.stall_s if fault == "stall" else 0.0
        sequence = _Sequence(prompt_tokens, target)
        if target > 0:
            assert self.engine is not None
            self.engine.submit(sequence)
        self._counter += 1
        frames = _Frames(api, f"{self._counter}", self.config.model)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if fault in _STREAM_FAULTS:
                return await self._faulty_stream(request, sequence, frames, fault)
            if self._truth is None:
                return await self._stream(request, sequence, frames, include_usage, stall_s)
            chunk_ns = array("q")
            try:
                return await self._stream(request, sequence, frames, include_usage, stall_s, chunk_ns)
            finally:
                self._write_truth(request.headers.get("X-Request-Id"), received_ns, chunk_ns)
        return await self._whole(sequence, frames, stall_s)

    def _prompt_tokens(self, api: str, body: dict) -> int:
        parts = _prompt_parts(api, body)
        template = self.config.template
        overhead = template.of(len(parts)) if api == "chat" else template.base
        return overhead + sum(self.tokenizer.count(part) for part in parts)

    def reply_text(self, n_tokens: int) -> str:
        """The text of an `n_tokens`-token reply (every reply of that length is the same)."""
        return "".join(json.loads(self._piece(i)) for i in range(n_tokens))

    def _piece(self, index: int) -> bytes:
        return self._pieces[index % len(self._pieces)]

    def _write_truth(self, request_id: str | None, received_ns: int, chunk_ns: array) -> None:
        self._truth.write(json.dumps({"id": request_id, "received_ns": received_ns, "chunk_ns": chunk_ns.tolist()},
                                     separators=(",", ":")) + "\n")

    async def _stream(self, request: web.Request, sequence: _Sequence, frames: _Frames, include_usage: bool,
                      stall_s: float, chunk_ns: array | None = None) -> web.StreamResponse:
        """Stream the tokens as the engine makes them; `chunk_ns`, if given, gets each token chunk's write time."""
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        assert self.engine is not None
        try:
            role = frames.role()
            if role:
                await response.write(role)
            if stall_s:
                await asyncio.sleep(stall_s)
            if sequence.target_tokens:
                writer = _TokenWriter(request.transport, self.engine, sequence, frames, self._piece, chunk_ns)
                sequence.on_token = writer
                writer()  # the tokens made so far (during a stall), if any
                await writer.ended
        except ConnectionError:
            self.engine.abort(sequence)
            return response  # the client went away: nothing more to say, nothing to log
        except asyncio.CancelledError:
            self.engine.abort(sequence)
            raise
        finally:
            sequence.on_token = None  # no sequence-writer cycle left for the collector (its passes stall the loop)
        reason = "length" if sequence.generated >= sequence.target_tokens else "stop"
        tail = [frames.finish(reason)]
        if include_usage:
            tail.append(frames.usage(sequence.prompt_tokens, sequence.generated))
        tail.append(b"data: [DONE]\n\n")
        await response.write(b"".join(tail))
        await response.write_eof()
        return response

    async def _faulty_stream(self, request: web.Request, sequence: _Sequence, frames: _Frames,
                             fault: str) -> web.StreamResponse:
        """A stream that misbehaves half way: `reset` cuts the connection, `truncate` ends the body
        without a finish_reason or `[DONE]`, `malformed` sends a chunk cut inside its JSON, `huge` one
        enormous content chunk; `drip` sends every token `drip_s` after the previous one."""
        assert self.engine is not None
        faults = self.config.faults
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        half = max(1, sequence.target_tokens // 2)
        try:
            for index in range(sequence.target_tokens):
                await sequence.made(index + 1)
                if index == half:
                    if fault == "reset":
                        return _refuse(request)
                    if fault == "truncate":
                        await response.write_eof()
                        return response
                    if fault == "malformed":
                        await response.write(frames.cut())
                    if fault == "huge":
                        await response.write(frames.token(json.dumps("x" * faults.huge_bytes).encode()))
                if fault == "drip":
                    await asyncio.sleep(faults.drip_s)
                await response.write(frames.token(self._piece(index)))
        except ConnectionError:
            return response  # the client gave up (a timeout): nothing to log
        finally:
            self.engine.abort(sequence)
        await response.write(frames.finish("length") + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _whole(self, sequence: _Sequence, frames: _Frames, stall_s: float) -> web.Response:
        await sequence.made(sequence.target_tokens)
        if stall_s:
            await asyncio.sleep(stall_s)
        text = self.reply_text(sequence.generated)
        return web.json_response(frames.whole(text, sequence.prompt_tokens, sequence.generated))


class _TokenWriter:
    """Writes a stream's new tokens straight onto its connection, called by the engine at each step:
    one chunked-encoding frame per step and no handler task woken per token, so the simulator can
    stream tens of thousands of chunks a second from one core (the headers and the first frame went
    through aiohttp, which also writes the final frames)."""

    __slots__ = ("transport", "engine", "sequence", "frames", "piece", "chunk_ns", "written", "ended")

    def __init__(self, transport: asyncio.Transport | None, engine: Engine, sequence: _Sequence, frames: _Frames,
                 piece: Callable[[int], bytes], chunk_ns: array | None):
        self.transport = transport
        self.engine = engine
        self.sequence = sequence
        self.frames = frames
        self.piece = piece
        self.chunk_ns = chunk_ns
        self.written = 0
        self.ended: asyncio.Future = asyncio.get_running_loop().create_future()

    def __call__(self) -> None:
        sequence, ready = self.sequence, self.sequence.generated
        if ready == self.written or self.ended.done():
            return
        if self.transport is None or self.transport.is_closing():
            self.engine.abort(sequence)
            self.ended.set_exception(ConnectionResetError("the client went away"))
            return
        token, piece = self.frames.token, self.piece
        data = b"".join(token(piece(i)) for i in range(self.written, ready))
        if self.chunk_ns is not None:
            self.chunk_ns.extend([time.perf_counter_ns()] * (ready - self.written))
        self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.written = ready
        if ready >= sequence.target_tokens:
            self.ended.set_result(None)


def _error(status: int, message: str, retry_after_s: float | None = None) -> web.Response:
    kind = "BadRequestError" if status == 400 else "ServerError"
    headers = {"Retry-After": f"{retry_after_s:g}"} if retry_after_s is not None and status in (429, 503) else None
    return web.json_response({"object": "error", "message": message, "type": kind, "code": status}, status=status,
                             headers=headers)


def _refuse(request: web.Request) -> web.Response:
    """Drop the connection at once, as a crashing server or a proxy would: no (further) response bytes."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response()


class _Frames:
    """SSE frames of one response, in the exact shapes vLLM sends (compact JSON)."""

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

    def role(self) -> bytes:
        """The first, output-free chunk vLLM sends on chat streams (nothing on completions)."""
        if self.api != "chat":
            return b""
        return self._head + b'[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'

    def token(self, piece_json: bytes) -> bytes:
        return self._token_open + piece_json + self._token_close

    def cut(self) -> bytes:
        """A token chunk whose JSON breaks off inside the string (what a crashing proxy may forward)."""
        return self._token_open + b'"cut of\n\n'

    def finish(self, reason: str) -> bytes:
        empty = b'"delta":{}' if self.api == "chat" else b'"text":""'
        return self._head + b'[{"index":0,' + empty + b',"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n'

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return self._head + b"[],\"usage\":" + json.dumps(usage, separators=(",", ":")).encode() + b"}\n\n"

    def whole(self, text: str, prompt_tokens: int, completion_tokens: int) -> dict:
        if self.api == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length"}
            obj = "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": [choice],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}


async def start(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Start serving on the running loop; returns the runner (to clean up) and the bound port."""
    runner = web.AppRunner(Simulator(config).app(), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"simulator cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0][1]
    return runner, bound


class SimulatorThread:
    """The simulator on its own event loop in a background thread, for `run` without `--base-url`."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1"):
        self.config = config
        self.host = host
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> SimulatorThread:
        self._thread = threading.Thread(target=self._serve, name="replayer-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def _serve(self) -> None:
        loop = new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            runner, self.port = loop.run_until_complete(start(self.config, self.host))
        except BaseException as exc:  # reported to the starting thread
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()

    def __exit__(self, *exc_info) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


def serve(config: SimulatorConfig, host: str, port: int) -> None:
    """Run the simulator in the foreground until interrupted (`replayer simulate`)."""
    reserve_fd_table(min(raise_fd_limit(), 65_536))  # each stream it serves holds a socket
    web.run_app(Simulator(config).app(), host=host, port=port, access_log=None, print=None,
                loop=new_event_loop(), backlog=4096, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
