import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from array import array
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from replayer.errors import ConfigError
from replayer.prompts.synthesis import PromptSynthesizer, TemplateOverhead
from replayer.prompts.tokenizer import load_tokenizer
from replayer.records import RequestRecord
from replayer.run.target import measure_template
from replayer.send.addressing import parse_header, redact_headers, redact_url, root_url, row_of_request_id
from replayer.send.client import Client, ClientConfig, Timeouts, gaps_us, retry_wait_s
from replayer.send.stream import StreamState, apply_usage, error_message

CHUNK = b'{"id":"x","choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}'
FINISH = b'{"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}'


def state_after(*payloads: bytes, events: bool = False) -> StreamState:
    state = StreamState(events=events)
    for i, payload in enumerate(payloads):
        state.take(payload, i)
    return state


@pytest.mark.parametrize("arrivals", [3, 200])  # below and above the numpy pass's threshold
def test_inter_token_gaps_are_whole_microseconds_rounded_half_up(arrivals):
    times = [1_000 * i * i + (499 if i % 3 == 1 else 500 if i % 3 == 2 else 0) for i in range(arrivals)]
    expected = [round((later - earlier) / 1000 + 1e-9) for earlier, later in zip(times, times[1:])]
    assert gaps_us(array("q", times)) == expected
    assert gaps_us(array("q", times[:1])) == [] and gaps_us(array("q")) == []


def test_output_bearing_chunks_are_told_apart():
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
    assert state.usage == {"prompt_tokens": 4, "completion_tokens": 3}


def test_escaped_key_lookalike_in_content_is_not_an_error():
    state = state_after(b'{"choices":[{"delta":{"content":"the \\"error\\": field"}}]}')
    assert state.error is None and len(state.arrivals) == 1


def test_error_object_mid_stream_is_recorded():
    state = state_after(CHUNK, b'{"error":{"message":"engine died","code":500}}')
    assert state.error == "engine died"


@pytest.mark.parametrize(("event", "message"), [
    (b'{"type":"error","code":"server_error","message":"engine died","param":null,"sequence_number":3}',
     "engine died"),  # OpenAI Responses
    (b'{"type":"response.failed","sequence_number":4,"response":{"status":"failed","error":'
     b'{"code":"server_error","message":"engine died"},"usage":null}}', "engine died"),
    (b'{"type":"error","error":{"type":"overloaded_error","message":"engine died"}}', "engine died"),  # Anthropic
])
def test_typed_error_events_fail_the_stream_with_their_message(event, message):
    delta = b'{"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"a"}'
    state = state_after(delta, event, events=True)
    assert state.error == message and len(state.arrivals) == 1


def test_a_responses_stream_cut_at_max_output_tokens_is_whole_and_reasoning_counts_as_output():
    state = state_after(
        b'{"type":"response.reasoning_text.delta","item_id":"r","output_index":0,"content_index":0,"delta":"hm"}',
        b'{"type":"response.output_text.delta","item_id":"m","output_index":1,"content_index":0,"delta":""}',
        b'{"type":"response.output_text.delta","item_id":"m","output_index":1,"content_index":0,"delta":"Hi"}',
        b'{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":'
        b'{"reason":"max_output_tokens"},"usage":{"input_tokens":5,"output_tokens":2,"total_tokens":7}}}',
        events=True,
    )
    assert list(state.arrivals) == [0, 2] and state.finished and state.error is None
    assert state.usage == {"prompt_tokens": 5, "completion_tokens": 2}


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
        ClientConfig("http://h:1", api="rerank")
    assert root_url("http://h:1/v1/") == "http://h:1"
    assert ClientConfig("http://h:1/v1", api="completions").url == "http://h:1/v1/completions"
    assert ClientConfig("http://h:1", api_key="k").headers()["Authorization"] == "Bearer k"
    assert ClientConfig("http://me:pw@h:1/v1").headers()["Authorization"] == "Basic bWU6cHc="  # base64 of me:pw
    assert root_url("http://me:pw@h:1/v1") == "http://h:1" and ClientConfig("http://me:pw@h:1").url == "http://h:1/v1/chat/completions"


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


def limited_then_ok(limited: int):
    """The first `limited` requests get 429 with Retry-After: 0.1, the rest a good stream."""
    seen = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("X-Request-Id"))
        if len(seen) <= limited:
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0.1"})
        return await ROUTES["/ok"](request)

    return handler


async def html_page(request: web.Request) -> web.Response:
    return web.Response(text="<html>Login required</html>", content_type="text/html")


async def echo_headers(request: web.Request) -> web.StreamResponse:
    global SEEN_HEADERS
    SEEN_HEADERS = request.headers.copy()  # (case-insensitive names)
    return await ROUTES["/ok"](request)


SEEN_HEADERS: dict = {}


ROUTES = {
    "/ok": stream_handler(
        sse(CHUNK, CHUNK, FINISH, b'{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}', b"[DONE]")
    ),
    "/nousage": stream_handler(sse(CHUNK, CHUNK, CHUNK, FINISH, b"[DONE]")),
    "/unfinished": stream_handler(sse(CHUNK, CHUNK, b"[DONE]")),
    "/cut": stream_handler(sse(CHUNK)),
    "/miderror": stream_handler(sse(CHUNK, b'{"error":{"message":"oom"}}', b"[DONE]")),
    "/empty": stream_handler(sse(b"[DONE]")),
    "/slow": stream_handler(sse(CHUNK), pause_s=5),
    "/silent": stream_handler(sse(b'{"choices":[{"delta":{"role":"assistant","content":""}}]}'), pause_s=5),
    "/malformed": stream_handler(sse(CHUNK, b'{"choices":[{"delta":{"content":"cu', CHUNK, b"[DONE]")),
    "/invalid-json": stream_handler(sse(CHUNK, b'{"choices":[{"delta":{"content":"a"}},]}', CHUNK, b"[DONE]")),
    "/wrong-shape": stream_handler(sse(CHUNK, b'{"choices":[{"delta":{"content":7}}]}', CHUNK, b"[DONE]")),
    "/html": html_page,
    "/headers": echo_headers,
    "/http429": rate_limited,
}


@contextlib.asynccontextmanager
async def routes_served(tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """The ROUTES on a loopback port (over TLS with `tls`); yields the server root."""
    app = web.Application()
    for route, handler in ROUTES.items():
        app.router.add_post(route + "/v1/chat/completions", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def fill_from(
    path: str, cancel_after_s: float | None = None, replies: list | None = None, **settings
) -> RequestRecord:
    """Send one request to a ROUTES path with ClientConfig `settings`; its record."""
    record = RequestRecord(id=1, intended_ns=0, input_tokens=7, output_tokens=2)
    async with routes_served() as root:
        config = ClientConfig(root + path, **{"timeouts": Timeouts(total_s=10.0), **settings})
        async with Client(config, t0_ns=time.perf_counter_ns()) as client:
            task = asyncio.ensure_future(client.send(record, b"{}", keep_reply=replies is not None))
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
    assert len(record.itl_us) == 1


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


@pytest.mark.parametrize(
    ("path", "message"), [("/http429", "HTTP 429: slow down"), ("/ok", "reports no usage.prompt_tokens")]
)
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


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/cut", "stream", "before [DONE]"),
        ("/unfinished", "stream", "without a finish_reason: the server cut the stream short"),
        ("/miderror", "stream", "oom"),
        ("/empty", "empty", "no output"),
        ("/http429", "http_429", "slow down"),
        ("/malformed", "stream", "malformed event"),
        ("/html", "stream", "answered text/html; charset=utf-8 instead of an event stream: <html>Login required"),
    ],
)
def test_failures_become_records_of_their_kind(path, status, message):
    record = asyncio.run(fill_from(path))
    assert record.status == status
    assert message in record.error
    assert record.end_ns is not None


def test_cut_stream_keeps_its_partial_timings():
    record = asyncio.run(fill_from("/cut"))
    assert record.first_token_ns is not None and record.served_output_tokens == 1


@pytest.mark.parametrize(("path", "message"), [
    ("/malformed", "malformed event (Input data was truncated)"),  # cut inside a string
    ("/invalid-json", "malformed event (JSON is malformed"),  # framed by braces, yet not JSON
    ("/wrong-shape", "malformed event (Expected `str | null`, got `int` - at `$.choices[0].delta.content`)"),
])
def test_a_malformed_chunk_fails_the_stream_but_keeps_its_timings(path, message):
    record = asyncio.run(fill_from(path))
    assert record.status == "stream" and record.served_output_tokens == 2 and len(record.itl_us) == 1
    assert record.error.startswith(message)


@pytest.mark.parametrize(
    ("path", "timeouts", "kind"),
    [
        ("/silent", Timeouts(first_token_s=0.3), "timeout_first_token"),
        ("/slow", Timeouts(between_tokens_s=0.3), "timeout_between_tokens"),
        ("/slow", Timeouts(total_s=0.3), "timeout_total"),
    ],
)
def test_each_timeout_phase_is_its_own_failure_kind(path, timeouts, kind):
    record = asyncio.run(fill_from(path, timeouts=timeouts))
    assert record.status == kind, record.error
    assert record.end_ns - record.sent_ns < 2e9  # it did not wait for the route's 5 s pause


def test_timeout_and_cancel_are_records_too():
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
            await client.send(record, b"{}")

    asyncio.run(go())
    assert record.status == "connect"


def fill_limited(limited: int, **settings) -> RequestRecord:
    ROUTES["/limited"] = limited_then_ok(limited)
    return asyncio.run(fill_from("/limited", **settings))


def test_a_429_is_final_unless_retries_are_asked_for():
    assert fill_limited(2).status == "http_429"
    record = fill_limited(2, retry_429=1)
    assert (record.status, record.retries) == ("http_429", 1)
    record = fill_limited(2, retry_429=3)
    assert (record.status, record.retries) == ("ok", 2)
    assert record.first_token_ns - record.sent_ns >= 0.2e9  # the two Retry-After waits are in its TTFT


def test_retry_wait_reads_seconds_or_a_date():
    assert retry_wait_s(b"2.5", 0) == 2.5
    assert retry_wait_s(None, 0) == 1.0 and retry_wait_s(b"soon", 2) == 4.0
    assert retry_wait_s(b"Wed, 21 Oct 2015 07:28:00 GMT", 0) == 0.0  # a date in the past: at once


def test_custom_headers_are_sent_and_override_defaults():
    record = asyncio.run(
        fill_from("/headers", api_key="k", extra_headers=(("X-Tenant", "a"), ("authorization", "Basic b")))
    )
    assert record.ok
    assert SEEN_HEADERS["X-Tenant"] == "a" and SEEN_HEADERS["Authorization"] == "Basic b"
    request_id = uuid.UUID(SEEN_HEADERS["X-Request-Id"])  # a valid UUID (some servers refuse anything else)
    assert request_id.version == 4 and row_of_request_id(SEEN_HEADERS["X-Request-Id"]) == record.id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no colon here", "expected 'Name: value'"),
        ("Bad Name: x", "expected 'Name: value'"),
        ("Host: evil", "set by replayer"),
    ],
)
def test_bad_headers_are_refused_without_echoing_them(text, message):
    with pytest.raises(ConfigError, match=message) as error:
        parse_header(text)
    assert "no colon here" not in str(error.value)


def test_credential_like_headers_and_url_passwords_are_redacted():
    headers = (
        parse_header("X-Api-Key: s1"),
        parse_header("Proxy-Authorization: s2"),
        parse_header("X-Trace: Bearer s3"),
        parse_header("X-Tenant: team-a"),
    )
    assert redact_headers(headers) == [
        "X-Api-Key: <redacted>",
        "Proxy-Authorization: <redacted>",
        "X-Trace: <redacted>",
        "X-Tenant: team-a",
    ]
    assert redact_url("https://me:s4@h:1/v1") == "https://me:<redacted>@h:1/v1"
    assert redact_url("http://h:1") == "http://h:1"


def fill_at(url: str, **settings) -> RequestRecord:
    record = RequestRecord(id=1, intended_ns=0, input_tokens=1, output_tokens=1)

    async def go():
        async with Client(ClientConfig(url, **settings)) as client:
            await client.send(record, b"{}")

    asyncio.run(go())
    return record


def test_an_unresolvable_host_is_a_dns_failure():
    record = fill_at("http://replayer-test.invalid:8000")
    assert record.status == "dns" and "replayer-test.invalid" in record.error


def test_tls_to_a_plain_server_is_a_tls_failure():
    async def go() -> RequestRecord:
        async with routes_served() as root:
            return await asyncio.to_thread(fill_at, root.replace("http://", "https://") + "/ok")

    record = asyncio.run(go())
    assert record.status == "tls" and "TLS handshake" in record.error


def test_a_connection_the_server_never_accepts_is_a_connect_timeout():
    with socket.socket() as full:  # a listener whose accept queue is full: SYNs go unanswered
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        waiting = [socket.socket() for _ in range(3)]
        for sock in waiting:
            sock.setblocking(False)
            sock.connect_ex(full.getsockname())
        try:
            record = fill_at(f"http://127.0.0.1:{full.getsockname()[1]}", timeouts=Timeouts(connect_s=0.3))
        finally:
            for sock in waiting:
                sock.close()
    assert record.status == "timeout_connect", record.error


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_tls_certificates_are_verified_unless_insecure(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def go(**settings) -> RequestRecord:
        async with routes_served(tls=context) as root:
            return await asyncio.to_thread(fill_at, root + "/ok", **settings)

    refused = asyncio.run(go())
    assert refused.status == "tls" and "self-signed certificate" in refused.error
    assert asyncio.run(go(verify_tls=False)).ok


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sse"
EVENT_FIXTURES = ("openai-responses.sse", "anthropic-messages.sse")
"""The fixtures of the APIs whose streams are typed events (`StreamState(events=True)`)."""
DIALECTS = {  # fixture: (output-bearing chunks, served output tokens, prompt tokens, tokens counted from chunks)
    "vllm-chat.sse": (3, 4, 12, False),  # ", friend" is one chunk of two tokens: ITL per chunk, TPOT per token
    "vllm-reasoning.sse": (3, 6, 9, False),  # reasoning_content deltas are output
    "sglang-chat.sse": (2, 2, 8, False),  # an empty content delta is not output
    "tgi-messages.sse": (3, 3, None, True),  # no usage in TGI's stream: one token per chunk, counted
    "tgi-generate-stream.sse": (3, 3, None, False),  # TGI's native API: details.generated_tokens, no [DONE]
    "openai-chat.sse": (2, 3, 11, False),
    "llamacpp-server-chat.sse": (2, 2, 10, False),  # a null content delta is not output
    "llama-cpp-python-chat.sse": (5, 5, None, True),  # recorded from the real server: no usage in its streams
    "llama-cpp-python-completions.sse": (5, 5, None, True),
    "openai-responses.sse": (3, 3, 12, False),  # usage from response.completed, in input/output_tokens terms
    "anthropic-messages.sse": (3, 7, 25, False),  # input from message_start, output from message_delta
}


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.sse")))
def test_each_dialect_fixture_parses_to_its_chunks_and_token_counts(name):
    raw = (FIXTURES / name).read_bytes()
    states = []
    for pieces in ([raw], [raw[i : i + 1] for i in range(len(raw))], [raw[i : i + 7] for i in range(0, len(raw), 7)]):
        state = StreamState(events=name in EVENT_FIXTURES)
        for n, piece in enumerate(pieces):
            state(piece, n)
        state.close(len(pieces))
        states.append(state)
    chunks = {len(state.arrivals) for state in states}
    assert len(chunks) == 1 and all(s.error is None and (s.done or s.finished) for s in states), name
    record = RequestRecord(id=1, intended_ns=0, input_tokens=1, output_tokens=1)
    apply_usage(record, states[0].usage or {}, len(states[0].arrivals))
    expected_chunks, tokens, prompt, counted = DIALECTS[name]
    assert chunks == {expected_chunks}
    assert (record.served_output_tokens, record.served_input_tokens, record.output_counted) == (tokens, prompt, counted)


def test_tgi_native_answers_are_read_with_their_details_counts():
    stream_body = (FIXTURES / "tgi-generate-stream.sse").read_bytes()

    async def generate(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "generated_text": "The sky is",
                "details": {"finish_reason": "length", "generated_tokens": 3, "seed": None},
            }
        )

    async def generate_stream(request: web.Request) -> web.StreamResponse:
        return await stream_handler(stream_body)(request)

    async def go(stream: bool) -> RequestRecord:
        app = web.Application()
        app.router.add_post("/generate", generate)
        app.router.add_post("/generate_stream", generate_stream)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        record = RequestRecord(id=1, intended_ns=0, input_tokens=3, output_tokens=3)
        try:
            config = ClientConfig(f"http://127.0.0.1:{runner.addresses[0][1]}", api="tgi-generate", stream=stream)
            async with Client(config, t0_ns=time.perf_counter_ns()) as client:
                await client.send(record, b'{"inputs":"x","parameters":{"max_new_tokens":3,"details":true}}')
        finally:
            await runner.cleanup()
        return record

    for stream in (True, False):
        record = asyncio.run(go(stream))
        assert (record.status, record.served_output_tokens, record.output_counted) == ("ok", 3, False), record.error
        assert len(record.itl_us) == (2 if stream else 0)
