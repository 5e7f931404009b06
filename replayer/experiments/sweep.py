"""`replayer sweep`: one workload at several loads, one run directory per point, and where latency
falls off: latency-versus-load and goodput-versus-load curves with the knee marked.

The knee is the first point at which TTFT p99 grows faster than the load (its ratio to the
previous point's exceeds the ratio of their sent rates): from there on, extra load buys queueing.
The loads are speedups or mean rates of the open loop, or the users of a closed loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.analysis.slo import parse_slos
from replayer.errors import ConfigError
from replayer.experiments.loads import at_concurrency, at_rate, at_speedup
from replayer.experiments.outputs import write_experiment
from replayer.experiments.points import point_entry, run_point
from replayer.experiments.status import Status
from replayer.run.config import RunConfig


def parse_loads(text: str, flag: str) -> tuple[float, ...]:
    """`1,2,4,8`, or `START:STOP:N` for N geometric steps from START to STOP (`1:16:5` is 1,2,4,8,16)."""
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            low, high, n = float(start), float(stop), int(count)
            if n < 2 or not 0 < low < high:
                raise ValueError
            loads = tuple(low * (high / low) ** (k / (n - 1)) for k in range(n))
        else:
            loads = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected values like 1,2,4,8 or START:STOP:N "
                          "(geometric, N >= 2)") from None
    if not loads or any(not (math.isfinite(load) and load > 0) for load in loads):
        raise ConfigError(f"{flag} {text!r}: every load must be > 0")
    return tuple(sorted(set(loads)))


@dataclass(frozen=True)
class Sweep:
    """The loads of a sweep (speedups, mean rates in requests/s, or closed-loop users), its SLOs and its
    trials per point."""

    speedups: tuple[float, ...] = ()
    rates: tuple[float, ...] = ()
    slos: tuple[str, ...] = ()
    """Per-request SLOs give each point its goodput and attainment; aggregate ones a verdict."""
    trials: int = 1
    concurrencies: tuple[int, ...] = ()
    """Closed-loop users per point (`--concurrencies`), as the peers' concurrency sweeps run."""

    def __post_init__(self) -> None:
        if sum(map(bool, (self.speedups, self.rates, self.concurrencies))) != 1:
            raise ConfigError("a sweep needs its loads: --speedups 1,2,4,8, --rates 2,4,8 or --concurrencies "
                              "1,4,16 (one of them)")
        parse_slos(self.slos)
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")

    @property
    def points(self) -> list[tuple[str, float]]:
        """("speedup", "rate" or "concurrency", value) per point, in increasing load."""
        return ([("speedup", s) for s in self.speedups] + [("rate", r) for r in self.rates] +
                [("concurrency", float(n)) for n in self.concurrencies])


def sweep(config: RunConfig, plan: Sweep, out_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """Replay every point into `out_dir/points/`, writing `out_dir/sweep.json` and its report after
    each one (an interrupted sweep keeps the points it finished)."""
    console = console or Console(stderr=True)
    points: list[dict[str, Any]] = []
    stopped = None
    with Status(console, config.output.quiet) as status:
        try:
            for number, (kind, value) in enumerate(plan.points, start=1):
                status.step(f"point {number}/{len(plan.points)}: {kind} {value:.4g}")
                name = f"points/{number:02d}-{kind}-{value:.4g}"
                loaded = _LOADS[kind](config, value)
                output = replace(config.output, out_dir=out_dir / name, overwrite=True, slos=plan.slos, quiet=True)
                point = run_point(replace(loaded, output=output), plan.trials, out_dir / name,
                                  Console(stderr=True, quiet=True))
                runs = point.run_dirs(out_dir)
                points.append(sweep_point(out_dir, kind, value, runs, plan.slos))
                status.note(point_line(points[-1], number))
                write_experiment(out_dir, sweep_result(config.public(), plan, points, None, status.elapsed_s))
                if point.stop_reason:
                    stopped = point.stop_reason
                    break
        except KeyboardInterrupt:
            stopped = "SIGINT"
        result = sweep_result(config.public(), plan, points, stopped, status.elapsed_s)
    write_experiment(out_dir, result)
    return result


_LOADS = {"speedup": at_speedup, "rate": at_rate, "concurrency": at_concurrency}


def sweep_point(out_dir: Path, kind: str, value: float, runs: list[str], slos: tuple[str, ...]) -> dict[str, Any]:
    """One point in `sweep.json`: its load ("speedup" or "rate", and the value) and what its runs say."""
    return {"load": kind, "value": value, **point_entry(out_dir, runs, slos)}


def sweep_result(config: dict[str, Any], plan: Sweep, points: list[dict[str, Any]], stopped: str | None,
                 elapsed_s: float) -> dict[str, Any]:
    """`sweep.json`: the sweep's settings, every point's metrics (means over trials, with spreads), its knee."""
    return {"kind": "sweep", "workload": config.get("workload"),
            "target": (config.get("target") or {}).get("base_url") or "built-in simulator",
            "slos": list(plan.slos), "trials": plan.trials, "speedups": list(plan.speedups), "rates": list(plan.rates),
            "concurrencies": list(plan.concurrencies),
            "points": points, "knee": knee(points),
            "stopped": stopped, "elapsed_s": elapsed_s, "config": config}


def knee(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first point where TTFT p99 grew faster than the sent rate since the previous point."""
    for before, after in zip(points, points[1:]):
        rate_before, rate_after = before["metrics"]["sent_rate"], after["metrics"]["sent_rate"]
        ttft_before, ttft_after = before["metrics"]["ttft_p99"], after["metrics"]["ttft_p99"]
        if None in (rate_before, rate_after, ttft_before, ttft_after) or not rate_before or not ttft_before:
            continue
        load_ratio, ttft_ratio = rate_after / rate_before, ttft_after / ttft_before
        if ttft_ratio > load_ratio:
            return {"point": points.index(after), "load": after["load"], "value": after["value"],
                    "sent_rate": rate_after, "ttft_p99_ratio": ttft_ratio, "load_ratio": load_ratio}
    return None


def point_line(point: dict[str, Any], number: int) -> str:
    """The line printed when a point ends."""
    metrics = point["metrics"]
    rate, ttft = metrics["sent_rate"], metrics["ttft_p99"]
    rate_text = "?" if rate is None else f"{rate:.3g}"
    ttft_text = "?" if ttft is None else f"{ttft:,.0f}"
    text = f"point {number}: {point['load']} {point['value']:.4g}: {rate_text} req/s sent, TTFT p99 {ttft_text} ms"
    if metrics.get("goodput") is not None:
        text += f", goodput {metrics['goodput']:.3g} req/s"
    return text
