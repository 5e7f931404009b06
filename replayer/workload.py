"""Trace → `Workload`: choose the rows to replay and when each one is sent.

Shaping is applied in one documented order, so a run's metadata says exactly what was replayed:

1. time window (`start_s`, `duration_s`, seconds of trace time from the first arrival);
2. filters (model, log type);
3. rows with zero request or response tokens (BurstGPT's marker of a failed request) are skipped,
   unless `include_failed`;
4. `max_requests` keeps the first N of what is left;
5. time scaling: `speedup` divides every gap, or `rate` picks the speedup that gives that mean rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from replayer.errors import ConfigError
from replayer.trace import Categorical, Trace


@dataclass(frozen=True)
class Shaping:
    """Which part of a trace to replay and how fast; validated on construction."""

    start_s: float = 0.0
    duration_s: float | None = None
    models: tuple[str, ...] = ()
    log_types: tuple[str, ...] = ()
    include_failed: bool = False
    max_requests: int | None = None
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


@dataclass(frozen=True)
class Workload:
    """The rows to send and their send offsets from t0, in nanoseconds (after scaling)."""

    trace: Trace
    offsets_ns: np.ndarray
    speedup: float
    shaping: Shaping
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets_ns)

    def describe(self) -> dict:
        """The shaping, its effect and the source, for the run's metadata."""
        return {
            "source": self.trace.source,
            "format": self.trace.format,
            "shaping": asdict(self.shaping),
            "speedup": self.speedup,
            "requests": len(self),
            "skipped": dict(self.skipped),
            "span_s": float(self.offsets_ns[-1]) / 1e9 if len(self) else 0.0,
        }


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


def shape(trace: Trace, shaping: Shaping) -> Workload:
    """Apply `shaping` to `trace` in the module's documented order."""
    skipped: dict[str, int] = {}
    keep = trace.arrival_s >= shaping.start_s
    if shaping.duration_s is not None:
        keep &= trace.arrival_s < shaping.start_s + shaping.duration_s
    skipped["outside_window"] = int(np.count_nonzero(~keep))
    for mask, reason in (
        (_label_mask(trace.models, shaping.models, "model", "--trace-model"), "model_filter"),
        (_label_mask(trace.log_types, shaping.log_types, "log type", "--log-type"), "log_type_filter"),
    ):
        if mask is not None:
            skipped[reason] = int(np.count_nonzero(keep & ~mask))
            keep &= mask
    if not shaping.include_failed:
        zero = (trace.input_tokens == 0) | (trace.output_tokens == 0)
        skipped["zero_tokens"] = int(np.count_nonzero(keep & zero))
        keep &= ~zero
    index = np.flatnonzero(keep)
    if shaping.max_requests is not None and len(index) > shaping.max_requests:
        skipped["max_requests"] = len(index) - shaping.max_requests
        index = index[: shaping.max_requests]
    if len(index) == 0:
        raise ConfigError(f"{trace.source}: no requests left after shaping (skipped: {_nonzero(skipped)})")
    kept = trace.take(index)
    speedup = _speedup(kept.arrival_s, shaping)
    relative_s = kept.arrival_s - kept.arrival_s[0]
    offsets_ns = np.rint(relative_s * (1e9 / speedup)).astype(np.int64)
    return Workload(kept, offsets_ns, speedup, shaping, _nonzero(skipped))


def _speedup(arrival_s: np.ndarray, shaping: Shaping) -> float:
    if shaping.rate is None:
        return shaping.speedup or 1.0
    observed = _mean_rate(arrival_s)
    if observed is None:
        raise ConfigError("--rate needs at least two requests at different times to rescale")
    return shaping.rate / observed


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}
