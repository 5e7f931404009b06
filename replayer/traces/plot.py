"""`inspect --plot`: a figure of a trace's arrival rate, burstiness and token lengths (PNG or SVG).

matplotlib is an optional extra (`pip install 'replayer[plot]'`): plotting is the only thing that
needs it, and a load generator should not pull a plotting stack into every install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from replayer.errors import ConfigError
from replayer.traces.fitting import fit_gamma, fit_weibull, gamma_cdf, weibull_cdf
from replayer.traces.model import Trace


def plot_trace(trace: Trace, path: Path) -> None:
    """Write to `path` (its suffix picks PNG or SVG) three panels: requests/s over time, the
    inter-arrival distribution against the fitted Gamma and Weibull laws, and input/output token
    histograms."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'replayer[plot]'") from None
    figure, (rate_axes, gap_axes, length_axes) = pyplot.subplots(3, 1, figsize=(9, 10), layout="constrained")
    figure.suptitle(f"{trace.source} ({len(trace):,} requests)", fontsize=10)
    _rate_panel(rate_axes, trace.arrival_s)
    _gap_panel(gap_axes, np.diff(trace.arrival_s))
    _length_panel(length_axes, trace)
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise ConfigError(f"--plot {path}: {exc.strerror or exc}") from None
    finally:
        pyplot.close(figure)


def _rate_panel(axes: Any, arrival_s: np.ndarray) -> None:
    span = float(arrival_s[-1]) if arrival_s.size else 0.0
    bin_s = max(1.0, span / 300)
    counts, edges = np.histogram(arrival_s, bins=max(1, int(np.ceil(span / bin_s))), range=(0, max(span, bin_s)))
    width = edges[1] - edges[0]
    axes.step(edges[:-1], counts / width, where="post", linewidth=0.8)
    axes.set(title=f"arrival rate ({width:,.3g} s bins)", xlabel="time since first request (s)", ylabel="requests / s")


def _gap_panel(axes: Any, gaps: np.ndarray) -> None:
    positive = np.sort(gaps[gaps > 0])
    axes.set(
        title="inter-arrival times: survival function, with maximum-likelihood fits",
        xlabel="gap (s)",
        ylabel="P(gap > x)",
        xscale="log",
        yscale="log",
    )
    if positive.size < 2:
        return
    survival = 1.0 - np.arange(positive.size) / positive.size
    axes.step(positive, survival, where="post", label="trace", linewidth=1.2)
    grid = np.geomspace(positive[0], positive[-1], 200)
    gamma, weibull = fit_gamma(gaps), fit_weibull(gaps)  # the same fits (and KS distances) as `inspect`
    if gamma is not None and np.isfinite(gamma.shape):
        axes.plot(
            grid,
            1 - gamma_cdf(grid, gamma.shape, gamma.scale),
            "--",
            label=f"Gamma shape {gamma.shape:.3g} (CV {gamma.cv:.2f}, KS {gamma.ks_statistic:.3f})",
        )
    if weibull is not None:
        axes.plot(
            grid,
            1 - weibull_cdf(grid, weibull.shape, weibull.scale),
            ":",
            label=f"Weibull shape {weibull.shape:.3g} (CV {weibull.cv:.2f}, KS {weibull.ks_statistic:.3f})",
        )
    axes.legend(fontsize=8)


def _length_panel(axes: Any, trace: Trace) -> None:
    served = (trace.input_tokens > 0) & (trace.output_tokens > 0)
    inputs, outputs = trace.input_tokens[served], trace.output_tokens[served]
    axes.set(title="token lengths (failed rows excluded)", xlabel="tokens", ylabel="requests", xscale="log")
    if not inputs.size:
        return
    bins = np.geomspace(1, max(int(inputs.max()), int(outputs.max()), 2) * 1.05, 60)
    axes.hist(inputs, bins=bins, alpha=0.6, label=f"input (median {int(np.median(inputs)):,})")
    axes.hist(outputs, bins=bins, alpha=0.6, label=f"output (median {int(np.median(outputs)):,})")
    axes.legend(fontsize=8)
