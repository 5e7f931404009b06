"""OpenAI-compatible HTTP client: sends one prepared body, fills in its `RequestRecord`.

Every outcome is a record, never an exception that ends the run: connection failures, timeouts,
HTTP errors, broken or malformed streams and empty answers each become a failure kind.

Requests go over `replayer.http`'s keep-alive connections. Per network read the hot path does: one
clock read on receipt (before any parsing, in the protocol callback itself), the SSE split, and one
regex pass that finds which top-level keys carry values. Inside a JSON string every quote is
escaped, so a match of `"content":"x` can only be a real key with a non-empty string value: that
test is exact, and only the rare usage and error payloads are decoded with `json`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from array import array
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from replayer.bodies import API_PATHS, RequestOptions, build_body
from replayer.errors import ConfigError
from replayer.http import ConnectError, ConnectionPool, StreamError
from replayer.prompts import PromptSynthesizer, TemplateOverhead
from replayer.records import RequestRecord
from replayer.sse import SSEParser

_KEYS = re.compile(rb'"(content|reasoning_content|reasoning|text|finish_reason|usage|error)"\s*:\s*(.?.?)')
_OUTPUT_KEYS = frozenset((b"content", b"reasoning_content", b"reasoning", b"text"))
_DONE = b"[DONE]"
_ERROR_TEXT_LIMIT = 300


@dataclass(frozen=True)
class ClientConfig:
    """Where and how requests are sent."""

    base_url: str
    api: str = "chat"
    stream: bool = True
    api_key: str | None = None
    request_timeout_s: float = 600.0
    connect_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--base-url must look like http://host:port, got {self.base_url!r}")
        if self.api not in API_PATHS:
            raise ConfigError(f"--api must be one of {', '.join(API_PATHS)}, got {self.api!r}")

    @property
    def url(self) -> str:
        return root_url(self.base_url) + API_PATHS[self.api]

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def root_url(base_url: str) -> str:
    """The server root: users pass either `http://host:port` or `http://host:port/v1`."""
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
        for _, payload in self.parser.feed(data):
            self.take(payload, now_ns)
        return self.done

    def take(self, payload: bytes, now_ns: int) -> None:
        """Account for one event's data, received at `now_ns`."""
        if payload == _DONE:
            self.done = True
            return
        has_output = False
        for key, value in _KEYS.findall(payload):
            if key in _OUTPUT_KEYS:
                if value[:1] == b'"' and value[1:2] != b'"':
                    has_output = True
            elif key == b"finish_reason":
                if value[:1] == b'"':
                    self.finished = True
            elif key == b"usage":
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
        usage = json.loads(payload).get("usage")
    except (ValueError, AttributeError):
        return {}
    return usage if isinstance(usage, dict) else {}


def _apply_usage(record: RequestRecord, usage: dict, counted_output: int) -> None:
    record.served_input_tokens = usage.get("prompt_tokens")
    served_output = usage.get("completion_tokens")
    if served_output is None:
        record.served_output_tokens = counted_output
        record.output_counted = True
    else:
        record.served_output_tokens = served_output


class Client:
    """Keep-alive connections to the server for the whole run; `fill` sends one request and completes
    its record."""

    def __init__(self, config: ClientConfig, t0_ns: int = 0):
        self.config = config
        self.t0_ns = t0_ns
        self._pool: ConnectionPool | None = None

    async def __aenter__(self) -> Client:
        self._pool = ConnectionPool(self.config.url, self.config.headers(), self.config.connect_timeout_s)
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.close()

    async def fill(self, record: RequestRecord, body: bytes, keep_reply: bool = False) -> str | None:
        """Send `body` now and record what happens; cancellation propagates after the record is marked.
        With `keep_reply`, return the reply's text (for session histories); otherwise None."""
        assert self._pool is not None, "use Client as an async context manager"
        t0 = self.t0_ns
        clock = time.perf_counter_ns
        state = _StreamState(keep_reply) if self.config.stream else None
        record.sent_ns = clock() - t0
        try:
            response = await self._pool.request(body, state, b"X-Request-Id: %d\r\n" % record.id,
                                                self.config.request_timeout_s)
        except asyncio.CancelledError:
            self._end_stream(record, state, "cancelled", "run stopped before the response finished")
            raise
        except asyncio.TimeoutError:
            self._end_stream(record, state, "timeout", "request timed out")
        except ConnectError as exc:
            record.fail("connect", str(exc), clock() - t0)
        except StreamError as exc:
            self._end_stream(record, state, "stream", str(exc))
        else:
            if response.status != 200:
                record.fail(f"http_{response.status}", error_message(response.body), clock() - t0)
            elif state is not None:
                state.close(clock())
                self._end_stream(record, state)
                return state.reply() if keep_reply else None
            else:
                return self._take_whole(record, response.body, keep_reply)
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
            choice = data["choices"][0]
            text = choice.get("text") or (choice.get("message") or {}).get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            record.fail("stream", "malformed response body: " + error_message(raw), now)
            return None
        # Without streaming the first token is only seen with the whole answer (as vLLM's bench does).
        record.first_token_ns = record.end_ns = now
        _apply_usage(record, data.get("usage") or {}, 1 if text else 0)
        if not text:
            record.fail("empty", "the response carried no output text", now)
        return text if keep_reply else None


async def list_models(base_url: str, api_key: str | None = None, timeout_s: float = 10.0) -> list[dict]:
    """The server's `/v1/models` entries (used to pick a default model and recognise the backend)."""
    config = ClientConfig(base_url, api_key=api_key)
    url = root_url(base_url) + "/v1/models"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            async with session.get(url, headers=config.headers()) as response:
                if response.status != 200:
                    raise ConfigError(f"{url}: HTTP {response.status}: {error_message(await response.read())}")
                data = await response.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ConfigError(f"{url}: cannot list models ({exc or type(exc).__name__}); pass --model") from None
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{url}: unexpected answer (no 'data' list); pass --model")
    return [entry for entry in entries if isinstance(entry, dict)]


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
            async with session.post(config.url, data=body, headers=config.headers()) as response:
                raw = await response.read()
                if response.status != 200:
                    raise ConfigError(f"--count-template: {config.url}: HTTP {response.status}: {error_message(raw)}")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ConfigError(f"--count-template: {config.url}: {exc or type(exc).__name__}") from None
    try:
        tokens = json.loads(raw)["usage"]["prompt_tokens"]
    except (ValueError, KeyError, TypeError):
        tokens = None
    if not isinstance(tokens, int):
        raise ConfigError(f"--count-template: {config.url} reports no usage.prompt_tokens, so the template cannot be "
                          "measured; leave --count-template off")
    return tokens
