"""Trace → `Workload`: choose the rows to replay and when each one is sent.

Shaping is applied in one documented order, so a run's metadata says exactly what was replayed:

1. filters: model, log type, input and output token ranges;
2. rows with zero request or response tokens (BurstGPT's marker of a failed request) are skipped,
   unless `include_failed`: then they are sent with their recorded input, asking for one output
   token (the least a server accepts), and form the breakdown group `recorded: failed`;
3. `max_input_tokens`: rows with longer prompts are dropped, or clamped to the limit;
4. time window: `busiest_s` (the window of that length holding the most of the rows kept so far,
   so "the busiest hour of GPT-4 traffic" is GPT-4's own), or an absolute `from_time`/`until_time`
   in the trace's own clock, or `start_s`/`duration_s` in seconds from the first arrival;
5. `sample_fraction` keeps a random fraction of rows (seeded), thinning the rate but keeping the shape;
   `sample_sessions` keeps a random fraction of whole sessions instead (rows outside sessions are
   drawn one by one);
6. `max_requests` keeps the first N of what is left;
7. `max_idle_gap_s` shortens every silence between consecutive arrivals longer than that to it;
8. time scaling: `speedup` divides every gap, or `rate` picks the speedup that gives that mean rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from replayer.errors import ConfigError
from replayer.records import LABEL_KINDS
from replayer.traces.model import Categorical, Trace
from replayer.traces.stats import max_overlap

SESSION_TIMINGS = ("recorded", "think-time")


@dataclass(frozen=True)
class Shaping:
    """Which part of a trace to replay and how fast; validated on construction."""

    start_s: float = 0.0
    duration_s: float | None = None
    from_time: str | None = None
    until_time: str | None = None
    busiest_s: float | None = None
    models: tuple[str, ...] = ()
    log_types: tuple[str, ...] = ()
    input_range: tuple[int, int] | None = None
    output_range: tuple[int, int] | None = None
    include_failed: bool = False
    max_input_tokens: int | None = None
    over_limit: str = "drop"
    sample_fraction: float | None = None
    sample_sessions: float | None = None
    sample_seed: int = 0
    max_requests: int | None = None
    session_timing: str = "recorded"
    """When a session turn leaves: at its timestamp (`recorded`) or its think time after the turn it
    follows finished (`think-time`); see `replayer.prompts.sessions.think_times_ns`."""
    max_idle_gap_s: float | None = None
    """Trace seconds: no silence between arrivals (nor, with think-time sessions, no think time) is
    replayed longer than this."""
    speedup: float | None = None
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.start_s < 0:
            raise ConfigError(f"--start must be >= 0, got {self.start_s}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"--duration must be > 0, got {self.duration_s}")
        if self.max_requests is not None and self.max_requests <= 0:
            raise ConfigError(f"--max-requests must be > 0, got {self.max_requests}")
        if self.speedup is not None and self.rate is not None:
            raise ConfigError("--speedup and --rate are exclusive: choose one")
        if self.speedup is not None and not self.speedup > 0:
            raise ConfigError(f"--speedup must be > 0, got {self.speedup}")
        if self.rate is not None and not self.rate > 0:
            raise ConfigError(f"--rate must be > 0 requests/s, got {self.rate}")
        if self.busiest_s is not None and (self.busiest_s <= 0 or self.from_time or self.until_time or self.start_s):
            raise ConfigError("--busiest takes a duration > 0 and replaces --start/--from/--until")
        for name, bounds in (("--input-tokens", self.input_range), ("--output-tokens", self.output_range)):
            if bounds is not None and not 0 <= bounds[0] <= bounds[1]:
                raise ConfigError(f"{name} must be MIN:MAX with 0 <= MIN <= MAX, got {bounds[0]}:{bounds[1]}")
        if self.max_input_tokens is not None and self.max_input_tokens <= 0:
            raise ConfigError(f"--max-input-tokens must be > 0, got {self.max_input_tokens}")
        if self.over_limit not in ("drop", "clamp"):
            raise ConfigError(f"--over-limit must be drop or clamp, got {self.over_limit!r}")
        for flag, fraction in (("--sample", self.sample_fraction), ("--sample-sessions", self.sample_sessions)):
            if fraction is not None and not 0 < fraction <= 1:
                raise ConfigError(f"{flag} must be a fraction in (0, 1], got {fraction}")
        if self.sample_fraction is not None and self.sample_sessions is not None:
            raise ConfigError("--sample and --sample-sessions are exclusive: choose one")
        if self.session_timing not in SESSION_TIMINGS:
            raise ConfigError(f"--session-timing must be one of {', '.join(SESSION_TIMINGS)}, "
                              f"got {self.session_timing!r}")
        if self.max_idle_gap_s is not None and not self.max_idle_gap_s > 0:
            raise ConfigError(f"--max-idle-gap must be > 0 seconds, got {self.max_idle_gap_s}")


@dataclass(frozen=True)
class Workload:
    """The rows to send and their send offsets from t0, in nanoseconds (after scaling)."""

    trace: Trace
    offsets_ns: np.ndarray
    speedup: float
    shaping: Shaping
    skipped: dict[str, int] = field(default_factory=dict)
    clamped: int = 0
    window_s: tuple[float, float] | None = None
    recorded_failed: np.ndarray | None = None
    """With `include_failed`, per row in send order, whether the recording's system failed it (None
    when no row was)."""

    def __len__(self) -> int:
        return len(self.offsets_ns)

    def take(self, positions: np.ndarray) -> Workload:
        """The rows at `positions` (in send order), with their ids and send offsets unchanged."""
        failed = None if self.recorded_failed is None else self.recorded_failed[positions]
        return replace(self, trace=self.trace.take(positions), offsets_ns=self.offsets_ns[positions],
                       recorded_failed=failed)

    @property
    def span_s(self) -> float:
        """Seconds from the first send to the last one."""
        return float(self.offsets_ns[-1]) / 1e9 if len(self) else 0.0

    def row_labels(self) -> list[dict[str, str] | None]:
        """Per row in send order, the trace's labels (`replayer.records.LABEL_KINDS`) that the run's
        records carry for the summary's breakdowns: only columns with more than one label, one shared
        dict per combination (None when no column qualifies)."""
        trace = self.trace
        outcome = None
        if self.recorded_failed is not None:
            outcome = Categorical(self.recorded_failed.astype(np.int32), ("answered", "failed"))
        labelled = zip(LABEL_KINDS, (trace.models, trace.log_types, trace.request_types, outcome))
        columns = {kind: column for kind, column in labelled if column is not None and len(np.unique(column.codes)) > 1}
        if not columns:
            return [None] * len(self)
        shared: dict[tuple[str, ...], dict[str, str]] = {}
        rows = zip(*(column.values().tolist() for column in columns.values()))
        return [shared.setdefault(row, dict(zip(columns, row))) for row in rows]

    def describe(self) -> dict:
        """The shaping, its effect and the source, for the run's metadata."""
        return {
            "source": self.trace.source,
            "format": self.trace.format,
            "shaping": asdict(self.shaping),
            "speedup": self.speedup,
            "requests": len(self),
            "skipped": dict(self.skipped),
            "clamped_to_max_input_tokens": self.clamped,
            "window_s": self.window_s,
            "span_s": self.span_s,
        }


NOMINAL_MS_PER_TOKEN = 30.0
"""Decode time per output token assumed when estimating how many requests will be open at once."""
NOMINAL_FIRST_TOKEN_S = 1.0


def peak_concurrency(workload: Workload, ms_per_token: float = NOMINAL_MS_PER_TOKEN,
                     first_token_s: float = NOMINAL_FIRST_TOKEN_S) -> int:
    """The most requests in flight at once if each lasted `first_token_s` plus its output tokens at
    `ms_per_token`: what the open-files limit must allow, since an open loop holds one socket per
    request in flight (and never caps connections, which would turn it into a closed loop)."""
    starts = workload.offsets_ns
    ends = starts + ((first_token_s * 1e3 + workload.trace.output_tokens * ms_per_token) * 1e6).astype(np.int64)
    return max_overlap(starts, ends)


def _label_mask(column: Categorical | None, wanted: tuple[str, ...], what: str, flag: str) -> np.ndarray | None:
    """Rows whose label is one of `wanted` (case-insensitive); None when there is no filter."""
    if not wanted:
        return None
    if column is None:
        raise ConfigError(f"{flag}: this trace has no {what} column")
    by_lower = {label.lower(): code for code, label in enumerate(column.labels)}
    codes = []
    for name in wanted:
        if name.lower() not in by_lower:
            raise ConfigError(f"{flag}: no {what} {name!r} in this trace (it has: {', '.join(column.labels)})")
        codes.append(by_lower[name.lower()])
    return np.isin(column.codes, codes)


def _mean_rate(arrival_s: np.ndarray) -> float | None:
    """Requests per second over the span between the first and last arrival (None if undefined)."""
    span = float(arrival_s[-1] - arrival_s[0]) if len(arrival_s) > 1 else 0.0
    return (len(arrival_s) - 1) / span if span > 0 else None


def busiest_window(arrival_s: np.ndarray, duration_s: float) -> float:
    """Start (seconds from the first arrival) of the `duration_s` window holding the most requests."""
    ends = np.searchsorted(arrival_s, arrival_s + duration_s, side="left")
    return float(arrival_s[int(np.argmax(ends - np.arange(len(arrival_s))))])


def _trace_time(trace: Trace, text: str, flag: str) -> float:
    """An absolute time in the trace's own clock (seconds, or ISO date-time for wall-clock traces),
    as seconds from the first arrival."""
    try:
        value = float(text)
    except ValueError:
        if not trace.origin_is_epoch:
            raise ConfigError(f"{flag}: this trace's clock is in seconds, not dates; got {text!r}") from None
        try:
            value = np.datetime64(text.replace("+00:00", ""), "ns").astype(np.int64) / 1e9
        except ValueError:
            raise ConfigError(f"{flag}: not a number or date-time: {text!r}") from None
    return value - trace.origin_s


def _window(trace: Trace, shaping: Shaping, eligible: np.ndarray) -> tuple[float, float]:
    """[start, end) of the window, in seconds from the first arrival; the busiest window is the one
    with the most `eligible` rows (those the filters kept)."""
    if shaping.busiest_s is not None:
        arrivals = trace.arrival_s[eligible]
        start = busiest_window(arrivals, shaping.busiest_s) if len(arrivals) else 0.0
        return start, start + shaping.busiest_s
    start = _trace_time(trace, shaping.from_time, "--from") if shaping.from_time else shaping.start_s
    if shaping.until_time:
        end = _trace_time(trace, shaping.until_time, "--until")
    elif shaping.duration_s is not None:
        end = start + shaping.duration_s
    else:
        end = np.inf
    return start, end


def _in_range(values: np.ndarray, bounds: tuple[int, int] | None) -> np.ndarray | None:
    return None if bounds is None else (values >= bounds[0]) & (values <= bounds[1])


def shape(trace: Trace, shaping: Shaping) -> Workload:
    """Apply `shaping` to `trace` in the module's documented order."""
    skipped: dict[str, int] = {}
    keep = np.ones(len(trace), dtype=bool)
    for mask, reason in (
        (_label_mask(trace.models, shaping.models, "model", "--trace-model"), "model_filter"),
        (_label_mask(trace.log_types, shaping.log_types, "log type", "--log-type"), "log_type_filter"),
        (_in_range(trace.input_tokens, shaping.input_range), "input_tokens_range"),
        (_in_range(trace.output_tokens, shaping.output_range), "output_tokens_range"),
    ):
        if mask is not None:
            skipped[reason] = int(np.count_nonzero(keep & ~mask))
            keep &= mask
    if not shaping.include_failed:
        zero = (trace.input_tokens == 0) | (trace.output_tokens == 0)
        skipped["zero_tokens"] = int(np.count_nonzero(keep & zero))
        keep &= ~zero
    over = keep & (trace.input_tokens > (shaping.max_input_tokens or np.iinfo(np.int64).max))
    if shaping.over_limit == "drop":
        skipped["over_max_input_tokens"] = int(np.count_nonzero(over))
        keep &= ~over
    start, end = _window(trace, shaping, keep)
    inside = (trace.arrival_s >= start) & (trace.arrival_s < end)
    skipped["outside_window"] = int(np.count_nonzero(keep & ~inside))
    keep &= inside
    chosen = _sampled(trace, shaping)
    if chosen is not None:
        skipped["sampled_out"] = int(np.count_nonzero(keep & ~chosen))
        keep &= chosen
    index = np.flatnonzero(keep)
    if shaping.max_requests is not None and len(index) > shaping.max_requests:
        skipped["max_requests"] = len(index) - shaping.max_requests
        index = index[: shaping.max_requests]
    if len(index) == 0:
        raise ConfigError(f"{trace.source}: no requests left after shaping (skipped: {_nonzero(skipped)})")
    kept = trace.take(index)
    clamped = 0
    if shaping.max_input_tokens is not None and shaping.over_limit == "clamp":
        clamped = int(np.count_nonzero(kept.input_tokens > shaping.max_input_tokens))
        kept = replace(kept, input_tokens=np.minimum(kept.input_tokens, shaping.max_input_tokens))
    relative_s = idle_gaps_capped(kept.arrival_s - kept.arrival_s[0], shaping.max_idle_gap_s)
    speedup = _speedup(relative_s, shaping)
    offsets_ns = np.rint(relative_s * (1e9 / speedup)).astype(np.int64)
    window = (float(start), float(end)) if np.isfinite(end) else (float(start), float(trace.span_s))
    failed = (kept.input_tokens == 0) | (kept.output_tokens == 0)
    recorded_failed = None
    if shaping.include_failed and failed.any():
        recorded_failed = failed
        kept = replace(kept, output_tokens=np.maximum(kept.output_tokens, 1))
    return Workload(kept, offsets_ns, speedup, shaping, _nonzero(skipped), clamped, window, recorded_failed)


def _sampled(trace: Trace, shaping: Shaping) -> np.ndarray | None:
    """The rows the seeded sample keeps: each row on its own, or each session whole; None without one."""
    rng = np.random.default_rng(shaping.sample_seed)
    if shaping.sample_fraction is not None:
        return rng.random(len(trace)) < shaping.sample_fraction
    if shaping.sample_sessions is None:
        return None
    sessions = trace.sessions
    if sessions is None:
        raise ConfigError(f"--sample-sessions: {trace.source} has no sessions (use --sample to sample rows)")
    chosen = (rng.random(len(sessions.labels)) < shaping.sample_sessions)[sessions.codes]
    alone = sessions.code_of("")
    if alone is not None:  # rows outside any session are drawn one by one
        single = sessions.codes == alone
        chosen[single] = rng.random(int(np.count_nonzero(single))) < shaping.sample_sessions
    return chosen


def idle_gaps_capped(relative_s: np.ndarray, max_gap_s: float | None) -> np.ndarray:
    """Arrival times (from 0) with every gap between consecutive ones longer than `max_gap_s` shortened to it."""
    if max_gap_s is None or len(relative_s) < 2:
        return relative_s
    gaps = np.minimum(np.diff(relative_s), max_gap_s)
    return np.concatenate(([0.0], np.cumsum(gaps)))


def _speedup(arrival_s: np.ndarray, shaping: Shaping) -> float:
    if shaping.rate is None:
        return shaping.speedup or 1.0
    observed = _mean_rate(arrival_s)
    if observed is None:
        raise ConfigError("--rate needs at least two requests at different times to rescale")
    return shaping.rate / observed


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}
