"""One workload at other loads: the knob every experiment turns.

A trace is compressed (`speedup`), so its bursts keep their shape and only come faster. A synthetic
workload keeps its duration and burstiness and has every rate of its schedule multiplied, so a
higher load means more requests over the same time. Either way the experiment's load factor is
called its speedup.
"""

from __future__ import annotations

from dataclasses import replace

from replayer.errors import ConfigError
from replayer.run.config import RunConfig, WorkloadSource
from replayer.traces.formats import read_trace
from replayer.traces.mapped import ColumnMap
from replayer.traces.model import Trace
from replayer.traces.synthetic import at_rate_factor, mean_rate


def at_speedup(config: RunConfig, speedup: float) -> RunConfig:
    """`config` at `speedup` times its workload's own pace (the recorded one, or the spec's rates)."""
    if config.shaping.speedup is not None or config.shaping.rate is not None:
        raise ConfigError("an experiment sets the pace itself: drop --speedup and --rate")
    source = config.workload
    if source.synthetic is None:
        return replace(config, shaping=replace(config.shaping, speedup=speedup))
    spec = at_rate_factor(source.synthetic, speedup, _fit_trace(source))
    return replace(config, workload=replace(source, synthetic=spec))


def at_rate(config: RunConfig, rate: float) -> RunConfig:
    """`config` rescaled to a mean rate of `rate` requests per second, its shape kept."""
    source = config.workload
    if source.synthetic is None:
        if config.shaping.speedup is not None or config.shaping.rate is not None:
            raise ConfigError("an experiment sets the pace itself: drop --speedup and --rate")
        return replace(config, shaping=replace(config.shaping, rate=rate))
    fit = _fit_trace(source)
    return at_speedup(config, rate / mean_rate(source.synthetic, fit))


def at_concurrency(config: RunConfig, users: float) -> RunConfig:
    """`config` as a closed loop of `users` virtual users (`--concurrency`)."""
    if config.shaping.speedup is not None or config.shaping.rate is not None:
        raise ConfigError("an experiment sets the pace itself: drop --speedup and --rate")
    return replace(config, scale=replace(config.scale, concurrency=int(users)))


def _fit_trace(source: WorkloadSource) -> Trace | None:
    columns = ColumnMap.parse(source.columns, source.time_unit) if source.columns else None
    return read_trace(source.fit, source.format, columns) if source.fit else None
