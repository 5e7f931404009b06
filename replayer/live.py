"""The live progress display of a run: counts, elapsed vs trace time, recent TTFT percentiles.

It is refreshed from the event loop a few times a second (never from a thread of its own), and only
looks at counters and a bounded window of recent TTFTs, so it costs the dispatcher little.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

from replayer.dispatcher import Progress
from replayer.records import RequestRecord

REFRESH_S = 0.5
LOG_EVERY_S = 10.0
"""Without a terminal (CI logs, pipes) a plain status line is printed this often instead."""
_WINDOW = 1000


class LiveDisplay:
    """Shows one status line while the run goes; `observe` is fed every finished record."""

    def __init__(self, console: Console, progress: Progress, t0_ns: int, span_s: float, speedup: float):
        self.console = console
        self.progress = progress
        self.t0_ns = t0_ns
        self.span_s = span_s
        self.speedup = speedup
        self._ttft_ms: deque[float] = deque(maxlen=_WINDOW)

    def observe(self, record: RequestRecord) -> None:
        if record.ok and record.first_token_ns is not None and record.sent_ns is not None:
            self._ttft_ms.append((record.first_token_ns - record.sent_ns) / 1e6)

    def render(self) -> Text:
        p = self.progress
        elapsed = max(0.0, (time.perf_counter_ns() - self.t0_ns) / 1e9)
        trace_s = min(elapsed, self.span_s) * self.speedup
        line = Text()
        line.append(f"{elapsed:6.1f} s", style="bold")
        line.append(f" trace {trace_s:,.0f}/{self.span_s * self.speedup:,.0f} s | ")
        line.append(f"sent {p.sent:,}/{p.planned:,} | in flight {p.in_flight:,} | ok {p.finished - p.failed:,} | ")
        line.append(f"failed {p.failed:,}", style="red" if p.failed else "")
        if self._ttft_ms:
            p50, p99 = np.percentile(np.fromiter(self._ttft_ms, float), [50, 99])
            line.append(f" | TTFT p50 {p50:,.0f} p99 {p99:,.0f} ms")
        return line

    async def run(self) -> None:
        """Refresh until cancelled; without a terminal, log a line every LOG_EVERY_S instead."""
        if not self.console.is_terminal:
            try:
                while True:
                    await asyncio.sleep(LOG_EVERY_S)
                    self.console.print(self.render())
            except asyncio.CancelledError:
                self.console.print(self.render())
                raise
        with Live(self.render(), console=self.console, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    await asyncio.sleep(REFRESH_S)
                    live.update(self.render(), refresh=True)
            except asyncio.CancelledError:
                live.update(self.render(), refresh=True)
                raise
