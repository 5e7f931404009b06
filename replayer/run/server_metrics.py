"""Server-side metrics during a run: the target's Prometheus `/metrics`, sampled once a second.

What the engine says about itself (requests running and waiting, KV-cache use, preemptions) explains
what the client measures: a TTFT spike that lines up with a waiting queue is admission, not network.
Only the watched gauges and counters are read (vLLM, SGLang and TGI names), with one regex pass over
the page, so a large `/metrics` (vLLM's has histograms) costs the client's loop little. A missing
or failing endpoint never stops the run: the run's summary says what was unavailable and why.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

import aiohttp

from replayer.records import SERVER_METRICS_SERIES, ServerSample

WATCHED = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage",
    "vllm:num_preemptions_total": "preemptions",
    "sglang:num_running_reqs": "running",
    "sglang:num_queue_reqs": "waiting",
    "sglang:token_usage": "kv_cache_usage",
    "tgi_batch_current_size": "running",
    "tgi_queue_size": "waiting",
}
"""Prometheus metric → our series name (a value is summed over its label sets)."""
_LINE = re.compile(r"^(" + "|".join(re.escape(name) for name in WATCHED) + r")(?:\{[^}\n]*\})?[ \t]+(\S+)", re.M)
INTERVAL_S = 1.0
TIMEOUT_S = 0.8


def parse_metrics(text: str) -> dict[str, float]:
    """Our series' values from a Prometheus text page (only those the server exposes)."""
    values: dict[str, float] = {}
    for name, number in _LINE.findall(text):
        try:
            value = float(number)
        except ValueError:
            continue
        series = WATCHED[name]
        values[series] = values.get(series, 0.0) + value
    return values


@dataclass
class ServerMetrics:
    """Samples taken so far, and what went wrong, for the summary and `server_metrics.csv`."""

    url: str
    active: bool = True
    """False when the default URL did not answer before the run: then it is not sampled at all."""
    samples: list[ServerSample] = field(default_factory=list)
    errors: int = 0
    last_error: str | None = None

    def describe(self) -> dict:
        """The summary's `server_metrics` section: counts and peaks of each series."""
        peaks = {name: max((values[name] for _, values in self.samples if name in values), default=None)
                 for name in SERVER_METRICS_SERIES}
        return {"url": self.url, "samples": len(self.samples), "errors": self.errors, "last_error": self.last_error,
                "available": bool(self.samples), "peak": peaks}


async def fetch_metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """One page's values; raises OSError-like errors (aiohttp.ClientError, TimeoutError, ValueError) on failure."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as response:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        values = parse_metrics(await response.text())
    if not values:
        raise ValueError("no vLLM, SGLang or TGI metric on the page")
    return values


async def prepare(setting: str, root: str) -> ServerMetrics | None:
    """What to sample: `setting` is "off", "auto" (ROOT/metrics, only if it answers now) or a URL (sampled
    whatever happens; failures are reported)."""
    if setting == "off":
        return None
    url = root.rstrip("/") + "/metrics" if setting == "auto" else setting
    failure = await probe(url)
    return ServerMetrics(url, active=failure is None or setting != "auto", last_error=failure)


async def probe(url: str) -> str | None:
    """None when `url` serves metrics we know, else why not (one line)."""
    async with aiohttp.ClientSession() as session:
        try:
            await fetch_metrics(session, url)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return str(exc) or type(exc).__name__
    return None


async def scrape(metrics: ServerMetrics, t0_ns: int, interval_s: float = INTERVAL_S) -> None:
    """Sample `metrics.url` every `interval_s` until cancelled; failures are counted, never raised."""
    if not metrics.active:
        return
    await _sample_forever(metrics, t0_ns, interval_s)


async def _sample_forever(metrics: ServerMetrics, t0_ns: int, interval_s: float) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                values = await fetch_metrics(session, metrics.url)
                metrics.samples.append(((time.perf_counter_ns() - t0_ns) / 1e9, values))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                metrics.errors += 1
                metrics.last_error = str(exc) or type(exc).__name__
            await asyncio.sleep(interval_s)
