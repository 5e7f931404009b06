import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from replayer.bench.harness import stream_server_process
from replayer.bench.server import EMISSIONS
from replayer.send.http import ConnectionPool
from replayer.send.stream import StreamState

MS = 1_000_000
TOKENS = 6
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": TOKENS,
                   "stream": True, "stream_options": {"include_usage": True}}).encode()


PERIOD_MS = 20


async def _two_streams_half_a_period_apart(base_url: str) -> list[StreamState]:
    pool = ConnectionPool(base_url + "/v1/chat/completions", {"Content-Type": "application/json"})
    states = [StreamState(keep_outputs=True), StreamState(keep_outputs=True)]

    async def one(index: int) -> None:
        await asyncio.sleep(index * PERIOD_MS / 2000)
        await pool.request(BODY, states[index], b"X-Request-Id: r%d\r\n" % index)

    try:
        await asyncio.gather(one(0), one(1))
    finally:
        pool.close()
    return states


@pytest.mark.parametrize("emission", EMISSIONS)
def test_the_stream_server_paces_chunks_by_its_emission_mode(tmp_path, emission):
    truth_log = tmp_path / "truth.jsonl"
    with stream_server_process(truth_log, None, emission, ms_per_token=PERIOD_MS) as base_url:
        states = asyncio.run(_two_streams_half_a_period_apart(base_url))
    for state in states:  # vLLM's chunk shapes: role chunk, one token per chunk, finish, usage, [DONE]
        assert len(state.arrivals) == TOKENS and state.finished and state.done and state.error is None
        assert state.usage is not None and state.usage["completion_tokens"] == TOKENS and state.usage["prompt_tokens"]
        assert state.reply()
    first, second = sorted((json.loads(line) for line in truth_log.read_text().splitlines()),
                           key=lambda entry: entry["received_ns"])
    assert [first["id"], second["id"]] == ["r0", "r1"] and len(first["chunk_ns"]) == TOKENS
    # how far each write of the later stream lies from the nearest write of the earlier one
    apart = [min(abs(t - u) for u in first["chunk_ns"]) for t in second["chunk_ns"]]
    if emission == "step":  # one engine step writes both streams' chunks
        assert max(apart) < 1 * MS
    else:  # each stream keeps its own pace from its arrival, within the server's 1 ms tick
        assert np.median(apart) > 3 * MS  # (half a period, 10 ms, unless the server stalled that long)
        for entry in (first, second):
            due = entry["received_ns"] + np.arange(1, TOKENS + 1) * PERIOD_MS * MS
            assert (np.asarray(entry["chunk_ns"]) - due > -1 * MS).all()


def test_the_stream_server_answers_models_and_refuses_what_it_does_not_serve(tmp_path):
    with stream_server_process(tmp_path / "truth.jsonl", None, "step") as base_url:
        with urllib.request.urlopen(base_url + "/v1/models", timeout=5) as answer:
            assert json.loads(answer.read())["data"][0]["id"]
        for path, body in (("/v1/chat/completions", b"not json"), ("/v1/chat/completions", b'{"messages":[]}'),
                           ("/v2/other", b"{}")):
            request = urllib.request.Request(base_url + path, data=body, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code in (400, 404)
