import asyncio
import json

import pytest
from aiohttp import web

from replayer.prompts.backends import BACKENDS, backend_from_models, backend_from_probe
from replayer.prompts.bodies import RequestOptions, api_path, build_body
from replayer.run.config import TargetConfig
from replayer.run.target import probe_backend, request_options
from replayer.send.client import ClientConfig


@pytest.mark.parametrize(("owned_by", "backend"), [("vllm", "vllm"), ("sglang", "sglang"), ("llamacpp", "llamacpp"),
                                                   ("tgi", "tgi"), ("replayer", "replayer"), ("me", "llama-cpp-python"),
                                                   ("openai", None), ("system", None), ("", None)])
def test_backend_is_recognised_from_owned_by(owned_by, backend):
    assert backend_from_models([{"id": "m", "owned_by": owned_by}]) == backend
    assert backend_from_models([]) is None


@pytest.mark.parametrize(("path", "answer", "backend"), [
    ("/get_server_info", {"model_path": "m", "tp_size": 1}, "sglang"),
    ("/props", {"default_generation_settings": {}, "total_slots": 1}, "llamacpp"),
    ("/info", {"model_id": "m", "router": "text-generation-router", "max_total_tokens": 4096}, "tgi"),
    ("/version", {"version": "0.8.5"}, "vllm"),
    ("/version", {"version": "1", "git": "x"}, None),
    ("/info", ["not", "an", "object"], None),
])
def test_engines_are_recognised_by_their_own_endpoints(path, answer, backend):
    assert backend_from_probe(path, answer) == backend


def test_auto_detection_asks_the_engine_endpoints_in_turn():
    async def info(request: web.Request) -> web.Response:
        return web.json_response({"model_id": "m", "router": "text-generation-router", "max_total_tokens": 4096})

    async def go():
        app = web.Application()
        app.router.add_get("/info", info)  # the others answer 404
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            return await probe_backend(ClientConfig(f"http://127.0.0.1:{runner.addresses[0][1]}"))
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == ("tgi", "GET /info")


def test_each_dialect_shapes_its_bodies():
    assert {name for name, backend in BACKENDS.items() if backend.forces_length("chat")} == {
        "vllm", "sglang", "llamacpp", "llama-cpp-python", "replayer"}
    assert not BACKENDS["vllm"].forces_length("messages")  # (vLLM's Anthropic request has no ignore_eos)

    def body(backend: str, api: str = "chat") -> dict:
        return json.loads(build_body(request_options(TargetConfig(api=api), "m", backend), "hi", 7))

    assert body("vllm")["ignore_eos"] and body("vllm")["stream_options"] == {"include_usage": True}
    assert "ignore_eos" not in body("vllm", "messages") and "min_tokens" not in body("vllm", "messages")
    python = body("llama-cpp-python")
    assert python["min_tokens"] == python["max_tokens"] == 7 and "ignore_eos" not in python
    openai = body("openai")
    assert openai["max_completion_tokens"] == 7 and "max_tokens" not in openai and "ignore_eos" not in openai
    assert body("openai", "completions")["max_tokens"] == 7
    tgi = body("tgi")
    assert "stream_options" not in tgi and "ignore_eos" not in tgi and tgi["max_tokens"] == 7
    assert body("tgi", "tgi-generate") == {"inputs": "hi", "parameters": {"max_new_tokens": 7, "details": True}}


def test_tgi_native_api_paths_follow_streaming():
    assert api_path("tgi-generate", True) == "/generate_stream" and api_path("tgi-generate", False) == "/generate"
    assert api_path("chat", False) == "/v1/chat/completions"
    assert ClientConfig("http://h:1", api="tgi-generate", stream=False).url == "http://h:1/generate"
    assert RequestOptions(api="tgi-generate").api == "tgi-generate"
