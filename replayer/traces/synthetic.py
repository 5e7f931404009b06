"""Synthetic workloads from the BurstGPT paper's models: bursty arrivals and modeled lengths.

Arrivals are a renewal process with a chosen burstiness (Poisson, or Gamma/Weibull inter-arrivals
of a given coefficient of variation, or constant gaps), generated at unit rate and mapped through
the inverse of the cumulative rate of a piecewise-linear rate schedule. So ramps, steps and daily
cycles change the rate while keeping the burst shape. Lengths come from a Zipf or log-normal law,
a fixed value, or a real trace (`empirical`: joint input/output pairs; `conditional`: outputs of
requests of similar input length, the paper's request→response relation taken from data).

A spec is comma-separated `key=value` pairs, for example
`arrivals=gamma,cv=3,rate=2@0/20@600,duration=600,input=zipf:1.2:16:8192,output=conditional`.
With `--fit TRACE`, the trace supplies the defaults (its mean rate, its fitted Gamma CV, empirical
input and conditional output lengths) and the spec only overrides: `rate=40` is the paper's
"modeled scaling" of a real workload to a new rate.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from replayer.errors import ConfigError
from replayer.traces.fitting import fit_gamma, fit_weibull, weibull_cv
from replayer.traces.model import Trace

ARRIVALS = ("poisson", "gamma", "weibull", "constant")
FROM_TRACE = ("empirical", "conditional")
_KEYS = ("arrivals", "cv", "shape", "scale", "rate", "period", "duration", "requests", "input", "output", "seed")


def _number(value: float) -> str:
    """Shortest text that reads back as exactly `value`."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class RateSchedule:
    """Requests per second over time: linear between (time_s, rate) points, constant beyond them;
    with a period, the pattern repeats (a daily cycle is `period=86400`)."""

    points: tuple[tuple[float, float], ...]
    period_s: float | None = None

    @staticmethod
    def parse(text: str, period_s: float | None = None) -> RateSchedule:
        """`20` (constant) or `2@0/20@600/5@900` (rate@time points)."""
        points = []
        for part in text.split("/"):
            rate, _, at = part.partition("@")
            try:
                points.append((float(at) if at else 0.0, float(rate)))
            except ValueError:
                raise ConfigError(f"--synthetic rate: expected RATE or RATE@TIME/RATE@TIME…, got {text!r}") from None
        points.sort()
        if any(rate <= 0 or not math.isfinite(rate) for _, rate in points):
            raise ConfigError(f"--synthetic rate: rates must be > 0, got {text!r}")
        if period_s is not None and not (math.isfinite(period_s) and period_s > 0):
            raise ConfigError(f"--synthetic period must be > 0 seconds, got {period_s}")
        return RateSchedule(tuple(points), period_s)

    @property
    def text(self) -> str:
        """The schedule in the form `parse` reads."""
        if len(self.points) == 1 and self.points[0][0] == 0:
            return _number(self.points[0][1])
        return "/".join(f"{_number(rate)}@{_number(at)}" for at, rate in self.points)

    def rate_at(self, t: np.ndarray) -> np.ndarray:
        times, rates = zip(*self.points)
        return np.interp(t if self.period_s is None else np.mod(t, self.period_s), times, rates)

    def cumulative(self, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Time grid over [0, horizon] and the expected request count Λ(t) at each grid point."""
        grid = np.linspace(0.0, horizon_s, 20_001)
        rate = self.rate_at(grid)
        return grid, np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * np.diff(grid))])

    def unit_to_time(self, units: np.ndarray, horizon_s: float) -> np.ndarray:
        """Map unit-rate arrival times to real times through Λ⁻¹ (inf beyond the horizon)."""
        grid, cumulative = self.cumulative(horizon_s)
        return np.interp(units, cumulative, grid, right=np.inf)


@dataclass(frozen=True)
class LengthModel:
    """How a token length is drawn: `zipf:S:MIN:MAX`, `lognormal:MEDIAN:SIGMA`, `fixed:N`, or from a trace."""

    kind: str
    params: tuple[float, ...] = ()

    @staticmethod
    def parse(text: str, role: str) -> LengthModel:
        kind, *raw = text.split(":")
        arity = {"zipf": 3, "lognormal": 2, "fixed": 1, "empirical": 0, "conditional": 0}
        if kind not in arity or len(raw) != arity[kind] or (kind == "conditional" and role != "output"):
            raise ConfigError(f"--synthetic {role}: expected zipf:S:MIN:MAX, lognormal:MEDIAN:SIGMA, fixed:N, "
                              f"empirical{' or conditional' if role == 'output' else ''}; got {text!r}")
        try:
            params = tuple(float(v) for v in raw)
        except ValueError:
            raise ConfigError(f"--synthetic {role}: parameters must be numbers, got {text!r}") from None
        if kind == "zipf" and not (params[0] > 0 and 1 <= params[1] <= params[2]):
            raise ConfigError(f"--synthetic {role}: zipf needs S > 0 and 1 <= MIN <= MAX, got {text!r}")
        if kind in ("lognormal", "fixed") and not all(p > 0 for p in params):
            raise ConfigError(f"--synthetic {role}: {kind} parameters must be > 0, got {text!r}")
        return LengthModel(kind, params)

    @property
    def text(self) -> str:
        """The model in the form `parse` reads."""
        return ":".join([self.kind, *map(_number, self.params)])


@dataclass(frozen=True)
class SyntheticSpec:
    """A complete synthetic workload; see the module docstring for the text form."""

    rate: RateSchedule
    arrivals: str = "poisson"
    cv: float = 1.0
    duration_s: float | None = None
    requests: int | None = None
    input: LengthModel = field(default_factory=lambda: LengthModel("lognormal", (512.0, 1.0)))
    output: LengthModel = field(default_factory=lambda: LengthModel("lognormal", (128.0, 1.0)))
    seed: int = 0

    @property
    def text(self) -> str:
        """The complete spec in the form `parse_spec` reads: printed so a fitted workload can be reused."""
        size = f"duration={_number(self.duration_s)}" if self.duration_s is not None else f"requests={self.requests}"
        period = "" if self.rate.period_s is None else f"period={_number(self.rate.period_s)},"
        return (f"arrivals={self.arrivals},cv={_number(self.cv)},rate={self.rate.text},{period}{size},"
                f"input={self.input.text},output={self.output.text},seed={self.seed}")

    def __post_init__(self) -> None:
        if self.arrivals not in ARRIVALS:
            raise ConfigError(f"--synthetic arrivals: one of {', '.join(ARRIVALS)}, got {self.arrivals!r}")
        if not self.cv > 0:
            raise ConfigError(f"--synthetic cv must be > 0, got {self.cv}")
        if (self.duration_s is None) == (self.requests is None):
            raise ConfigError("--synthetic needs exactly one of duration=SECONDS or requests=N")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"--synthetic duration must be > 0, got {self.duration_s}")
        if self.requests is not None and self.requests <= 0:
            raise ConfigError(f"--synthetic requests must be > 0, got {self.requests}")


def _split_spec(text: str) -> dict[str, str]:
    pairs = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in _KEYS:
            raise ConfigError(f"--synthetic: expected KEY=VALUE with KEY in {', '.join(_KEYS)}; got {part!r}")
        pairs[key] = value
    return pairs


def fitted_defaults(trace: Trace) -> dict[str, str]:
    """Spec defaults that reproduce `trace`: its mean rate and span, the better-fitting (smaller KS
    distance) of the Gamma and Weibull burstiness models, and its own lengths."""
    if len(trace) < 3 or trace.span_s <= 0:
        raise ConfigError(f"{trace.source}: --fit needs at least 3 requests over a non-zero span")
    gaps = np.diff(trace.arrival_s)
    fits = [fit for fit in (fit_gamma(gaps), fit_weibull(gaps)) if fit is not None and math.isfinite(fit.cv)]
    best = min(fits, key=lambda fit: fit.ks_statistic, default=None)
    arrivals = best.family if best else "poisson"
    return {"arrivals": arrivals, "cv": repr(best.cv if best else 1.0), "rate": repr(len(trace) / trace.span_s),
            "duration": repr(trace.span_s), "input": "empirical", "output": "conditional"}


def _shape_and_scale(given: dict[str, str], merged: dict[str, str]) -> None:
    """Translate the distribution's own parameters into cv (shape) and rate (shape and scale)."""
    if "shape" not in given:
        if "scale" in given:
            raise ConfigError("--synthetic scale=S needs shape=K as well")
        return
    arrivals = merged.get("arrivals")
    if arrivals not in ("gamma", "weibull") or "cv" in given:
        raise ConfigError("--synthetic shape=K is for arrivals=gamma or weibull, instead of cv=")
    try:
        shape = float(given["shape"])
        scale = float(given["scale"]) if "scale" in given else None
    except ValueError as exc:
        raise ConfigError(f"--synthetic: {exc}") from None
    if not (math.isfinite(shape) and shape > 0) or (scale is not None and not (math.isfinite(scale) and scale > 0)):
        raise ConfigError("--synthetic shape and scale must be > 0")
    merged["cv"] = repr(1 / math.sqrt(shape) if arrivals == "gamma" else weibull_cv(shape))
    if scale is not None:
        if "rate" in given:
            raise ConfigError("--synthetic scale=S sets the rate; give rate= or scale=, not both")
        mean_gap = shape * scale if arrivals == "gamma" else scale * math.gamma(1 + 1 / shape)
        merged["rate"] = repr(1 / mean_gap)


def _scaled_rates(text: str, fit: Trace | None) -> str:
    """`1x@0/10x@1800`: rates written as multiples of the --fit trace's mean rate (the paper's modeled
    scaling), turned into requests per second."""
    if "x" not in text:
        return text
    if fit is None:
        raise ConfigError(f"--synthetic rate={text}: a multiple of a trace's rate needs --fit TRACE")
    base = len(fit) / fit.span_s if fit.span_s > 0 else 0.0
    parts = []
    for part in text.split("/"):
        rate, at_sign, at = part.partition("@")
        if rate.endswith("x"):
            try:
                rate = repr(float(rate[:-1]) * base)
            except ValueError:
                raise ConfigError(f"--synthetic rate: expected a number before x, got {part!r}") from None
        parts.append(rate + at_sign + at)
    return "/".join(parts)


def parse_spec(text: str, fit: Trace | None = None) -> SyntheticSpec:
    """Parse a spec; with a fitted trace its defaults apply first (duration/requests: the spec's wins)."""
    given = _split_spec(text)
    if "rate" in given:
        given["rate"] = _scaled_rates(given["rate"], fit)
    merged = fitted_defaults(fit) if fit is not None else {}
    if "requests" in given:
        merged.pop("duration", None)
    merged.update(given)
    _shape_and_scale(given, merged)
    if "rate" not in merged:
        raise ConfigError("--synthetic needs rate=R (requests/s), or --fit TRACE to take it from a trace")
    try:
        spec = SyntheticSpec(
            rate=RateSchedule.parse(merged["rate"], float(merged["period"]) if "period" in merged else None),
            arrivals=merged.get("arrivals", "poisson"),
            cv=float(merged.get("cv", 1.0)),
            duration_s=float(merged["duration"]) if "duration" in merged else None,
            requests=int(merged["requests"]) if "requests" in merged else None,
            input=LengthModel.parse(merged.get("input", "lognormal:512:1"), "input"),
            output=LengthModel.parse(merged.get("output", "lognormal:128:1"), "output"),
            seed=int(merged.get("seed", 0)))
    except ValueError as exc:
        raise ConfigError(f"--synthetic: {exc}") from None
    for role, model in (("input", spec.input), ("output", spec.output)):
        if model.kind in FROM_TRACE and fit is None:
            raise ConfigError(f"--synthetic {role}={model.kind} needs --fit TRACE")
    return spec


def at_rate_factor(text: str, factor: float, fit: Trace | None = None) -> str:
    """The complete spec `text` with every rate of its schedule multiplied by `factor` (its duration,
    burstiness, lengths and seed unchanged): the same workload shape at another load, as capacity
    searches and sweeps probe it."""
    spec = parse_spec(text, fit)
    points = tuple((at, rate * factor) for at, rate in spec.rate.points)
    return replace(spec, rate=RateSchedule(points, spec.rate.period_s)).text


def mean_rate(text: str, fit: Trace | None = None) -> float:
    """The spec's mean rate in requests per second (over its duration; its first rate for `requests=N`)."""
    spec = parse_spec(text, fit)
    if spec.duration_s is None:
        return spec.rate.points[0][1]
    return float(spec.rate.cumulative(spec.duration_s)[1][-1]) / spec.duration_s


def unit_gaps(spec: SyntheticSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """n inter-arrival gaps of mean 1 with the spec's burstiness."""
    if spec.arrivals == "constant":
        return np.ones(n)
    if spec.arrivals == "poisson":
        return rng.exponential(1.0, n)
    if spec.arrivals == "gamma":
        shape = 1.0 / spec.cv ** 2
        return rng.gamma(shape, 1.0 / shape, n)
    shape = _weibull_shape_for_cv(spec.cv)
    return rng.weibull(shape, n) / math.gamma(1 + 1 / shape)


def _weibull_shape_for_cv(cv: float) -> float:
    low, high = 0.05, 50.0  # weibull_cv falls as the shape grows
    for _ in range(100):
        middle = math.sqrt(low * high)
        low, high = (middle, high) if weibull_cv(middle) > cv else (low, middle)
    return math.sqrt(low * high)


def _arrivals(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Arrival times (s): unit-rate renewal times mapped through the rate schedule."""
    lowest_rate = min(rate for _, rate in spec.rate.points)
    if spec.requests is not None:
        units = np.cumsum(unit_gaps(spec, spec.requests, rng))
        units -= units[0]
        return spec.rate.unit_to_time(units, units[-1] / lowest_rate + 1.0)
    assert spec.duration_s is not None, "a spec gives requests or a duration"
    grid, cumulative = spec.rate.cumulative(spec.duration_s)
    expected = float(cumulative[-1])
    batch = int(expected + 3 * math.sqrt(expected) * max(spec.cv, 1.0) + 100)
    units = np.cumsum(unit_gaps(spec, batch, rng))
    while units[-1] - units[0] < expected:  # Λ(duration) = expected: enough arrivals to cover it
        units = np.concatenate([units, units[-1] + np.cumsum(unit_gaps(spec, batch, rng))])
    units -= units[0]
    times = np.interp(units, cumulative, grid, right=np.inf)
    return times[times < spec.duration_s]


def _lengths(model: LengthModel, n: int, rng: np.random.Generator) -> np.ndarray:
    if model.kind == "fixed":
        return np.full(n, int(model.params[0]), dtype=np.int64)
    if model.kind == "lognormal":
        median, sigma = model.params
        return np.maximum(1, np.rint(rng.lognormal(math.log(median), sigma, n))).astype(np.int64)
    if model.kind == "zipf":
        exponent, low, high = model.params
        support = np.arange(int(low), int(high) + 1)
        cdf = np.cumsum(support.astype(np.float64) ** -exponent)
        return support[np.searchsorted(cdf, rng.random(n) * cdf[-1])].astype(np.int64)
    raise AssertionError(model.kind)  # empirical/conditional are drawn with the fitted trace


def _successful(fit: Trace) -> tuple[np.ndarray, np.ndarray]:
    ok = (fit.input_tokens > 0) & (fit.output_tokens > 0)
    if not ok.any():
        raise ConfigError(f"{fit.source}: no rows with non-zero lengths to fit")
    return fit.input_tokens[ok], fit.output_tokens[ok]


def conditional_outputs(inputs: np.ndarray, fit: Trace, rng: np.random.Generator) -> np.ndarray:
    """For each input length, the output of a random fitted request in the same log₂ input bucket
    (the nearest non-empty bucket when its own is empty)."""
    fit_in, fit_out = _successful(fit)
    fit_bucket = np.floor(np.log2(fit_in)).astype(int)
    buckets = np.unique(fit_bucket)
    wanted = np.floor(np.log2(np.maximum(inputs, 1))).astype(int)
    nearest = buckets[np.abs(buckets[None, :] - wanted[:, None]).argmin(axis=1)]
    outputs = np.empty(len(inputs), dtype=np.int64)
    for bucket in np.unique(nearest):
        rows = np.flatnonzero(nearest == bucket)
        pool = fit_out[fit_bucket == bucket]
        outputs[rows] = pool[rng.integers(0, len(pool), len(rows))]
    return outputs


def _draw_lengths(spec: SyntheticSpec, n: int, rng: np.random.Generator,
                  fit: Trace | None) -> tuple[np.ndarray, np.ndarray]:
    """Input and output lengths; an empirical input keeps each drawn request's own output when the
    output is empirical or conditional (the exact joint distribution)."""
    if fit is None:  # (parse_spec refuses lengths from a trace without --fit)
        return _lengths(spec.input, n, rng), _lengths(spec.output, n, rng)
    if spec.input.kind == "empirical":
        fit_in, fit_out = _successful(fit)
        pick = rng.integers(0, len(fit_in), n)
        inputs = fit_in[pick]
        if spec.output.kind in FROM_TRACE:
            return inputs, fit_out[pick]
    else:
        inputs = _lengths(spec.input, n, rng)
    if spec.output.kind == "conditional":
        return inputs, conditional_outputs(inputs, fit, rng)
    if spec.output.kind == "empirical":
        fit_out = _successful(fit)[1]
        return inputs, fit_out[rng.integers(0, len(fit_out), n)]
    return inputs, _lengths(spec.output, n, rng)


def synthesize(spec: SyntheticSpec, fit: Trace | None = None) -> Trace:
    """Generate the workload as a `Trace` (format `synthetic`), deterministic for a given seed."""
    rng = np.random.default_rng(spec.seed)
    times = _arrivals(spec, rng)
    n = len(times)
    inputs, outputs = _draw_lengths(spec, n, rng, fit)
    return Trace(source=f"synthetic:{spec.text}", format="synthetic", row_ids=np.arange(n, dtype=np.int64),
                 arrival_s=times - times[0], input_tokens=inputs.astype(np.int64),
                 output_tokens=outputs.astype(np.int64))


def write_trace_csv(trace: Trace, path: Path) -> None:
    """Write a trace as `timestamp,input_tokens,output_tokens` (seconds; gzip when the name ends in .gz),
    which `--format auto` reads back as csv."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write("timestamp,input_tokens,output_tokens\n")
        out.writelines(f"{t:.6f},{i},{o}\n" for t, i, o in zip(trace.arrival_s, trace.input_tokens,
                                                                 trace.output_tokens))

