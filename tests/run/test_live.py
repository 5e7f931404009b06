import time

from rich.console import Console

from replayer.run.live import LiveDisplay
from replayer.send.dispatcher import Progress

MS = 1_000_000


def _display(lags_ms: list[float], age_s: float = 0.0) -> LiveDisplay:
    progress = Progress(planned=10, sent=len(lags_ms))
    sent = time.perf_counter_ns() - int(age_s * 1e9)
    progress.recent_lag.extend((sent, int(lag * MS)) for lag in lags_ms)
    return LiveDisplay(Console(file=None, quiet=True), progress, t0_ns=sent, span_s=60.0, speedup=1.0)


def test_the_guard_warns_while_the_last_windows_lag_is_over_the_limit():
    behind = _display([1.0] * 50 + [9.0] * 5)
    assert "CLIENT BEHIND: lag p99 9.0 ms > 5 ms" in behind.render().plain
    calm = _display([1.0] * 50)
    assert "| lag p99 1.0 ms" in calm.render().plain


def test_sends_older_than_the_window_no_longer_count():
    display = _display([9.0] * 5, age_s=30.0)
    assert display.lag_p99_ms() is None and "lag" not in display.render().plain
