"""What a run is asked to do, in the sections a scenario file has: workload, shaping, target,
prompts, output, scale and simulator.

Each section is a frozen dataclass checked when it is built, so a bad combination fails before
anything is read or sent, whether it came from the command line, a scenario or the Python API.
Every stage receives only its own section: the trace readers the workload source, the shaper the
shaping, the client the target, the synthesizer the prompts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from replayer.analysis.slo import aggregate_slos, parse_slos
from replayer.analysis.summary import CLIENT_LIMITED_LAG_MS
from replayer.errors import ConfigError
from replayer.prompts.backends import BACKENDS
from replayer.prompts.sessions import HISTORY_MODES
from replayer.prompts.tokenizer import DEFAULT_TOKENIZER
from replayer.send.addressing import redact_headers, redact_url
from replayer.send.client import ClientConfig, Timeouts
from replayer.sim.server import SimulatorConfig
from replayer.traces.chunks import TIME_UNIT_CHOICES
from replayer.traces.formats import DEFAULT_TRACE, FORMATS
from replayer.workload.shaping import Shaping


@dataclass(frozen=True)
class WorkloadSource:
    """Where the requests come from: a trace file (or `sample:NAME`, or a public dataset name), or a
    synthetic specification, optionally fitted to a trace."""

    trace: str | None = None
    synthetic: str | None = None
    fit: str | None = None
    format: str = "auto"
    columns: str | None = None
    time_unit: str = "s"
    block_tokens: int | None = None
    """Tokens per prefix block, replacing the format's own (512 Mooncake, 16 Qwen-Bailian)."""

    def __post_init__(self) -> None:
        if self.block_tokens is not None and self.block_tokens <= 0:
            raise ConfigError(f"--block-tokens must be > 0, got {self.block_tokens}")
        if self.synthetic and self.trace:
            raise ConfigError("--trace and --synthetic exclude each other; use --fit TRACE to model a synthetic "
                              "workload on a trace")
        if self.fit and not self.synthetic:
            raise ConfigError("--fit needs --synthetic SPEC (to replay the trace itself, use --trace)")
        _choose("--format", self.format, FORMATS)
        _choose("--time-unit", self.time_unit, TIME_UNIT_CHOICES)

    @property
    def trace_or_default(self) -> str:
        return self.trace or DEFAULT_TRACE


@dataclass(frozen=True)
class TargetConfig:
    """The server and how requests reach it. `base_url` None means the built-in simulator. `api_key`
    is never written anywhere; credential-like `headers` only redacted."""

    base_url: str | None = None
    api: str = "chat"
    backend: str = "auto"
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    stream: bool = True
    ignore_eos: bool | None = None
    """None: as the backend's dialect says (see `replayer.prompts.backends`)."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry_429: int = 0
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    verify_tls: bool = True
    embedding_batch: int = 1
    """Inputs per request with `api="embeddings"` (which is never streamed: `stream` is set off)."""

    def __post_init__(self) -> None:
        _choose("--backend", self.backend, ("auto", *BACKENDS))
        if self.embedding_batch < 1:
            raise ConfigError(f"--embedding-batch must be >= 1, got {self.embedding_batch}")
        if self.api == "embeddings" and self.stream:
            object.__setattr__(self, "stream", False)  # (an embedding is one answer: nothing to stream)
        self.client(self.base_url or "http://127.0.0.1")  # checks the URL, the API and the retries now

    def client(self, base_url: str) -> ClientConfig:
        """How the run's requests reach `base_url` (the target's, or the built-in simulator's)."""
        return ClientConfig(base_url, api=self.api, stream=self.stream, api_key=self.api_key, timeouts=self.timeouts,
                            retry_429=self.retry_429, extra_headers=self.headers, verify_tls=self.verify_tls)

    def public(self) -> dict[str, Any]:
        """The section as written into the records header: no key, credential-like headers redacted."""
        data = asdict(self)
        data.pop("api_key")
        data["headers"] = redact_headers(self.headers)
        data["base_url"] = redact_url(self.base_url) if self.base_url else None
        return data


@dataclass(frozen=True)
class PromptConfig:
    """How prompts are synthesized: the tokenizer that counts them, the seed, prefix sharing,
    session histories and chat-template accounting."""

    tokenizer: str = DEFAULT_TOKENIZER
    seed: int | None = None
    """None: a random seed per run, so no prefix cache hits across runs."""
    prefix_cache: bool = True
    session_history: str = "actual"
    count_template: bool = False

    def __post_init__(self) -> None:
        _choose("--session-history", self.session_history, HISTORY_MODES)


@dataclass(frozen=True)
class OutputConfig:
    """What the run leaves and shows: its directory, the stop and guard settings, its SLOs."""

    out_dir: Path | None = None
    """None: runs/<timestamp>."""
    overwrite: bool = False
    drain_timeout_s: float = 30.0
    lag_limit_ms: float = CLIENT_LIMITED_LAG_MS
    scrape_metrics: str = "auto"
    """Server metrics to sample during the run: "auto" (the target's /metrics if it answers), a URL, or "off"."""
    slos: tuple[str, ...] = ()
    """`--slo` texts (see `replayer.analysis.slo`); a violated aggregate one fails the run."""
    warmup_s: float = 0.0
    """Requests due within this many seconds of t0 are sent and recorded (marked `warmup`) but kept out
    of every statistic and SLO, so a cold cache does not decide a verdict."""
    stop_early: bool = False
    """Stop (cancelling what is in flight) as soon as the SLOs can no longer all hold; the run then fails them."""
    time_limit_s: float | None = None
    """Stop after this many seconds of wall clock from t0, keeping what finished."""
    quiet: bool = False
    dry_run: bool = False
    save_requests: Path | None = None

    def __post_init__(self) -> None:
        for name in ("out_dir", "save_requests"):  # (the Python API may pass plain strings)
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Path(value))
        object.__setattr__(self, "slos", tuple(self.slos))
        parse_slos(self.slos)  # a bad --slo is refused before any load
        if self.drain_timeout_s < 0:
            raise ConfigError(f"--drain-timeout must be >= 0, got {self.drain_timeout_s}")
        if not self.lag_limit_ms > 0:
            raise ConfigError(f"--lag-limit must be > 0, got {self.lag_limit_ms}")
        if self.warmup_s < 0:
            raise ConfigError(f"--warmup must be >= 0 seconds, got {self.warmup_s}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ConfigError(f"--max-time must be > 0 seconds, got {self.time_limit_s}")
        if self.stop_early and not aggregate_slos(self.slos):
            raise ConfigError("--stop-early needs an aggregate --slo to watch (e.g. ttft_p99<=2s or attainment>=95%)")

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir) if self.out_dir else None
        data["save_requests"] = str(self.save_requests) if self.save_requests else None
        return data


@dataclass(frozen=True)
class ScaleConfig:
    """How many senders replay the workload: processes on this machine, Ray actors on a cluster, or
    one shard of N started at a shared wall-clock instant."""

    workers: int = 1
    ray: str | None = None
    """Run the `workers` shards as Ray actors: "auto" (a local or RAY_ADDRESS cluster) or an address."""
    shard: tuple[int, int] | None = None
    """(K, N): replay only shard K of N of the workload (`--shard K/N`)."""
    start_at_ns: int | None = None
    """The wall-clock instant (epoch ns) of t0 (`--start-at`), shared by shards on several machines."""
    max_concurrency: int | None = None
    """At most this many requests in flight (`--max-concurrency`); a due request waits for a slot."""
    concurrency: int | None = None
    """A closed loop of this many virtual users (`--concurrency`) instead of the trace's clock."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.concurrency is not None:
            if self.concurrency < 1:
                raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
            if self.max_concurrency is not None or self.workers > 1 or self.ray is not None or self.shard is not None:
                raise ConfigError("--concurrency is a closed loop of one sending process; it does not combine "
                                  "with --max-concurrency, --workers, --ray or --shard")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError(f"--max-concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_concurrency is not None and (self.workers > 1 or self.ray is not None or self.shard is not None):
            raise ConfigError("--max-concurrency caps the requests in flight of one sending process; it does not "
                              "combine with --workers, --ray or --shard")
        if self.shard is not None and not 0 <= self.shard[0] < self.shard[1]:
            raise ConfigError(f"--shard: expected K/N with 0 <= K < N, got {self.shard[0]}/{self.shard[1]}")


@dataclass(frozen=True)
class RunConfig:
    """Everything `replayer run` was asked to do, one section per stage."""

    workload: WorkloadSource = field(default_factory=WorkloadSource)
    shaping: Shaping = field(default_factory=Shaping)
    target: TargetConfig = field(default_factory=TargetConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)

    def __post_init__(self) -> None:
        watched = self.output.stop_early or self.output.time_limit_s is not None
        if watched and (self.scale.workers > 1 or self.scale.ray is not None):
            raise ConfigError("--stop-early and --max-time watch the run from its one sending process; "
                              "they do not combine with --workers or --ray")
        if self.scale.concurrency is not None:
            if self.shaping.speedup is not None or self.shaping.rate is not None:
                raise ConfigError("--concurrency sends each request when its user's previous one is done: the "
                                  "server sets the pace, so --speedup and --rate do not apply")
            if self.shaping.session_timing == "think-time":
                raise ConfigError("--session-timing think-time paces sessions on the trace's clock; --concurrency "
                                  "is a closed loop without one")

    @property
    def builtin_simulator(self) -> bool:
        return self.target.base_url is None

    def public(self) -> dict[str, Any]:
        """The config as written into the records header: no credentials, no simulator section
        when a real server was the target."""
        data = {"workload": asdict(self.workload), "shaping": asdict(self.shaping), "target": self.target.public(),
                "prompts": asdict(self.prompts), "output": self.output.public(), "scale": asdict(self.scale)}
        if self.builtin_simulator:
            data["simulator"] = _plain(asdict(self.simulator))
        return data


def _choose(flag: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag}: {value!r} is not one of {', '.join(choices)}")


def _plain(value: Any) -> Any:
    """`value` with paths as strings and infinities as strings, so that JSON can hold it."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value
