"""Inline SVG charts for the report pages: line charts and CDFs with round (1-2-5) axis ticks, a
hover value on every point (an SVG `<title>`, which browsers show without any script), and shaded
spans. Shared by the run page, the compare page and the experiment pages.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT, PAD = 640, 250, 52
"""A chart's drawing size (the page scales it to its column) and the margin for its axes."""
MAX_POINTS = 600
"""Points per line at most: longer series are thinned (every k-th point), so a page stays small."""
HOVER_POINTS = 150
"""Points per line that show their value on hover."""

Scale = Callable[[float], float]
Overlay = Callable[[Scale, Scale], list[str]]
"""Draws extra marks on a chart, given its x and y scales (data value → pixel)."""


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten, about `count`
    of them, the first at or below `low` and the last at or above `high`."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [_clean(k * step) for k in range(first, last + 1)]


def _clean(value: float) -> float:
    """A tick without float noise (0.30000000000000004 → 0.3)."""
    return float(f"{value:.12g}") + 0.0


def tick_text(value: float) -> str:
    """A tick's label: thousands separated, no trailing zeros."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


def line_chart(x: Sequence[float], series: Mapping[str, Sequence[float | None]], y_label: str,
               x_label: str = "time since t0 (s)", *, dots: bool = False, y_reach: Sequence[float] = (),
               overlay: Overlay | None = None, unit: str = "", title: str = "") -> str:
    """An SVG line chart (with a dot at each value when `dots`); None values leave gaps. The y axis
    starts at 0 and reaches at least `y_reach` (a limit drawn by the overlay). Every point shows its
    value on hover."""
    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    if not x or not values:
        return _empty(title)
    keep = _thinned(len(x))
    xs = [float(x[i]) for i in keep]
    low = min(xs)
    x_ticks = nice_ticks(0.0 if 0 > low > -0.05 * ((max(xs) - low) or 1) else low, max(xs))
    y_ticks = nice_ticks(0.0, max([*values, *y_reach]) or 1.0)
    scale_x, scale_y = _scales(x_ticks, y_ticks)
    out = [frame(x_ticks, y_ticks, x_label, y_label)]
    for index, (name, ys) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        points = [(a, ys[i]) for a, i in zip(xs, keep)]
        for run in _runs(points):
            drawn = " ".join(f"{scale_x(a):.1f},{scale_y(b):.1f}" for a, b in run)
            out.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{drawn}'/>")
            radius = 3 if dots else 2.2
            opacity = "" if dots else " fill-opacity='0'"
            every = 1 if dots else max(1, len(run) // HOVER_POINTS)
            out.extend(f"<circle cx='{scale_x(a):.1f}' cy='{scale_y(b):.1f}' r='{radius}' fill='{color}'{opacity}>"
                       f"<title>{html.escape(name)}: {_value(b, unit)} at {x_label.split(' (')[0]} {a:g}</title>"
                       f"</circle>" for a, b in run[::every])
        out.append(legend(index, name, color))
    if overlay is not None:
        out.extend(overlay(scale_x, scale_y))
    return svg(out, title)


def cdf_chart(samples: Mapping[str, Sequence[float]], x_label: str, title: str = "") -> str:
    """SVG empirical CDFs, one line per named sample (at most 400 points each), with hover values."""
    drawn = {name: np.sort(np.asarray(values, dtype=float)) for name, values in samples.items() if len(values)}
    if not drawn:
        return _empty(title)
    x_ticks = nice_ticks(min(float(v[0]) for v in drawn.values()), max(float(v[-1]) for v in drawn.values()))
    y_ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    scale_x, scale_y = _scales(x_ticks, y_ticks)
    out = [frame(x_ticks, y_ticks, x_label, "fraction of requests")]
    for index, (name, ordered) in enumerate(drawn.items()):
        color = COLORS[index % len(COLORS)]
        picks = np.unique(np.linspace(0, ordered.size - 1, min(ordered.size, 400)).astype(int))
        xs, ys = ordered[picks], (picks + 1) / ordered.size
        points = " ".join(f"{scale_x(a):.1f},{scale_y(b):.1f}" for a, b in zip(xs, ys))
        out.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.5' points='{points}'/>")
        step = max(1, len(xs) // 40)
        out.extend(f"<circle cx='{scale_x(a):.1f}' cy='{scale_y(b):.1f}' r='3' fill='{color}' fill-opacity='0'>"
                   f"<title>{html.escape(name)}: {b:.0%} of requests within {a:,.4g}</title></circle>"
                   for a, b in zip(xs[::step], ys[::step]))
        if len(drawn) > 1:
            out.append(legend(index, name, color))
    return svg(out, title)


def shaded_spans(spans: Sequence[tuple[float, float]], label: str, color: str = "#f2c94c") -> Overlay:
    """An overlay shading each (start, end) span of x, with `label` on hover."""
    def draw(scale_x: Scale, scale_y: Scale) -> list[str]:
        return [f"<rect class='shade' x='{scale_x(a):.1f}' y='{PAD}' width='{max(1.0, scale_x(b) - scale_x(a)):.1f}' "
                f"height='{HEIGHT - 2 * PAD}' fill='{color}' fill-opacity='0.35'><title>{html.escape(label)} "
                f"{a:g}-{b:g} s</title></rect>" for a, b in spans]
    return draw


def _scales(x_ticks: Sequence[float], y_ticks: Sequence[float]) -> tuple[Scale, Scale]:
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def scale_x(v: float) -> float:
        return PAD + (v - x0) / ((x1 - x0) or 1.0) * (WIDTH - 2 * PAD)

    def scale_y(v: float) -> float:
        return HEIGHT - PAD - (v - y0) / ((y1 - y0) or 1.0) * (HEIGHT - 2 * PAD)
    return scale_x, scale_y


def _thinned(n: int) -> list[int]:
    step = max(1, math.ceil(n / MAX_POINTS))
    return list(range(0, n, step))


def _runs(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """The series cut into stretches without gaps."""
    runs: list[list[tuple[float, float]]] = [[]]
    for a, b in points:
        if b is None or not math.isfinite(b):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((a, b))
    return [run for run in runs if run]


def _value(value: float, unit: str) -> str:
    return f"{value:,.4g}{' ' + unit if unit else ''}"


def frame(x_ticks: Sequence[float], y_ticks: Sequence[float], x_label: str, y_label: str) -> str:
    """A chart's axes with their round ticks, the grid and the labels."""
    left, right, top, bottom = PAD, WIDTH - PAD, PAD, HEIGHT - PAD
    scale_x, scale_y = _scales(x_ticks, y_ticks)
    out = [f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' fill='#fbfbfb' stroke='#999'/>"]
    for tick in x_ticks:
        out.append(f"<text class='xtick' x='{scale_x(tick):.1f}' y='{bottom + 15}' text-anchor='middle'>"
                   f"{tick_text(tick)}</text>")
    for tick in y_ticks:
        at = scale_y(tick)
        out.append(f"<line x1='{left}' x2='{right}' y1='{at:.1f}' y2='{at:.1f}' stroke='#e6e6e6'/>")
        out.append(f"<text class='ytick' x='{left - 5}' y='{scale_y(tick) + 4:.1f}' text-anchor='end'>"
                   f"{tick_text(tick)}</text>")
    out.append(f"<text x='{(left + right) / 2:.0f}' y='{HEIGHT - 12}' text-anchor='middle'>"
               f"{html.escape(x_label)}</text>")
    out.append(f"<text x='13' y='{(top + bottom) / 2:.0f}' transform='rotate(-90 13 {(top + bottom) / 2:.0f})' "
               f"text-anchor='middle'>{html.escape(y_label)}</text>")
    return "".join(out)


def legend(index: int, name: str, color: str) -> str:
    """The legend entry of a chart's `index`-th series, above the plot."""
    x = PAD + 4 + index * 118
    return (f"<rect x='{x}' y='{PAD - 18}' width='10' height='10' fill='{color}'/>"
            f"<text x='{x + 14}' y='{PAD - 9}'>{html.escape(name)}</text>")


def svg(parts: list[str], title: str = "") -> str:
    """One chart: its SVG element (scaled to the column by the page's style) under its title."""
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    return (f"<figure class='chart'>{heading}<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {WIDTH} {HEIGHT}' "
            f"preserveAspectRatio='xMidYMid meet'>{''.join(parts)}</svg></figure>")


def _empty(title: str) -> str:
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    return f"<figure class='chart empty'>{heading}<p class='note'>no data</p></figure>"
