"""Request bodies: every request of a workload as the exact bytes to POST, built lazily in send order.

Bodies are serialized once, before they are due: the dispatcher reads them through a bounded
look-ahead, so a trace of millions of rows never holds millions of bodies. Only session turns whose
history holds the server's actual replies are built later, when the previous turn has finished.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from replayer.errors import OutputError
from replayer.prompts.sessions import Conversations, link_sessions, think_times_ns
from replayer.prompts.synthesis import PromptSynthesizer, TemplateOverhead
from replayer.workload.shaping import Workload

API_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions", "responses": "/v1/responses",
             "messages": "/v1/messages", "embeddings": "/v1/embeddings", "tgi-generate": "/generate_stream"}
"""Endpoint path of each supported API (streaming), relative to the server root."""
MESSAGE_APIS = ("chat", "responses", "messages")
"""The APIs whose prompt is a list of chat messages (so sessions can be sent as conversations)."""
_LENGTH_FIELDS = {"responses": "max_output_tokens", "messages": "max_tokens"}
"""The output cap of the APIs whose field does not depend on the backend."""
_WHOLE_PATHS = {"tgi-generate": "/generate"}
"""Where an API has another path for non-streamed answers (TGI's native API)."""


def api_path(api: str, stream: bool) -> str:
    """The endpoint a request of `api` goes to, streamed or not."""
    return API_PATHS[api] if stream else _WHOLE_PATHS.get(api, API_PATHS[api])


@dataclass(frozen=True)
class RequestOptions:
    """How request bodies are shaped for the target API and serving engine (see `replayer.prompts.backends`)."""

    api: str = "chat"
    model: str = ""
    stream: bool = True
    ignore_eos: bool = True
    """Force every output to exactly `max_tokens` (with the `force_with` field)."""
    force_with: str = "ignore_eos"
    """`ignore_eos`, or `min_tokens` (set to max_tokens) for servers that only take that."""
    stream_usage: bool = True
    """Ask for a usage chunk at the end of a stream (`stream_options.include_usage`)."""
    length_field: str = "max_tokens"
    """The field that caps the output: OpenAI's chat API calls it `max_completion_tokens`."""
    embedding_batch: int = 1
    """Inputs per `/v1/embeddings` request (`--embedding-batch`), each of the row's input length."""

    def __post_init__(self) -> None:
        if self.api not in API_PATHS:
            raise ValueError(f"unknown api {self.api!r}")


def build_body(options: RequestOptions, content: str | list, max_tokens: int) -> bytes:
    """The JSON request body for a prompt (for the message APIs, a list of messages; for embeddings,
    a list of inputs), serialized once."""
    if options.api == "embeddings":
        return json.dumps({"model": options.model, "input": content}, separators=(",", ":")).encode()
    if options.api == "tgi-generate":  # TGI's native API: no model, no messages, details carry the counts
        body: dict = {"inputs": content, "parameters": {"max_new_tokens": max_tokens, "details": True}}
        return json.dumps(body, separators=(",", ":")).encode()
    api = options.api
    body = {"model": options.model, _LENGTH_FIELDS.get(api, options.length_field): max_tokens,
            "stream": options.stream}
    if api in MESSAGE_APIS:
        messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
        body["input" if api == "responses" else "messages"] = messages
    else:
        body["prompt"] = content
    if options.stream and options.stream_usage and api not in _LENGTH_FIELDS:  # (the others always report usage)
        body["stream_options"] = {"include_usage": True}
    if options.ignore_eos:
        if options.force_with == "min_tokens":
            body["min_tokens"] = max_tokens
        else:
            body["ignore_eos"] = True
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One request ready to go: everything the dispatcher needs, nothing left to compute.

    `body` is None for a session turn built when its previous turn (at send position `after`) has
    finished; `turn` is the turn number within its session (0 outside sessions)."""

    id: int
    offset_ns: int
    input_tokens: int
    output_tokens: int
    body: bytes | None
    after: int = -1
    turn: int = 0
    labels: dict[str, str] | None = None
    """The trace's labels of the row, carried into its record (see `Workload.row_labels`)."""
    think_ns: int = -1
    """With think-time session timing, how long after the turn at `after` finished this one leaves
    (its `offset_ns` then only orders the plan); -1: it leaves at `offset_ns`."""
    follow_ups: int = 0
    """How many later turns follow this one up (the dispatcher keeps its finish time for them)."""
    recorded_e2e_ms: float | None = None
    """How long the request took on the recording's system (`Trace.durations_s`), for its record."""


class RequestPlan:
    """Every request of a workload, built on demand in send order.

    Rows with prefix blocks (Mooncake or Qwen-Bailian `hash_ids`) share text where they share blocks,
    unless `prefix_cache` is off. Rows of a session (BurstGPT `Session ID`, Qwen-Bailian chat trees;
    chat, responses and messages APIs) become growing conversations; `history` says whose replies fill them (see
    `replayer.prompts.sessions`). Iterating twice gives the same bodies (given the synthesizer's seed)."""

    def __init__(self, workload: Workload, synthesizer: PromptSynthesizer, options: RequestOptions, *,
                 prefix_cache: bool = True, history: str = "actual", template: TemplateOverhead = TemplateOverhead()):
        self.workload = workload
        self.synthesizer = synthesizer
        self.options = options
        self.prefix_cache = prefix_cache
        self.history = history
        self.template = template
        self.links = link_sessions(workload) if history != "off" else None
        self.notes: list[str] = []
        if self.links is not None and options.api not in MESSAGE_APIS:
            self.notes.append(f"sessions need a messages API (chat, responses, messages): with --api {options.api} "
                              "every turn is sent on its own")
            self.links = None
        self.think_ns: np.ndarray | None = None
        if workload.shaping.session_timing == "think-time":
            if self.links is None:
                self.notes.append("--session-timing think-time: no session turns are replayed, so every request "
                                  "leaves at its recorded instant")
            else:
                self.think_ns = think_times_ns(workload, self.links.previous)
        self._conversations: Conversations | None = None

    def __len__(self) -> int:
        return len(self.workload)

    @property
    def has_sessions(self) -> bool:
        return self.links is not None

    def built_ahead(self) -> RequestPlan:
        """This plan with every body known before the run: histories of actual replies (which exist only
        once the server has answered) get synthetic replies of the recorded length instead."""
        if self.links is None or self.history != "actual":
            return self
        return RequestPlan(self.workload, self.synthesizer, self.options, prefix_cache=self.prefix_cache,
                           history="synthetic", template=self.template)

    def __iter__(self) -> Iterator[PreparedRequest]:
        trace = self.workload.trace
        blocks = trace.prefix_blocks if self.prefix_cache else None
        links = self.links
        if links is not None:
            self._conversations = Conversations(links, self.synthesizer, self.history, self.template, blocks,
                                                trace.block_tokens)
        late = self.history == "actual"
        durations = trace.durations_s
        recorded = [None] * len(trace) if durations is None else (durations * 1e3).tolist()
        columns = zip(trace.row_ids.tolist(), self.workload.offsets_ns.tolist(), trace.input_tokens.tolist(),
                      trace.output_tokens.tolist(), self.workload.row_labels(), recorded)
        for position, (request_id, offset, n_in, n_out, labels, e2e_ms) in enumerate(columns):
            if self.options.api == "embeddings":
                yield self._embedding(request_id, offset, n_in, labels, e2e_ms)
                continue
            if links is None or not links.turn[position]:
                body = build_body(self.options, self._prompt(position, request_id, n_in, blocks), n_out)
                yield PreparedRequest(request_id, offset, n_in, n_out, body, labels=labels, recorded_e2e_ms=e2e_ms)
                continue
            after = int(links.previous[position])
            think, follow_ups = -1, 0
            if self.think_ns is not None:
                think, follow_ups = int(self.think_ns[position]), int(links.follow_ups[position])
            request = PreparedRequest(request_id, offset, n_in, n_out, None, after, int(links.turn[position]), labels,
                                      think, follow_ups, e2e_ms)
            yield request if late and after >= 0 else replace(request, body=self.body(position, request))

    def _embedding(self, request_id: int, offset: int, n_in: int, labels: dict[str, str] | None,
                   e2e_ms: float | None) -> PreparedRequest:
        """A `/v1/embeddings` request: `embedding_batch` distinct inputs of the row's input length, and
        no output to plan."""
        batch = self.options.embedding_batch
        texts = [self.synthesizer.prompt(request_id * batch + k, n_in) for k in range(batch)]
        return PreparedRequest(request_id, offset, n_in * batch, 0, build_body(self.options, texts, 0),
                               labels=labels, recorded_e2e_ms=e2e_ms)

    def _prompt(self, position: int, request_id: int, n_tokens: int, blocks: np.ndarray | None) -> str:
        n_content = self.template.content_tokens(n_tokens)
        if blocks is None:
            return self.synthesizer.prompt(request_id, n_content)
        return self.synthesizer.prefixed_prompt(request_id, blocks[position], n_content,
                                                self.workload.trace.block_tokens)

    def body(self, position: int, request: PreparedRequest) -> bytes:
        """The body of a session turn, from its session's history as it stands now."""
        assert self._conversations is not None, "iterate the plan before building late turns"
        messages = self._conversations.messages(position, request.id, request.input_tokens, request.output_tokens)
        return build_body(self.options, messages, request.output_tokens)

    def wants_reply(self, position: int) -> bool:
        """Whether the dispatcher must hand back the text of this request's reply."""
        return self._conversations is not None and self._conversations.wants_reply(position)

    def finished(self, position: int, request: PreparedRequest, reply: str | None) -> None:
        """A session turn has finished: its reply (None if it failed) joins the session's history."""
        if self._conversations is not None and request.turn:
            self._conversations.add_reply(position, request.id, request.output_tokens, reply)


def save_requests(requests: Iterable[PreparedRequest], options: RequestOptions, path: Path) -> int:
    """Write each request as one JSON line: id, planned send offset, planned lengths, endpoint and the
    exact body, so a run can be audited, or replayed by another tool, byte for byte. Returns the count."""
    endpoint = api_path(options.api, options.stream)
    count = 0
    try:
        with open(path, "w", encoding="utf-8") as out:
            for request in requests:
                assert request.body is not None, "save a plan whose bodies are all built ahead"
                out.write(f'{{"id":{request.id},"offset_ns":{request.offset_ns},"input_tokens":{request.input_tokens},'
                          f'"output_tokens":{request.output_tokens},"endpoint":"{endpoint}",')
                if request.turn:
                    out.write(f'"turn":{request.turn},')
                out.write('"body":')
                out.write(request.body.decode())
                out.write("}\n")
                count += 1
    except OSError as exc:
        raise OutputError(f"--save-requests {path}: {exc.strerror or exc}") from None
    return count
