"""The target, settled once before any load: which model to ask for, which engine serves it (and
so which dialect its bodies speak), and, with `--count-template`, how its chat template counts.

Settled in the parent and handed to every shard, so all `--workers` processes and Ray actors build
exactly the bodies a single process would.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass

import aiohttp

from replayer.errors import ConfigError
from replayer.prompts.backends import BACKENDS, PROBES, backend_from_models, backend_from_probe
from replayer.prompts.bodies import RequestOptions, build_body
from replayer.prompts.synthesis import PromptSynthesizer, TemplateOverhead
from replayer.prompts.tokenizer import load_tokenizer
from replayer.run.config import PromptConfig, TargetConfig
from replayer.send.addressing import redact_url, root_url
from replayer.send.client import ClientConfig
from replayer.send.stream import error_message
from replayer.sim.server import DEFAULT_MODEL

TGI_NATIVE = "tgi-generate"
"""The API whose requests name no model (TGI serves one)."""


@dataclass(frozen=True)
class Target:
    """What every request goes to and how it is built."""

    client: ClientConfig
    model: str
    backend: str
    backend_source: str
    """How the backend was known: the flag, `/v1/models`, or an engine endpoint that answered."""
    options: RequestOptions
    template: TemplateOverhead
    seed: int
    """The prompt seed every shard uses."""

    @property
    def base_url(self) -> str:
        return self.client.base_url


async def resolve_target(target: TargetConfig, prompts: PromptConfig, base_url: str) -> Target:
    """Ask the server what it serves (and, with `count_template`, how its template counts)."""
    client = target.client(base_url)
    model, backend, source = await _model_and_backend(target, client)
    seed = prompt_seed(prompts)
    template = TemplateOverhead()
    if prompts.count_template:
        synthesizer = PromptSynthesizer(load_tokenizer(prompts.tokenizer), seed=seed)
        template = await measure_template(client, model, synthesizer)
    return Target(client, model, backend, source, request_options(target, model, backend), template, seed)


def dry_run_target(target: TargetConfig, prompts: PromptConfig) -> Target:
    """The target of a dry run, which contacts no server: the simulator's model, or the given one."""
    builtin = target.base_url is None
    model = target.model or (DEFAULT_MODEL if builtin else "default")
    backend = target.backend if target.backend != "auto" else "replayer" if builtin else "openai"
    seed = prompt_seed(prompts)
    return Target(target.client(target.base_url or "http://127.0.0.1"), model, backend, "dry run",
                  request_options(target, model, backend), TemplateOverhead(), seed)


def prompt_seed(prompts: PromptConfig) -> int:
    """`--seed`, else a random one: each run's prompts are then its own, so no prefix cache hits across runs."""
    return prompts.seed if prompts.seed is not None else secrets.randbits(32)


def request_options(target: TargetConfig, model: str, backend: str) -> RequestOptions:
    """Request fields in the backend's dialect (see `replayer.prompts.backends`)."""
    dialect = BACKENDS[backend]
    ignore_eos = target.ignore_eos if target.ignore_eos is not None else dialect.forces_length(target.api)
    return RequestOptions(api=target.api, model=model, stream=target.stream, ignore_eos=ignore_eos,
                          force_with=dialect.force_with or "ignore_eos", stream_usage=dialect.stream_usage,
                          length_field=dialect.chat_length_field if target.api == "chat" else "max_tokens",
                          embedding_batch=target.embedding_batch)


async def _model_and_backend(target: TargetConfig, client: ClientConfig) -> tuple[str, str, str]:
    """The model to ask for, the backend serving it, and how that backend was known (`/v1/models`
    and the engines' own endpoints are asked only when needed)."""
    backend = None if target.backend == "auto" else target.backend
    if target.model and backend:
        return target.model, backend, "--backend"
    names_no_model = target.api == TGI_NATIVE
    try:
        models = await list_models(client)
    except ConfigError:
        if not target.model and not names_no_model:
            raise
        models = []
    if not models and not target.model and not names_no_model:
        raise ConfigError(f"{redact_url(client.base_url)}: /v1/models lists no model; pass --model")
    model = target.model or (str(models[0].get("id")) if models else "tgi")
    if backend:
        return model, backend, "--backend"
    named = backend_from_models(models)
    if named:
        return model, named, f"/v1/models owned_by {models[0].get('owned_by')!r}"
    probed = await probe_backend(client)
    return (model, *probed) if probed else (model, "openai", "not recognised, so plain OpenAI fields")


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
                    raise ConfigError(f"--count-template: {redact_url(config.url)}: HTTP {response.status}: "
                                      f"{error_message(raw)}")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ConfigError(f"--count-template: {redact_url(config.url)}: {exc or type(exc).__name__}") from None
    try:
        tokens = json.loads(raw)["usage"]["prompt_tokens"]
    except (ValueError, KeyError, TypeError):
        tokens = None
    if not isinstance(tokens, int):
        raise ConfigError(
            f"--count-template: {redact_url(config.url)} reports no usage.prompt_tokens, so the template cannot be "
            "measured; leave --count-template off"
        )
    return tokens
