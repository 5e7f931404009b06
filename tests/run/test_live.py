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


def test_a_terminal_shows_a_bar_of_the_trace_time_done_and_left_with_its_eta():
    display = _display([1.0] * 5, age_s=10.0)  # 10 s into a 60 s trace
    console = Console(record=True, width=120)
    console.print(display.view())
    text = console.export_text()
    assert "trace 10/60 s done, 50 s left · ETA 0:50" in text and "━" in text
    assert "sent 5/10" in text  # the counters under it
    closed = LiveDisplay(Console(file=None, quiet=True), display.progress, t0_ns=display.t0_ns, span_s=0.0,
                         speedup=1.0)  # a closed loop: by sends, 5 of 10 in 10 s
    console = Console(record=True, width=120)
    console.print(closed.bar())
    assert "sent 5/10 · ETA 0:10" in console.export_text()
