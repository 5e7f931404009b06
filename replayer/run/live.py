"""The live progress display of a run: on a terminal a progress bar of the trace's time, done and
left, with the ETA, and under it the live counters (elapsed vs trace time, recent TTFT percentiles,
the schedule guard); without a terminal, the counters as a line every 10 s. The schedule guard is
the client's lag p99 over the last window of sends, with a warning while it is over the limit (the
summary's `client_limited` applies the same test per window afterwards, given enough late sends).

It is refreshed from the event loop a few times a second (never from a thread of its own), and only
looks at counters and bounded windows of recent values, so it costs the dispatcher little.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from replayer.analysis.summary import CLIENT_LIMITED_LAG_MS, LAG_WINDOW_S
from replayer.records import RequestRecord
from replayer.send.dispatcher import Progress

REFRESH_S = 0.5
LOG_EVERY_S = 10.0
"""Without a terminal (CI logs, pipes) a plain status line is printed this often instead."""
_WINDOW = 1000


def window_lag_p99_ms(progress: Progress) -> float | None:
    """The client's schedule-lag p99 over the sends of the last LAG_WINDOW_S (None without any)."""
    since = time.perf_counter_ns() - int(LAG_WINDOW_S * 1e9)
    lags = [lag for sent, lag in progress.recent_lag if sent >= since]
    return float(np.percentile(lags, 99)) / 1e6 if lags else None


class LiveDisplay:
    """Shows one status line while the run goes; `observe` is fed every finished record."""

    def __init__(self, console: Console, progress: Progress, t0_ns: int, span_s: float, speedup: float,
                 lag_limit_ms: float = CLIENT_LIMITED_LAG_MS, lag_p99: Callable[[], float | None] | None = None):
        self.console = console
        self.progress = progress
        self.t0_ns = t0_ns
        self.span_s = span_s
        self.speedup = speedup
        self.lag_limit_ms = lag_limit_ms
        self._ttft_ms: deque[float] = deque(maxlen=_WINDOW)
        self.lag_p99_ms = lag_p99 or (lambda: window_lag_p99_ms(progress))
        """The client's lag p99 over the last window; with --workers, the worst worker's."""

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
        lag = self.lag_p99_ms()
        if lag is not None and lag > self.lag_limit_ms:
            line.append(f" | CLIENT BEHIND: lag p99 {lag:,.1f} ms > {self.lag_limit_ms:g} ms over the last "
                        f"{LAG_WINDOW_S:g} s", style="bold yellow")
        elif lag is not None:
            line.append(f" | lag p99 {lag:.1f} ms")
        return line

    def bar(self) -> RenderableType:
        """The progress bar of the trace's time: done, left, and the ETA (by sends for a closed loop,
        which has no schedule)."""
        elapsed = max(0.0, (time.perf_counter_ns() - self.t0_ns) / 1e9)
        p = self.progress
        left_s: float | None
        if self.span_s > 0:
            total, done = self.span_s, min(elapsed, self.span_s)
            left_s = self.span_s - done
            text = (f"trace {done * self.speedup:,.0f}/{self.span_s * self.speedup:,.0f} s done, "
                    f"{left_s * self.speedup:,.0f} s left · ETA {_clock(left_s)}")
        else:
            total, done = float(p.planned or 1), float(p.sent)
            rate = p.sent / elapsed if elapsed > 0 else 0.0
            left_s = (p.planned - p.sent) / rate if rate else None
            text = f"sent {p.sent:,}/{p.planned:,}" + (f" · ETA {_clock(left_s)}" if left_s is not None else "")
        grid = Table.grid(padding=(0, 1))
        grid.add_row(ProgressBar(total=total, completed=done, width=40), Text(text))
        return grid

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
        with Live(self.view(), console=self.console, auto_refresh=False, transient=False) as live:
            try:
                while True:
                    await asyncio.sleep(REFRESH_S)
                    live.update(self.view(), refresh=True)
            except asyncio.CancelledError:
                live.update(self.view(), refresh=True)
                raise

    def view(self) -> RenderableType:
        """What a terminal shows: the bar, and the counters under it."""
        return Group(self.bar(), self.render())


def _clock(seconds: float) -> str:
    """`1:02:03` or `2:03`."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
