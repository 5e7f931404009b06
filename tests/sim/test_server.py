import asyncio
import json

import aiohttp
import pytest

from replayer.errors import ConfigError
from replayer.prompts.tokenizer import load_tokenizer
from replayer.run.target import list_models
from replayer.send.client import ClientConfig, answer_text
from replayer.send.stream import StreamState, usage_of
from replayer.sim.engine import EngineModel
from replayer.sim.faults import Faults


async def post(base_url: str, path: str, body: dict) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + path, json=body) as response:
            return response.status, await response.read()


def events(raw: bytes) -> list[bytes]:
    return [block[6:] for block in raw.split(b"\n\n") if block.startswith(b"data: ")]


def test_models_endpoint_names_the_simulator(simulator):
    with simulator() as sim:
        models = asyncio.run(list_models(ClientConfig(sim.base_url)))
    assert models[0]["id"] == "replayer-sim" and models[0]["owned_by"] == "replayer"


def test_chat_stream_has_role_chunk_one_token_per_chunk_usage_and_done(simulator):
    prompt = "The harbor town wakes before the sun."
    with simulator() as sim:
        status, raw = asyncio.run(post(sim.base_url, "/v1/chat/completions", {
            "model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": 5, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}))
    assert status == 200
    payloads = events(raw)
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = [c["choices"][0]["delta"]["content"] for c in chunks[1:6]]
    assert all(load_tokenizer().count(t) == 1 for t in tokens)
    assert chunks[6]["choices"][0]["finish_reason"] == "length"
    assert chunks[7]["usage"] == {"prompt_tokens": load_tokenizer().count(prompt), "completion_tokens": 5,
                                  "total_tokens": load_tokenizer().count(prompt) + 5}


@pytest.mark.parametrize(("path", "body", "ending"), [
    ("/v1/responses", {"input": [{"role": "user", "content": "The harbor town wakes."}], "max_output_tokens": 6},
     b"response.incomplete"),  # (cut at its cap, as OpenAI's are)
    ("/v1/messages", {"messages": [{"role": "user", "content": "The harbor town wakes."}], "max_tokens": 6},
     b"message_stop"),
])
def test_responses_and_messages_streams_parse_whole_and_split_at_every_byte(simulator, path, body, ending):
    prompt_tokens = load_tokenizer("cl100k_base").count("The harbor town wakes.")
    with simulator() as sim:
        status, raw = asyncio.run(post(sim.base_url, path, {"model": "m", "stream": True, "ignore_eos": True, **body}))
        whole_status, whole = asyncio.run(post(sim.base_url, path, {"model": "m", "ignore_eos": True, **body}))
    assert status == whole_status == 200 and ending in raw and b"[DONE]" not in raw
    for pieces in ([raw], [raw[i:i + 1] for i in range(len(raw))]):
        state = StreamState(keep_outputs=True, events=True)
        for n, piece in enumerate(pieces):
            state(piece, n)
        state.close(len(pieces))
        assert state.error is None and state.finished and len(state.arrivals) == 6
        assert state.usage == {"prompt_tokens": prompt_tokens, "completion_tokens": 6}
    answer = json.loads(whole)
    assert usage_of(answer) == {"prompt_tokens": prompt_tokens, "completion_tokens": 6}
    assert answer_text(answer) == state.reply() != ""


def test_embeddings_give_one_vector_per_input_and_the_inputs_token_count(simulator):
    texts = ["The harbor town wakes.", "Gulls circle the pier."]
    with simulator() as sim:
        status, raw = asyncio.run(post(sim.base_url, "/v1/embeddings", {"model": "m", "input": texts}))
        bad, _ = asyncio.run(post(sim.base_url, "/v1/embeddings", {"model": "m", "input": [1, 2]}))
    answer = json.loads(raw)
    assert status == 200 and bad == 400 and [v["index"] for v in answer["data"]] == [0, 1]
    assert answer["usage"]["prompt_tokens"] == sum(load_tokenizer("cl100k_base").count(t) for t in texts)


def test_usage_chunk_only_when_asked_and_completions_shape(simulator):
    with simulator() as sim:
        _, raw = asyncio.run(post(sim.base_url, "/v1/completions", {
            "prompt": "hello", "max_tokens": 3, "stream": True, "ignore_eos": True}))
    chunks = [json.loads(p) for p in events(raw)[:-1]]
    assert [c["choices"][0]["text"] != "" for c in chunks] == [True, True, True, False]
    assert all("usage" not in c for c in chunks)


def test_without_ignore_eos_length_stays_within_min_and_max(simulator):
    body = {"prompt": "hello", "max_tokens": 40, "min_tokens": 10}

    async def many():
        return await asyncio.gather(*(post(sim.base_url, "/v1/completions", body) for _ in range(20)))

    with simulator() as sim:
        lengths = [json.loads(raw)["usage"]["completion_tokens"] for _, raw in asyncio.run(many())]
    assert all(10 <= n <= 40 for n in lengths)
    assert len(set(lengths)) > 1  # natural lengths vary


def test_too_long_requests_get_http_400(simulator):
    with simulator(engine=EngineModel(max_model_len=100, kv_tokens=1000)) as sim:
        status, raw = asyncio.run(post(sim.base_url, "/v1/completions", {"prompt": "hi", "max_tokens": 200}))
    assert status == 400 and b"maximum context length is 100" in raw


def test_bad_body_gets_http_400(simulator):
    with simulator() as sim:
        status, raw = asyncio.run(post(sim.base_url, "/v1/chat/completions", {"messages": "nope"}))
    assert status == 400 and b"messages" in raw


def test_injected_errors_carry_retry_after_when_asked(simulator):
    with simulator(faults=Faults(error_rates=((429, 1.0),), retry_after_s=2)) as sim:
        async def go():
            async with aiohttp.ClientSession() as session:
                async with session.post(sim.base_url + "/v1/completions", json={"prompt": "hi"}) as response:
                    return response.status, response.headers.get("Retry-After"), await response.read()

        status, retry_after, raw = asyncio.run(go())
    assert (status, retry_after) == (429, "2") and b"injected" in raw


def test_one_draw_picks_at_most_one_fault_in_proportion():
    faults = Faults(error_rates=((429, 0.25), (503, 0.25)), reset_rate=0.25)
    assert [faults.pick(draw) for draw in (0.1, 0.3, 0.6, 0.9)] == [429, 503, "reset", None]
    assert not Faults().active and faults.active


def test_the_simulator_listens_on_loopback_unless_told_otherwise(simulator):
    from replayer.cli import build_parser

    assert build_parser().parse_args(["simulate"]).host == "127.0.0.1"
    with simulator() as sim:
        assert sim.host == "127.0.0.1"


def test_invalid_engine_settings_are_refused():
    with pytest.raises(ConfigError):
        EngineModel(kv_tokens=0)
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        Faults(reset_rate=1.5)
    with pytest.raises(ConfigError, match="HTTP error status"):
        Faults(error_rates=((200, 0.1),))
    with pytest.raises(ConfigError, match="add up to more than 1"):
        Faults(refuse_rate=0.6, drip_rate=0.6)
