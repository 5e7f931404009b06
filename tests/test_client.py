import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from replayer.client import Client, ClientConfig, _StreamState, error_message, measure_template, root_url
from replayer.errors import ConfigError
from replayer.prompts import PromptSynthesizer, TemplateOverhead
from replayer.records import RequestRecord
from replayer.tokenizer import load_tokenizer

CHUNK = b'{"id":"x","choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}'


def state_after(*payloads: bytes) -> _StreamState:
    state = _StreamState()
    for i, payload in enumerate(payloads):
        state.take(payload, i)
    return state


def test_output_bearing_chunks_are_told_apart_without_decoding():
    state = state_after(
        b'{"choices":[{"delta":{"role":"assistant","content":""}}]}',        # role only: no output
        CHUNK,                                                                 # output
        b'{"choices":[{"delta":{"content":null}}]}',                          # null: no output
        b'{"choices":[{"delta":{"reasoning_content":"think"}}]}',             # reasoning counts
        b'{"choices": [{"text": " spaced", "finish_reason": null}]}',         # spaces after colons
        b'{"choices":[{"delta":{"content":"say \\"text\\":\\"x\\""}}]}',     # escaped keys inside text
        b'{"choices":[{"delta":{},"finish_reason":"length"}]}',
        b'{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3}}',
        b"[DONE]",
    )
    assert list(state.arrivals) == [1, 3, 4, 5]
    assert state.finished and state.done and state.error is None
    assert state.usage_payload.startswith(b'{"choices":[],"usage"')


def test_escaped_key_lookalike_in_content_is_not_an_error():
    state = state_after(b'{"choices":[{"delta":{"content":"the \\"error\\": field"}}]}')
    assert state.error is None and len(state.arrivals) == 1


def test_error_object_mid_stream_is_recorded():
    state = state_after(CHUNK, b'{"error":{"message":"engine died","code":500}}')
    assert state.error == "engine died"


@pytest.mark.parametrize(("body", "message"), [
    (b'{"error":{"message":"too long","code":400}}', "too long"),
    (b'{"object":"error","message":"bad model","code":404}', "bad model"),
    (b'{"error":"Input validation error"}', "Input validation error"),
    (b'{"detail":"Not Found"}', "Not Found"),
    (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
])
def test_error_message_shapes(body, message):
    assert error_message(body) == message


def test_config_validates_url_and_api():
    with pytest.raises(ConfigError, match="--base-url"):
        ClientConfig("localhost:8000")
    with pytest.raises(ConfigError, match="--api"):
        ClientConfig("http://h:1", api="embeddings")
    assert root_url("http://h:1/v1/") == "http://h:1"
    assert ClientConfig("http://h:1/v1", api="completions").url == "http://h:1/v1/completions"
    assert ClientConfig("http://h:1", api_key="k").headers()["Authorization"] == "Bearer k"


def sse(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


def stream_handler(body: bytes, pause_s: float = 0.0):
    """An SSE endpoint that sends `body`, optionally waits, and ends the response."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(body)
        if pause_s:
            await asyncio.sleep(pause_s)
        return response

    return handler


async def rate_limited(request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "slow down"}}, status=429)


ROUTES = {
    "/ok": stream_handler(sse(CHUNK, CHUNK, b'{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}', b"[DONE]")),
    "/nousage": stream_handler(sse(CHUNK, CHUNK, CHUNK, b"[DONE]")),
    "/cut": stream_handler(sse(CHUNK)),
    "/miderror": stream_handler(sse(CHUNK, b'{"error":{"message":"oom"}}', b"[DONE]")),
    "/empty": stream_handler(sse(b"[DONE]")),
    "/slow": stream_handler(sse(CHUNK), pause_s=5),
    "/http429": rate_limited,
}


@contextlib.asynccontextmanager
async def routes_served() -> AsyncIterator[str]:
    """The ROUTES on a loopback port; yields the server root."""
    app = web.Application()
    for route, handler in ROUTES.items():
        app.router.add_post(route + "/v1/chat/completions", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def fill_from(path: str, timeout_s: float = 10.0, cancel_after_s: float | None = None,
                    replies: list | None = None) -> RequestRecord:
    record = RequestRecord(id=1, intended_ns=0, input_tokens=7, output_tokens=2)
    async with routes_served() as root:
        config = ClientConfig(root + path, request_timeout_s=timeout_s)
        async with Client(config, t0_ns=time.perf_counter_ns()) as client:
            task = asyncio.ensure_future(client.fill(record, b"{}", keep_reply=replies is not None))
            if cancel_after_s is not None:
                await asyncio.sleep(cancel_after_s)
                task.cancel()
            [result] = await asyncio.gather(task, return_exceptions=True)
    if replies is not None:
        replies.append(result)
    return record


def test_good_stream_records_timings_and_usage():
    record = asyncio.run(fill_from("/ok"))
    assert record.status == "ok"
    assert (record.served_input_tokens, record.served_output_tokens, record.output_counted) == (7, 2, False)
    assert 0 <= record.sent_ns <= record.first_token_ns <= record.end_ns
    assert len(record.itl_ms) == 1


def test_the_reply_text_is_kept_only_when_asked_for():
    replies = []
    assert asyncio.run(fill_from("/ok", replies=replies)).ok
    assert replies == [" hi hi"]
    assert state_after(CHUNK).outputs is None  # no payloads kept by default


async def _measure(root: str, api: str = "chat") -> TemplateOverhead:
    return await measure_template(ClientConfig(root, api=api), "m", PromptSynthesizer(load_tokenizer(), seed=1))


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_the_template_overhead_is_measured_from_usage(simulator, api):
    with simulator(template=TemplateOverhead(base=4, per_message=6)) as sim:
        measured = asyncio.run(_measure(sim.base_url, api))
    assert measured == (TemplateOverhead(4, 6) if api == "chat" else TemplateOverhead(4, 0))


@pytest.mark.parametrize(("path", "message"), [("/http429", "HTTP 429: slow down"),
                                               ("/ok", "reports no usage.prompt_tokens")])
def test_a_template_probe_that_fails_is_a_one_line_error(path, message):
    async def probe():
        async with routes_served() as root:
            await _measure(root + path)

    with pytest.raises(ConfigError, match=message):
        asyncio.run(probe())


def test_stream_without_usage_counts_chunks_and_says_so():
    record = asyncio.run(fill_from("/nousage"))
    assert (record.status, record.served_output_tokens, record.output_counted) == ("ok", 3, True)
    assert record.served_input_tokens is None


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/cut", "stream", "before [DONE]"),
    ("/miderror", "stream", "oom"),
    ("/empty", "empty", "no output"),
    ("/http429", "http_429", "slow down"),
])
def test_failures_become_records_of_their_kind(path, status, message):
    record = asyncio.run(fill_from(path))
    assert record.status == status
    assert message in record.error
    assert record.end_ns is not None


def test_cut_stream_keeps_its_partial_timings():
    record = asyncio.run(fill_from("/cut"))
    assert record.first_token_ns is not None and record.served_output_tokens == 1


def test_timeout_and_cancel_are_records_too():
    assert asyncio.run(fill_from("/slow", timeout_s=0.5)).status == "timeout"
    cancelled = asyncio.run(fill_from("/slow", cancel_after_s=0.5))
    assert cancelled.status == "cancelled"
    assert cancelled.first_token_ns is not None  # the chunk that did arrive is kept


def test_refused_connection_is_a_connect_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = RequestRecord(id=1, intended_ns=0, input_tokens=1, output_tokens=1)

    async def go():
        async with Client(ClientConfig(f"http://127.0.0.1:{port}")) as client:
            await client.fill(record, b"{}")

    asyncio.run(go())
    assert record.status == "connect"
