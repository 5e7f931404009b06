"""OpenAI-compatible HTTP client: sends one prepared body, fills in its `RequestRecord`.

Every outcome is a record, never an exception that ends the run: connection, DNS and TLS failures,
timeouts (per phase: connect, first token, between tokens, total), HTTP errors, broken or malformed
streams and empty answers each become a failure kind. Nothing is retried unless `retry_429` asks.

Requests go over `replayer.send.http`'s keep-alive connections. Per network read the hot path does: one
clock read on receipt (before any parsing, in the protocol callback itself), the SSE split, and one
typed decode of each event (`replayer.send.stream`). The gaps between chunks become the record's
integer-microsecond ITL in one numpy pass when the stream ends.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time
from array import array
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import numpy as np

from replayer.errors import ConfigError
from replayer.prompts.bodies import API_PATHS, api_path
from replayer.records import (
    CANCELLED,
    EMPTY,
    STREAM,
    TIMEOUT_BETWEEN_TOKENS,
    TIMEOUT_FIRST_TOKEN,
    TIMEOUT_TOTAL,
    RequestRecord,
    http_failure,
)
from replayer.send.addressing import request_id_prefix, root_url
from replayer.send.http import ConnectError, ConnectionPool, Response, StreamError
from replayer.send.stream import EVENT_APIS, StreamState, apply_usage, error_message, usage_of

_DEFAULT_RETRY_WAIT_S = 1.0
"""The wait before a 429 retry when the answer carries no usable Retry-After (doubled per retry)."""


@dataclass(frozen=True)
class Timeouts:
    """How long a request may wait in each phase before it fails as `timeout_<phase>`; the defaults
    stop a dead server from hanging a run without cutting the long queues of an overloaded one."""

    connect_s: float = 30.0
    """Opening the connection (and its TLS handshake)."""
    first_token_s: float = 600.0
    """From sending to the first output token (for a non-streamed request: to the whole answer)."""
    between_tokens_s: float = 120.0
    """From one received chunk to the next, once output has begun."""
    total_s: float = 1800.0
    """From sending to the end of the answer, 429 retries included."""

    def __post_init__(self) -> None:
        for name, flag in (("connect_s", "--connect-timeout"), ("first_token_s", "--first-token-timeout"),
                           ("between_tokens_s", "--token-timeout"), ("total_s", "--request-timeout")):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{flag} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class ClientConfig:
    """Where and how requests are sent."""

    base_url: str
    api: str = "chat"
    stream: bool = True
    api_key: str | None = field(default=None, repr=False)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry_429: int = 0
    """How many times one request is re-sent after a 429 answer (honouring Retry-After)."""
    extra_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """`-H` headers sent with every request (they override the defaults of the same name)."""
    verify_tls: bool = True

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--base-url must look like http://host:port, got {self.base_url!r}")
        if self.api not in API_PATHS:
            raise ConfigError(f"--api must be one of {', '.join(API_PATHS)}, got {self.api!r}")
        if self.retry_429 < 0:
            raise ConfigError(f"--retry-429 must be >= 0, got {self.retry_429}")

    @property
    def url(self) -> str:
        return root_url(self.base_url) + api_path(self.api, self.stream)

    @property
    def ssl(self) -> bool | None:
        """aiohttp's `ssl` argument: the default verification, or none with --insecure."""
        return None if self.verify_tls else False

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        parts = urlsplit(self.base_url)
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif parts.username is not None:  # http://user:password@host: HTTP Basic, as curl sends it
            login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(login).decode("ascii")
        known = {name.lower(): name for name in headers}
        for name, value in self.extra_headers:
            headers.pop(known.get(name.lower(), name), None)
            headers[name] = value
        return headers


class PhaseTimeout(asyncio.TimeoutError):
    """A request overran one phase's timeout; `kind` is its failure kind (`timeout_first_token`...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


_TIMEOUT_MESSAGES = {TIMEOUT_FIRST_TOKEN: "no first token within {:g} s of sending",
                     TIMEOUT_BETWEEN_TOKENS: "no token for {:g} s after the previous one",
                     TIMEOUT_TOTAL: "the request took over {:g} s"}


class _Watchdog:
    """Fails a request whose first token, next token or whole answer is overdue (the pool's `Watch`).
    One timer per request, touched only when it fires: no timer work per token. Until output begins
    it wakes every between-tokens timeout (a first token arriving then would start that clock)."""

    __slots__ = ("timeouts", "state", "start_ns", "future", "timer")

    def __init__(self, timeouts: Timeouts, state: StreamState | None, start_ns: int):
        self.timeouts = timeouts
        self.state = state
        self.start_ns = start_ns
        self.future: asyncio.Future | None = None
        self.timer: asyncio.TimerHandle | None = None

    def arm(self, future: asyncio.Future) -> None:
        self.future = future
        self._schedule(time.perf_counter_ns())

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _deadline(self) -> tuple[int, str, float]:
        """The deadline in force now: (perf_counter ns, failure kind, its timeout in s)."""
        timeouts = self.timeouts
        total = (self.start_ns + int(timeouts.total_s * 1e9), TIMEOUT_TOTAL, timeouts.total_s)
        arrivals = self.state.arrivals if self.state is not None else None
        if arrivals:
            phase = (arrivals[-1] + int(timeouts.between_tokens_s * 1e9), TIMEOUT_BETWEEN_TOKENS,
                     timeouts.between_tokens_s)
        else:
            phase = (self.start_ns + int(timeouts.first_token_s * 1e9), TIMEOUT_FIRST_TOKEN, timeouts.first_token_s)
        return min(total, phase)

    def _schedule(self, now_ns: int) -> None:
        when_ns = self._deadline()[0]
        if self.state is not None and not self.state.arrivals:
            when_ns = min(when_ns, now_ns + int(self.timeouts.between_tokens_s * 1e9))
        self.timer = asyncio.get_running_loop().call_later(max(0.0, (when_ns - now_ns) / 1e9), self._check)

    def _check(self) -> None:
        self.timer = None
        if self.future is None or self.future.done():
            return
        if self.state is not None:
            self.state.flush()  # the arrivals of the pieces received so far
        now_ns = time.perf_counter_ns()
        when_ns, kind, limit_s = self._deadline()
        if now_ns < when_ns:
            self._schedule(now_ns)
        else:
            self.future.set_exception(PhaseTimeout(kind, _TIMEOUT_MESSAGES[kind].format(limit_s)))


_NUMPY_GAPS_FROM = 64
"""Arrivals from which one numpy pass beats a Python loop over the gaps (its fixed cost is ~4 µs)."""


def gaps_us(arrivals: array) -> list[int]:
    """The gaps between consecutive arrival times (ns), rounded to whole microseconds: for a long
    stream in one numpy pass instead of a Python number per gap."""
    if len(arrivals) < _NUMPY_GAPS_FROM:
        return [(later - earlier + 500) // 1000 for earlier, later in zip(arrivals, arrivals[1:])]
    gaps_ns = np.diff(np.frombuffer(arrivals, dtype=np.int64))
    return ((gaps_ns + 500) // 1000).tolist()


def retry_wait_s(retry_after: bytes | None, retry: int) -> float:
    """Seconds to wait before re-sending after a 429: the answer's Retry-After (seconds or an HTTP
    date), else a doubling default."""
    fallback = _DEFAULT_RETRY_WAIT_S * 2 ** retry
    if not retry_after:
        return fallback
    text = retry_after.decode("latin-1").strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return fallback
    return max(0.0, when.timestamp() - time.time())


class Client:
    """Keep-alive connections to the server for the whole run; `send` sends one request and completes
    its record."""

    def __init__(self, config: ClientConfig, t0_ns: int = 0):
        self.config = config
        self.t0_ns = t0_ns
        self._pool: ConnectionPool | None = None
        self._id_prefix = request_id_prefix()

    async def __aenter__(self) -> Client:
        config = self.config
        self._pool = ConnectionPool(config.url, config.headers(), config.timeouts.connect_s, config.verify_tls)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.close()

    async def send(self, record: RequestRecord, body: bytes, keep_reply: bool = False) -> str | None:
        """Send `body` now and record what happens; cancellation propagates after the record is marked.
        With `keep_reply`, return the reply's text (for session histories); otherwise None.
        A 429 answer is re-sent up to `retry_429` times (counted in `record.retries`); the record's
        times still run from the first send, since the wait is part of what its user felt."""
        assert self._pool is not None, "use Client as an async context manager"
        t0 = self.t0_ns
        clock = time.perf_counter_ns
        start_ns = clock()
        record.sent_ns = start_ns - t0
        header = b"X-Request-Id: %s%012x\r\n" % (self._id_prefix, record.id)
        while True:
            state = StreamState(keep_reply, self.config.api in EVENT_APIS) if self.config.stream else None
            try:
                response = await self._pool.request(body, state, header,
                                                    _Watchdog(self.config.timeouts, state, start_ns))
            except asyncio.CancelledError:
                self._end_stream(record, state, CANCELLED, "run stopped before the response finished")
                raise
            except PhaseTimeout as exc:
                self._end_stream(record, state, exc.kind, str(exc))
                return None
            except ConnectError as exc:
                record.fail(exc.kind, str(exc), clock() - t0)
                return None
            except StreamError as exc:
                self._end_stream(record, state, STREAM, str(exc))
                return None
            if response.status != 429 or not await self._wait_to_retry(record, response, start_ns):
                return self._take_response(record, response, state, keep_reply)

    async def _wait_to_retry(self, record: RequestRecord, response: Response, start_ns: int) -> bool:
        """After a 429: wait as the server asked and return True, or False when no retry is left
        (or the wait would pass the total timeout)."""
        if record.retries >= self.config.retry_429:
            return False
        wait_s = retry_wait_s(response.headers.get(b"retry-after"), record.retries)
        if time.perf_counter_ns() + wait_s * 1e9 >= start_ns + self.config.timeouts.total_s * 1e9:
            return False
        record.retries += 1
        try:
            await asyncio.sleep(wait_s)
        except asyncio.CancelledError:
            record.fail(CANCELLED, "run stopped while waiting to retry a 429", time.perf_counter_ns() - self.t0_ns)
            raise
        return True

    def _take_response(self, record: RequestRecord, response: Response, state: StreamState | None,
                       keep_reply: bool) -> str | None:
        """Settle the record from a complete response."""
        if response.status != 200:
            now_ns = time.perf_counter_ns() - self.t0_ns
            record.fail(http_failure(response.status), error_message(response.body), now_ns)
        elif state is None:
            return self._take_whole(record, response.body, keep_reply)
        elif not response.streamed:
            content_type = response.headers.get(b"content-type", b"").decode("latin-1")
            record.fail(
                STREAM,
                f"answered {content_type} instead of an event stream: {error_message(response.body)}",
                time.perf_counter_ns() - self.t0_ns,
            )
        else:
            state.close(time.perf_counter_ns())
            self._end_stream(record, state)
            return state.reply() if keep_reply else None
        return None

    def _end_stream(
        self, record: RequestRecord, state: StreamState | None, kind: str | None = None, message: str = ""
    ) -> None:
        """Copy the chunk timings gathered so far into the record and settle its outcome: the failure
        `kind` given, or what the stream itself showed."""
        now_ns = time.perf_counter_ns() - self.t0_ns
        if state is not None:
            state.flush()  # (a stream cut short: what it had received still counts)
            arrivals = state.arrivals
            if arrivals:
                t0 = self.t0_ns
                record.first_token_ns = arrivals[0] - t0
                record.end_ns = arrivals[-1] - t0
                record.itl_us = gaps_us(arrivals)
            apply_usage(record, state.usage or {}, len(arrivals))
        if kind is not None:
            record.fail(kind, message, now_ns)
        elif state is None:
            return
        elif state.error is not None:
            record.fail(STREAM, state.error, now_ns)
        elif not (state.done or state.finished):
            record.fail(STREAM, "stream ended before [DONE] or a finish_reason", now_ns)
        elif not state.arrivals:
            record.fail(EMPTY, "the response carried no output text", now_ns)
        elif not state.finished:  # every OpenAI-style choice ends with one: without it the stream was cut
            record.fail(STREAM, "[DONE] came without a finish_reason: the server cut the stream short", now_ns)

    def _take_whole(self, record: RequestRecord, raw: bytes, keep_reply: bool) -> str | None:
        now = time.perf_counter_ns() - self.t0_ns
        if self.config.api == "embeddings":
            _take_embeddings(record, raw, now)
            return None
        try:
            data = json.loads(raw)
            text = answer_text(data)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            record.fail(STREAM, "malformed response body: " + error_message(raw), now)
            return None
        # Without streaming the first token is only seen with the whole answer (as vLLM's bench does).
        record.first_token_ns = record.end_ns = now
        apply_usage(record, usage_of(data), 1 if text else 0)
        if not text:
            record.fail(EMPTY, "the response carried no output text", now)
        return text if keep_reply else None


def _take_embeddings(record: RequestRecord, raw: bytes, now_ns: int) -> None:
    """Settle an embeddings answer: one vector per input, the input tokens from `usage`, no output
    (so no first token: the record has its end-to-end time only)."""
    try:
        data = json.loads(raw)
        vectors = data["data"]
        if not isinstance(vectors, list) or not all(isinstance(v.get("embedding"), (list, str)) for v in vectors):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        record.fail(STREAM, "malformed embeddings body: " + error_message(raw), now_ns)
        return
    record.end_ns = now_ns
    record.served_input_tokens = usage_of(data).get("prompt_tokens")
    record.served_output_tokens = 0
    if not vectors:
        record.fail(EMPTY, "the answer carried no embedding", now_ns)


def answer_text(data: dict) -> str:
    """The output text of a whole (unstreamed) answer, in each API's shape."""
    if "generated_text" in data:  # TGI's native /generate
        return data["generated_text"] or ""
    if "choices" in data:  # chat and completions
        choice = data["choices"][0]
        return choice.get("text") or (choice.get("message") or {}).get("content") or ""
    if data.get("type") == "message":  # Anthropic Messages: content blocks
        return "".join(block.get("text") or "" for block in data["content"] if block.get("type") == "text")
    # OpenAI Responses: output items, the messages among them holding output_text parts
    return "".join(part.get("text") or "" for item in data["output"] if item.get("type") == "message"
                   for part in item["content"] if part.get("type") == "output_text")
