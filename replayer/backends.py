"""Serving-engine flavours: which request fields force an exact output length, and which to leave out.

`max_tokens` caps the output everywhere, but only some engines can be told to ignore the end-of-
sequence token, so that the output is exactly the trace's length:

| backend  | forces the length with | notes |
|----------|------------------------|-------|
| vllm     | `ignore_eos`           | also accepts `min_tokens`; `stream_options.include_usage` gives usage |
| sglang   | `ignore_eos`           | same OpenAI extensions as vLLM |
| llamacpp | `ignore_eos`           | llama-server takes its native sampling fields in the OpenAI body |
| tgi      | (nothing)              | the Messages API has no ignore_eos: outputs may end early |
| openai   | (nothing)              | strict OpenAI servers may reject unknown fields, so none are sent |
| replayer | `ignore_eos`           | the built-in simulator |

Requests that end early (or late) are counted in the run summary's `token_mismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """What a serving engine accepts in an OpenAI-compatible request body."""

    name: str
    forces_length: bool
    """Accepts `ignore_eos`, so an output runs to `max_tokens`."""


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("vllm", forces_length=True),
    Backend("sglang", forces_length=True),
    Backend("llamacpp", forces_length=True),
    Backend("tgi", forces_length=False),
    Backend("openai", forces_length=False),
    Backend("replayer", forces_length=True),
)}

_OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llamacpp", "llama.cpp": "llamacpp",
             "tgi": "tgi", "text-generation-inference": "tgi", "replayer": "replayer"}
"""`owned_by` values in `/v1/models` that name the engine."""


def detect_backend(models: list[dict]) -> str:
    """The engine named by `/v1/models` (`owned_by`); `openai` (send nothing extra) when unknown."""
    owner = str(models[0].get("owned_by", "")).lower() if models else ""
    return _OWNED_BY.get(owner, "openai")
