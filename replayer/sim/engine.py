"""The simulated engine: a continuous-batching scheduler as a pure step planner, and the loop that
runs its steps in time.

`Scheduler` holds the state (waiting and running sequences, KV tokens in use) and plans one step
at a time, like vLLM's scheduler: waiting requests are admitted in arrival order while the KV-token
budget and the running-sequence cap allow; each step prefills up to a token budget of prompts
(chunked prefill) and decodes one token for every running sequence. A step takes
`decode_base_ms + decode_ms_per_seq × running + prefill tokens / prefill_tokens_per_ms`, so a burst
raises TTFT (queueing, prefill) and TPOT (bigger batches) the way a real engine does. It never
reads a clock or sleeps, so its behaviour is tested with exact numbers; `Engine` does the sleeping
and wakes the handlers whose sequences got a token.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from replayer.errors import ConfigError


@dataclass(frozen=True)
class EngineModel:
    """Latency and capacity of the simulated engine (defaults: roughly a 7-8B model on one big GPU)."""

    prefill_tokens_per_ms: float = 50.0
    decode_base_ms: float = 10.0
    decode_ms_per_seq: float = 0.1
    kv_tokens: int = 400_000
    max_running: int = 256
    max_prefill_tokens_per_step: int = 2048
    max_model_len: int = 200_000

    def __post_init__(self) -> None:
        for name in ("prefill_tokens_per_ms", "decode_base_ms", "kv_tokens", "max_running",
                     "max_prefill_tokens_per_step", "max_model_len"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"simulator {name.replace('_', '-')} must be > 0")
        if self.decode_ms_per_seq < 0:
            raise ConfigError("simulator decode-ms-per-seq must be >= 0")
        if self.max_model_len > self.kv_tokens:
            raise ConfigError("simulator max-model-len must not exceed kv-tokens")

    def step_ms(self, decoding: int, prefill_tokens: int) -> float:
        return self.decode_base_ms + self.decode_ms_per_seq * decoding + prefill_tokens / self.prefill_tokens_per_ms



class Sequence:
    """One request inside the engine: its sizes, its progress, and how its handler is told."""

    __slots__ = ("prompt_tokens", "target_tokens", "prefilled", "generated", "ready", "on_token")

    def __init__(self, prompt_tokens: int, target_tokens: int):
        self.prompt_tokens = prompt_tokens
        self.target_tokens = target_tokens
        self.prefilled = 0
        self.generated = 0
        self.ready = asyncio.Event()
        """Set at each new token for a handler that waits (non-streaming, or a stream during a stall)."""
        self.on_token: Callable[[], None] | None = None
        """Called at each new token instead, once a stream writes its tokens directly."""

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.target_tokens

    @property
    def finished(self) -> bool:
        return self.generated >= self.target_tokens

    async def made(self, tokens: int) -> None:
        """Return once the engine has generated `tokens` tokens of this sequence."""
        while self.generated < tokens:
            await self.ready.wait()
            self.ready.clear()


@dataclass(frozen=True)
class Step:
    """One planned engine step: the sequences that get a token when it ends, and how long it takes."""

    emitting: list[Sequence]
    duration_ms: float
    decoding: int
    """Sequences decoding in this step (the others emitting finish their prefill in it)."""
    prefill_tokens: int


class Scheduler:
    """The engine's state and its step planner: `plan` admits and prefills, `complete` hands out the
    step's tokens and frees the memory of finished sequences. No clock, no I/O."""

    def __init__(self, model: EngineModel):
        self.model = model
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.kv_used = 0

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def submit(self, sequence: Sequence) -> None:
        self.waiting.append(sequence)

    def abort(self, sequence: Sequence) -> None:
        """Forget a sequence whose client went away, freeing its memory (as vLLM aborts it)."""
        if sequence in self.running:
            self.running.remove(sequence)
            self.kv_used -= sequence.kv_tokens
        elif sequence in self.waiting:
            self.waiting.remove(sequence)

    def plan(self) -> Step:
        """Admit what fits, then plan the next step: a token for every decoding sequence, and prefill
        within the step's token budget (a sequence whose prefill completes emits its first token)."""
        self._admit()
        budget = self.model.max_prefill_tokens_per_step
        emitting: list[Sequence] = []
        decoding = 0
        for sequence in self.running:
            missing = sequence.prompt_tokens - sequence.prefilled
            if missing == 0:
                decoding += 1
                emitting.append(sequence)
            elif budget > 0:
                take = min(missing, budget)
                sequence.prefilled += take
                budget -= take
                if take == missing:
                    emitting.append(sequence)
        prefill = self.model.max_prefill_tokens_per_step - budget
        return Step(emitting, self.model.step_ms(decoding, prefill), decoding, prefill)

    def complete(self, step: Step) -> list[Sequence]:
        """The step has taken its time: each emitting sequence gets its token; finished ones leave the
        batch and free their KV tokens. Returns the sequences that got a token."""
        for sequence in step.emitting:
            sequence.generated += 1
        if any(sequence.finished for sequence in step.emitting):
            keep = []
            for sequence in self.running:
                if sequence.finished:
                    self.kv_used -= sequence.kv_tokens
                else:
                    keep.append(sequence)
            self.running = keep
        return step.emitting

    def _admit(self) -> None:
        model = self.model
        while self.waiting and len(self.running) < model.max_running:
            head = self.waiting[0]
            if self.kv_used + head.kv_tokens > model.kv_tokens:
                break  # first come, first served: the head blocks until memory frees
            self.waiting.popleft()
            self.kv_used += head.kv_tokens
            self.running.append(head)


class Engine:
    """The scheduler's steps run in time on the event loop: each planned step is slept through (on
    an absolute schedule, so steps do not drift), then its tokens are handed to the handlers."""

    def __init__(self, model: EngineModel):
        self.scheduler = Scheduler(model)
        self._wake = asyncio.Event()

    def submit(self, sequence: Sequence) -> None:
        self.scheduler.submit(sequence)
        self._wake.set()

    def abort(self, sequence: Sequence) -> None:
        self.scheduler.abort(sequence)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        scheduler = self.scheduler
        next_step = loop.time()
        while True:
            if scheduler.idle:
                self._wake.clear()
                await self._wake.wait()
                next_step = loop.time()
            step = scheduler.plan()
            next_step += step.duration_ms / 1000
            await asyncio.sleep(max(0.0, next_step - loop.time()))
            for sequence in scheduler.complete(step):
                if sequence.on_token is None:
                    sequence.ready.set()
                else:
                    sequence.on_token()
