"""OpenAI-compatible HTTP client: sends one prepared body, fills in its `RequestRecord`.

Every outcome is a record, never an exception that ends the run: connection, DNS and TLS failures,
timeouts (per phase: connect, first token, between tokens, total), HTTP errors, broken or malformed
streams and empty answers each become a failure kind. Nothing is retried unless `retry_429` asks.

Requests go over `replayer.http`'s keep-alive connections. Per network read the hot path does: one
clock read on receipt (before any parsing, in the protocol callback itself), the SSE split, and one
regex pass that finds which top-level keys carry values. Inside a JSON string every quote is
escaped, so a match of `"content":"x` can only be a real key with a non-empty string value: that
test is exact, and only the rare usage and error payloads are decoded with `json`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import re
import time
import uuid
from array import array
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiohttp

from replayer.backends import PROBES, backend_from_probe
from replayer.bodies import API_PATHS, RequestOptions, api_path, build_body
from replayer.errors import ConfigError
from replayer.http import ConnectError, ConnectionPool, Response, StreamError
from replayer.prompts import PromptSynthesizer, TemplateOverhead
from replayer.records import RequestRecord
from replayer.sse import SSEError, SSEParser

_KEYS = re.compile(rb'"(content|reasoning_content|reasoning|text|finish_reason|usage|details|error)"\s*:\s*(?=(.?.?))')
"""A key of interest and the first two characters of its value, peeked at without consuming them, so
a key nested right inside another's value (TGI's `"details":{"finish_reason":…}`) is found too."""
_OUTPUT_KEYS = frozenset((b"content", b"reasoning_content", b"reasoning", b"text"))
_DONE = b"[DONE]"
_ERROR_TEXT_LIMIT = 300
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|passw|cookie|session|signature|credential", re.IGNORECASE)
REDACTED = "<redacted>"
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


def parse_header(text: str) -> tuple[str, str]:
    """`-H 'Name: value'` → (name, value), as curl takes it."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.fullmatch(name):
        raise ConfigError("-H: expected 'Name: value' with a valid header name (the text is not shown: it may "
                          "hold a secret)")
    if "\r" in value or "\n" in value:
        raise ConfigError(f"-H {name}: the value must be one line")
    if name.lower() in ("content-length", "host", "transfer-encoding", "connection", "x-request-id"):
        raise ConfigError(f"-H {name}: set by replayer itself and cannot be replaced")
    return name, value


def redact_headers(headers: tuple[tuple[str, str], ...]) -> list[str]:
    """Headers as written into outputs: the values of credential-like ones (by name, or a value that
    looks like a token scheme) replaced by `<redacted>`."""
    shown = []
    for name, value in headers:
        secret = _CREDENTIAL_NAME.search(name) or value.split(" ", 1)[0].lower() in ("bearer", "basic", "token")
        shown.append(f"{name}: {REDACTED if secret else value}")
    return shown


def request_id_prefix() -> bytes:
    """A random UUID (version 4) without its last 12 hex digits. Each request's X-Request-Id is this
    plus its trace row id in 12 hex digits: a valid UUID (llama-cpp-python's server refuses any other
    form with HTTP 400), unique across runs, and mapped back to the row by `row_of_request_id`."""
    return str(uuid.uuid4())[:24].encode()


def row_of_request_id(request_id: str) -> int:
    """The trace row id in an X-Request-Id that replayer sent."""
    return int(request_id[-12:], 16)


def redact_url(url: str) -> str:
    """`url` as written into outputs: a password in it (`http://user:secret@host`) replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{REDACTED}@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


def root_url(base_url: str) -> str:
    """The server root: users pass either `http://host:port` or `http://host:port/v1`. Credentials in
    the URL are taken out (they travel as an Authorization header, see `ClientConfig.headers`)."""
    parts = urlsplit(base_url)
    if parts.username is not None:
        base_url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    base = base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


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


class _StreamState:
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


def _usage(payload: bytes | None) -> dict:
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


def _apply_usage(record: RequestRecord, usage: dict, counted_output: int) -> None:
    record.served_input_tokens = usage.get("prompt_tokens")
    served_output = usage.get("completion_tokens")
    if served_output is None:
        record.served_output_tokens = counted_output
        record.output_counted = True
    else:
        record.served_output_tokens = served_output


class PhaseTimeout(asyncio.TimeoutError):
    """A request overran one phase's timeout; `kind` is its failure kind (`timeout_first_token`...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


_TIMEOUT_MESSAGES = {"timeout_first_token": "no first token within {:g} s of sending",
                     "timeout_between_tokens": "no token for {:g} s after the previous one",
                     "timeout_total": "the request took over {:g} s"}


class _Watchdog:
    """Fails a request whose first token, next token or whole answer is overdue (the pool's `Watch`).
    One timer per request, touched only when it fires: no timer work per token. Until output begins
    it wakes every between-tokens timeout (a first token arriving then would start that clock)."""

    __slots__ = ("timeouts", "state", "start_ns", "future", "timer")

    def __init__(self, timeouts: Timeouts, state: _StreamState | None, start_ns: int):
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
        total = (self.start_ns + int(timeouts.total_s * 1e9), "timeout_total", timeouts.total_s)
        arrivals = self.state.arrivals if self.state is not None else None
        if arrivals:
            phase = (arrivals[-1] + int(timeouts.between_tokens_s * 1e9), "timeout_between_tokens",
                     timeouts.between_tokens_s)
        else:
            phase = (self.start_ns + int(timeouts.first_token_s * 1e9), "timeout_first_token", timeouts.first_token_s)
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
        now_ns = time.perf_counter_ns()
        when_ns, kind, limit_s = self._deadline()
        if now_ns < when_ns:
            self._schedule(now_ns)
        else:
            self.future.set_exception(PhaseTimeout(kind, _TIMEOUT_MESSAGES[kind].format(limit_s)))


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
    """Keep-alive connections to the server for the whole run; `fill` sends one request and completes
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

    async def __aexit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.close()

    async def fill(self, record: RequestRecord, body: bytes, keep_reply: bool = False) -> str | None:
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
            state = _StreamState(keep_reply) if self.config.stream else None
            try:
                response = await self._pool.request(body, state, header,
                                                    _Watchdog(self.config.timeouts, state, start_ns))
            except asyncio.CancelledError:
                self._end_stream(record, state, "cancelled", "run stopped before the response finished")
                raise
            except PhaseTimeout as exc:
                self._end_stream(record, state, exc.kind, str(exc))
                return None
            except ConnectError as exc:
                record.fail(exc.kind, str(exc), clock() - t0)
                return None
            except StreamError as exc:
                self._end_stream(record, state, "stream", str(exc))
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
            record.fail("cancelled", "run stopped while waiting to retry a 429", time.perf_counter_ns() - self.t0_ns)
            raise
        return True

    def _take_response(self, record: RequestRecord, response: Response, state: _StreamState | None,
                       keep_reply: bool) -> str | None:
        """Settle the record from a complete response."""
        if response.status != 200:
            record.fail(f"http_{response.status}", error_message(response.body), time.perf_counter_ns() - self.t0_ns)
        elif state is None:
            return self._take_whole(record, response.body, keep_reply)
        elif not response.streamed:
            content_type = response.headers.get(b"content-type", b"").decode("latin-1")
            record.fail("stream", f"answered {content_type} instead of an event stream: "
                        f"{error_message(response.body)}", time.perf_counter_ns() - self.t0_ns)
        else:
            state.close(time.perf_counter_ns())
            self._end_stream(record, state)
            return state.reply() if keep_reply else None
        return None

    def _end_stream(self, record: RequestRecord, state: _StreamState | None, kind: str | None = None,
                    message: str = "") -> None:
        """Copy the chunk timings gathered so far into the record and settle its outcome: the failure
        `kind` given, or what the stream itself showed."""
        now_ns = time.perf_counter_ns() - self.t0_ns
        if state is not None:
            arrivals = state.arrivals
            if arrivals:
                t0 = self.t0_ns
                record.first_token_ns = arrivals[0] - t0
                record.end_ns = arrivals[-1] - t0
                record.itl_ms = [round((b - a) / 1e6, 3) for a, b in zip(arrivals, arrivals[1:])]
            _apply_usage(record, _usage(state.usage_payload), len(arrivals))
        if kind is not None:
            record.fail(kind, message, now_ns)
        elif state.error is not None:
            record.fail("stream", state.error, now_ns)
        elif not (state.done or state.finished):
            record.fail("stream", "stream ended before [DONE] or a finish_reason", now_ns)
        elif not state.arrivals:
            record.fail("empty", "the response carried no output text", now_ns)

    def _take_whole(self, record: RequestRecord, raw: bytes, keep_reply: bool) -> str | None:
        now = time.perf_counter_ns() - self.t0_ns
        try:
            data = json.loads(raw)
            if "generated_text" in data:  # TGI's native /generate
                text = data["generated_text"] or ""
            else:
                choice = data["choices"][0]
                text = choice.get("text") or (choice.get("message") or {}).get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            record.fail("stream", "malformed response body: " + error_message(raw), now)
            return None
        # Without streaming the first token is only seen with the whole answer (as vLLM's bench does).
        record.first_token_ns = record.end_ns = now
        _apply_usage(record, usage_of(data), 1 if text else 0)
        if not text:
            record.fail("empty", "the response carried no output text", now)
        return text if keep_reply else None


async def list_models(config: ClientConfig, timeout_s: float = 10.0) -> list[dict]:
    """The server's `/v1/models` entries (used to pick a default model and recognise the backend)."""
    url = root_url(config.base_url) + "/v1/models"
    shown = redact_url(url)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(url, headers=config.headers(), ssl=config.ssl) as response:
                if response.status != 200:
                    raise ConfigError(f"{shown}: HTTP {response.status}: {error_message(await response.read())}")
                data = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ConfigError(f"{shown}: cannot list models ({exc or type(exc).__name__}); pass --model") from None
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{shown}: unexpected answer (no 'data' list); pass --model")
    return [entry for entry in entries if isinstance(entry, dict)]


async def probe_backend(config: ClientConfig, timeout_s: float = 5.0) -> tuple[str, str] | None:
    """The serving engine, from the first of its own endpoints that answers like it (`backends.PROBES`):
    (backend, which endpoint said so), or None."""
    root = root_url(config.base_url)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for path in PROBES:
            try:
                async with session.get(root + path, headers=config.headers(), ssl=config.ssl) as response:
                    data = await response.json(content_type=None) if response.status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                continue
            found = backend_from_probe(path, data)
            if found:
                return found, f"GET {path}"
    return None


_PROBE_TOKENS = 16
"""Content tokens of each message in a template probe."""


async def measure_template(config: ClientConfig, model: str, synthesizer: PromptSynthesizer) -> TemplateOverhead:
    """The tokens the server adds around message contents, from the `usage.prompt_tokens` of two tiny
    requests (one message, then three): what `--count-template` subtracts from each prompt."""
    options = RequestOptions(api=config.api, model=model, stream=False, ignore_eos=False)
    texts = [synthesizer.prompt(n, _PROBE_TOKENS) for n in range(3)]
    one = await _probe_prompt_tokens(config, build_body(options, texts[0], 1)) - _PROBE_TOKENS
    if config.api != "chat":
        return TemplateOverhead(base=one)
    roles = ("user", "assistant", "user")
    messages = [{"role": role, "content": text} for role, text in zip(roles, texts)]
    three = await _probe_prompt_tokens(config, build_body(options, messages, 1)) - 3 * _PROBE_TOKENS
    per_message = (three - one) // 2
    return TemplateOverhead(base=one - per_message, per_message=per_message)


async def _probe_prompt_tokens(config: ClientConfig, body: bytes, timeout_s: float = 60.0) -> int:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.post(config.url, data=body, headers=config.headers(), ssl=config.ssl) as response:
                raw = await response.read()
                if response.status != 200:
                    raise ConfigError(f"--count-template: {redact_url(config.url)}: HTTP {response.status}: {error_message(raw)}")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ConfigError(f"--count-template: {redact_url(config.url)}: {exc or type(exc).__name__}") from None
    try:
        tokens = json.loads(raw)["usage"]["prompt_tokens"]
    except (ValueError, KeyError, TypeError):
        tokens = None
    if not isinstance(tokens, int):
        raise ConfigError(f"--count-template: {redact_url(config.url)} reports no usage.prompt_tokens, so the template cannot be "
                          "measured; leave --count-template off")
    return tokens
