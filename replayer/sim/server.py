"""The built-in OpenAI-compatible server's HTTP face, on top of the simulated engine
(`replayer.sim.engine`), whose steps set every response's timing. It serves chat, completions,
OpenAI's Responses API and Anthropic's Messages API (their bytes: `replayer.sim.frames`), and
embeddings.

Prompt tokens are counted with the same tokenizer the client uses; `max_tokens` (`max_output_tokens`), `ignore_eos`,
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
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiohttp import web

from replayer.prompts.bodies import MESSAGE_APIS
from replayer.prompts.synthesis import PromptSynthesizer, TemplateOverhead
from replayer.prompts.tokenizer import DEFAULT_TOKENIZER, Tokenizer, load_tokenizer
from replayer.send.eventloop import settle_heap
from replayer.sim.engine import Engine, EngineModel, Sequence
from replayer.sim.faults import STREAM_FAULTS, Faults
from replayer.sim.frames import Framing, frames_for

DEFAULT_MODEL = "replayer-sim"
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
EMBEDDING_SIZE = 8
"""Dimensions of the simulator's (all-zero) embedding vectors: a load test measures time, not meaning."""
SHUTDOWN_TIMEOUT_S = 1.0
"""On shutdown, in-flight responses get this long before they are cut (a stalled one never ends)."""


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


class BadRequest(Exception):
    """A request the simulator refuses with HTTP 400 and this message."""


def _prompt_parts(api: str, body: dict) -> list[str]:
    """The texts the prompt is made of: one per chat message (a chat template keeps messages apart, so
    each is tokenized on its own), or the completion prompt."""
    if api in MESSAGE_APIS:
        field = "input" if api == "responses" else "messages"
        messages = body.get(field)
        if api == "responses" and isinstance(messages, str):
            return [messages]
        if not isinstance(messages, list) or not messages:
            raise BadRequest(f"'{field}' must be a non-empty list")
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
        raise BadRequest("'prompt' must be a string")
    return [prompt]


def _positive_int(body: dict, *names: str, default: int) -> int:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise BadRequest(f"'{name}' must be a non-negative integer")
            return value
    return default


class Simulator:
    """The HTTP side: request parsing, fault injection, SSE framing, on top of one `Engine`."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.tokenizer: Tokenizer = load_tokenizer(config.tokenizer)
        words = PromptSynthesizer(self.tokenizer).words
        self.pieces = [json.dumps(word).encode() for word in words]
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
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/embeddings", self._embeddings)
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
        if self._engine_task is not None:
            self._engine_task.cancel()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "completions")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "responses")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "messages")

    async def _embeddings(self, request: web.Request) -> web.Response:
        """One vector per input, after the engine has prefilled them all (one step of it)."""
        self.requests_received += 1
        try:
            body = await request.json()
            inputs = body.get("input") if isinstance(body, dict) else None
            inputs = [inputs] if isinstance(inputs, str) else inputs
            if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
                raise BadRequest("'input' must be a string or a non-empty list of strings")
        except (ValueError, BadRequest) as exc:
            return _error(400, str(exc) if isinstance(exc, BadRequest) else "the body is not valid JSON")
        prompt_tokens = sum(self.tokenizer.count(text) for text in inputs)
        sequence = Sequence(prompt_tokens, 1)
        assert self.engine is not None
        self.engine.submit(sequence)
        await sequence.made(1)
        vectors = [{"object": "embedding", "index": i, "embedding": [0.0] * EMBEDDING_SIZE}
                   for i in range(len(inputs))]
        return web.json_response({"object": "list", "data": vectors, "model": self.config.model,
                                  "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.config.model, "object": "model", "created": 0, "owned_by": "replayer",
             "max_model_len": self.config.engine.max_model_len}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        """The engine's state under vLLM's Prometheus names, so `--scrape-metrics` is tested end to end."""
        engine = self.engine
        state = engine.scheduler if engine else None
        running, waiting = (len(state.running), len(state.waiting)) if state else (0, 0)
        usage = state.kv_used / self.config.engine.kv_tokens if state else 0.0
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
                raise BadRequest("the body must be a JSON object")
            prompt_tokens = self.prompt_tokens(api, body)
            max_tokens = _positive_int(body, "max_completion_tokens", "max_tokens", "max_output_tokens", default=256)
            min_tokens = _positive_int(body, "min_tokens", default=0)
            if prompt_tokens + max_tokens > self.config.engine.max_model_len:
                raise BadRequest(f"This model's maximum context length is {self.config.engine.max_model_len} tokens. "
                                  f"However, you requested {prompt_tokens + max_tokens} tokens "
                                  f"({prompt_tokens} in the messages, {max_tokens} in the completion).")
        except (ValueError, BadRequest) as exc:
            return _error(400, str(exc) if isinstance(exc, BadRequest) else "the body is not valid JSON")
        fault = faults.pick(self._random.random()) if faults.active else None
        if isinstance(fault, int):
            return _error(fault, f"injected error {fault}", faults.retry_after_s)
        if fault == "refuse":
            return _refuse(request)
        if fault == "wrong-type":
            return web.Response(text="<html><body><h1>Gateway says hello</h1></body></html>", content_type="text/html")
        target = max_tokens if body.get("ignore_eos") else self._natural_length(min_tokens, max_tokens)
        stall_s = faults.stall_s if fault == "stall" else 0.0
        sequence = Sequence(prompt_tokens, target)
        if target > 0:
            assert self.engine is not None
            self.engine.submit(sequence)
        self._counter += 1
        frames = frames_for(api, f"{self._counter}", self.config.model)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if fault in STREAM_FAULTS:
                return await self._faulty_stream(request, sequence, frames, fault)
            if self._truth is None:
                return await self._stream(request, sequence, frames, include_usage, stall_s)
            chunk_ns = array("q")
            try:
                return await self._stream(request, sequence, frames, include_usage, stall_s, chunk_ns)
            finally:
                self._write_truth(request.headers.get("X-Request-Id"), received_ns, chunk_ns)
        return await self._whole(sequence, frames, stall_s)

    def prompt_tokens(self, api: str, body: dict) -> int:
        """The prompt's token count as a server would report it (chat template overhead included)."""
        parts = _prompt_parts(api, body)
        template = self.config.template
        overhead = template.of(len(parts)) if api in MESSAGE_APIS else template.base
        return overhead + sum(self.tokenizer.count(part) for part in parts)

    def reply_text(self, n_tokens: int) -> str:
        """The text of an `n_tokens`-token reply (every reply of that length is the same)."""
        return "".join(json.loads(self.piece(i)) for i in range(n_tokens))

    def piece(self, index: int) -> bytes:
        """The JSON string of the reply's `index`-th token."""
        return self.pieces[index % len(self.pieces)]

    def _write_truth(self, request_id: str | None, received_ns: int, chunk_ns: array) -> None:
        assert self._truth is not None, "truth is written only with a truth log"
        self._truth.write(truth_line(request_id, received_ns, chunk_ns))

    async def _stream(self, request: web.Request, sequence: Sequence, frames: Framing, include_usage: bool,
                      stall_s: float, chunk_ns: array | None = None) -> web.StreamResponse:
        """Stream the tokens as the engine makes them; `chunk_ns`, if given, gets each token chunk's write time."""
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        assert self.engine is not None
        try:
            opening = frames.opening(sequence.prompt_tokens)
            if opening:
                await response.write(opening)
            if stall_s:
                await asyncio.sleep(stall_s)
            if sequence.target_tokens:
                writer = _TokenWriter(request.transport, self.engine, sequence, frames, self.piece, chunk_ns)
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
        await response.write(frames.closing(reason, sequence.prompt_tokens, sequence.generated, include_usage))
        await response.write_eof()
        return response

    async def _faulty_stream(self, request: web.Request, sequence: Sequence, frames: Framing,
                             fault: str) -> web.StreamResponse:
        """A stream that misbehaves half way: `reset` cuts the connection, `truncate` ends the body
        without a finish_reason or `[DONE]`, `malformed` sends a chunk cut inside its JSON, `huge` one
        enormous content chunk; `drip` sends every token `drip_s` after the previous one."""
        assert self.engine is not None
        faults = self.config.faults
        response = web.StreamResponse(headers=_SSE_HEADERS)
        await response.prepare(request)
        await response.write(frames.opening(sequence.prompt_tokens))
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
                    if fault == "huge":  # (this token's text, made enormous: the token count stays right)
                        await response.write(frames.token(json.dumps("x" * faults.huge_bytes).encode()))
                        continue
                if fault == "drip":
                    await asyncio.sleep(faults.drip_s)
                await response.write(frames.token(self.piece(index)))
        except ConnectionError:
            return response  # the client gave up (a timeout): nothing to log
        finally:
            self.engine.abort(sequence)
        await response.write(frames.closing("length", sequence.prompt_tokens, sequence.target_tokens, False))
        await response.write_eof()
        return response

    async def _whole(self, sequence: Sequence, frames: Framing, stall_s: float) -> web.Response:
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

    def __init__(self, transport: asyncio.Transport | None, engine: Engine, sequence: Sequence, frames: Framing,
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


def truth_line(request_id: str | None, received_ns: int, chunk_ns: array) -> str:
    """One streamed response's line of a truth log (`replayer.bench.truth.read_truth` reads it): its
    request id, when its request was received and when each token chunk was written."""
    return json.dumps({"id": request_id, "received_ns": received_ns, "chunk_ns": chunk_ns.tolist()},
                      separators=(",", ":")) + "\n"


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
