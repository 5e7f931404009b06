"""Serving-engine dialects: which request fields force an exact output length, whether a stream can
carry usage, and how `--backend auto` recognises the engine.

`max_tokens` caps the output everywhere, but only some engines can be told to ignore the end-of-
sequence token, so that the output is exactly the trace's length:

| backend  | forces the length with | usage in a stream | notes |
|----------|------------------------|-------------------|-------|
| vllm     | `ignore_eos`           | yes               | also accepts `min_tokens`; its `/v1/messages` takes neither |
| sglang   | `ignore_eos`           | yes               | the same OpenAI extensions as vLLM |
| llamacpp | `ignore_eos`           | yes               | llama-server takes its native sampling fields in the OpenAI body |
| llama-cpp-python | `min_tokens` = `max_tokens` | no    | ignores ignore_eos and stream_options; its /v1/models says owned_by "me" |
| tgi      | (nothing)              | no                | the Messages API has no ignore_eos; chunks are counted (one token each) |
| openai   | (nothing)              | yes               | strict servers reject unknown fields, so none are sent; chat uses `max_completion_tokens` |
| replayer | `ignore_eos`           | yes               | the built-in simulator |

Whatever the engine, output-bearing chunks are what ITL measures (the gap between chunks, which
carry several tokens when a server batches them), while token counts come from `usage` (or
TGI's `details`) and TPOT divides by tokens. Requests that end early or late are counted in the
summary's `token_mismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """What a serving engine accepts in an OpenAI-compatible request body."""

    name: str
    force_with: str | None
    """The field that makes an output run to `max_tokens`: `ignore_eos`, `min_tokens`, or None."""
    stream_usage: bool = True
    """Honours `stream_options.include_usage` (a usage chunk before `[DONE]`)."""
    chat_length_field: str = "max_tokens"
    """The chat API's cap on output tokens (OpenAI's own API wants `max_completion_tokens`)."""
    unforced_apis: tuple[str, ...] = ()
    """APIs whose request takes no `force_with` field here, so their outputs end where the model stops
    (vLLM's Anthropic-style `/v1/messages` request has neither `ignore_eos` nor `min_tokens`)."""

    def forces_length(self, api: str) -> bool:
        """Whether outputs of `api` can be made to run to `max_tokens` exactly."""
        return self.force_with is not None and api not in self.unforced_apis


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("vllm", force_with="ignore_eos", unforced_apis=("messages",)),
        Backend("sglang", force_with="ignore_eos"),
        Backend("llamacpp", force_with="ignore_eos"),
        Backend("llama-cpp-python", force_with="min_tokens", stream_usage=False),
        Backend("tgi", force_with=None, stream_usage=False),
        Backend("openai", force_with=None, chat_length_field="max_completion_tokens"),
        Backend("replayer", force_with="ignore_eos"),
    )
}

_OWNED_BY = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llamacpp",
    "llama.cpp": "llamacpp",
    "tgi": "tgi",
    "text-generation-inference": "tgi",
    "replayer": "replayer",
    "me": "llama-cpp-python",
}
"""`owned_by` values in `/v1/models` that name the engine."""

PROBES = ("/get_server_info", "/props", "/info", "/version")
"""Engine-specific endpoints `--backend auto` asks (in this order) when `/v1/models` does not say."""


def backend_from_models(models: list[dict]) -> str | None:
    """The engine named by `/v1/models` (`owned_by`), if it names one."""
    owner = str(models[0].get("owned_by", "")).lower() if models else ""
    return _OWNED_BY.get(owner)


def backend_from_probe(path: str, data: object) -> str | None:
    """The engine whose answer to GET `path` looks like `data`, if any: SGLang's server info, llama.cpp's
    props, TGI's info, vLLM's version."""
    if not isinstance(data, dict):
        return None
    if path == "/get_server_info" and "model_path" in data:
        return "sglang"
    if path == "/props" and "default_generation_settings" in data:
        return "llamacpp"
    if path == "/info" and "model_id" in data and ("router" in data or "max_total_tokens" in data):
        return "tgi"
    if path == "/version" and set(data) == {"version"}:
        return "vllm"
    return None
