"""Trace-loading benchmark: writes BurstGPT-format files the size of the real BurstGPT_1.csv
(1.43 M rows, ~52 MB) and of the current BurstGPT_3 release (5.3 M rows); the real files cannot be
downloaded here. For each it reports the time and peak memory of `read_trace`, and the time of
`replayer inspect`'s work (the load and the trace's statistics), then judges the targets: 1.43 M rows
in <= 0.6 s, 5.3 M rows in <= 2.5 s, inspect <= 2x the load, peak memory for 5.3 M rows <= 1 GB.
The times start once replayer is imported and include pyarrow's import, which the load triggers.

    .venv/bin/python benchmarks/trace_loading.py [--rows 1430000,5300000] [--keep DIR]

The files' rows are synthetic (Gamma inter-arrivals, log-normal lengths), not BurstGPT data; only
the format and size match, which is what loading speed depends on. Each measurement runs in a fresh
process, so its peak memory is the loader's alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def write_burstgpt_like(path: Path, rows: int, seed: int = 0) -> None:
    """Write `rows` BurstGPT v1-format rows in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    t = 0.0
    with open(path, "w") as out:
        out.write(HEADER)
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            times = t + np.cumsum(rng.gamma(0.5, 5.0, n))
            t = float(times[-1])
            request = rng.lognormal(6.0, 1.0, n).astype(int)
            response = rng.lognormal(5.0, 1.0, n).astype(int)
            model = np.where(rng.random(n) < 0.8, "ChatGPT", "GPT-4")
            log_type = np.where(rng.random(n) < 0.6, "Conversation log", "API log")
            out.writelines(f"{int(ts)},{m},{a},{b},{a + b},{lt}\n"
                           for ts, m, a, b, lt in zip(times, model, request, response, log_type))


LOAD_TARGETS_S = {1_430_000: 0.6, 5_300_000: 2.5}
INSPECT_RATIO_LIMIT = 2.0
PEAK_LIMIT_MB = 1024


def measure(path: Path, inspect: bool) -> tuple[int, float, float]:
    """(rows, seconds, peak RSS MB) of loading the file, or of loading it and computing its statistics."""
    work = "tr=read_trace(p);stats=trace_stats(tr)" if inspect else "tr=read_trace(p)"
    code = ("import resource,time,sys;"
            "from replayer.traces.formats import read_trace;from replayer.traces.stats import trace_stats;"
            f"p={str(path)!r};t=time.perf_counter();{work};dt=time.perf_counter()-t;"
            "print(len(tr), dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def import_time() -> float:
    """Seconds to import the reader (the package's Python API with it), before any timed load."""
    code = "import time;t=time.perf_counter();import replayer.traces.formats;print(time.perf_counter()-t)"
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1430000,5300000", help="comma-separated row counts")
    parser.add_argument("--keep", type=Path, help="write the generated files into this folder and keep them")
    args = parser.parse_args()
    print(f"importing replayer.traces.formats: {import_time():.2f} s (before the timed work; pyarrow's own "
          "import, on first use, is timed)")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for rows in (int(n) for n in args.rows.split(",")):
            path = folder / f"burstgpt_like_{rows}.csv"
            if not path.exists():
                started = time.perf_counter()
                write_burstgpt_like(path, rows)
                print(f"wrote {path.name}: {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")
            count, load_s, peak_mb = measure(path, inspect=False)
            _, inspect_s, _ = measure(path, inspect=True)
            print(f"{count:,} rows: load {load_s:.2f} s = {count / load_s:,.0f} rows/s, peak RSS {peak_mb:.0f} MB; "
                  f"inspect (load and statistics) {inspect_s:.2f} s = {inspect_s / load_s:.2f}x the load")
            if rows in LOAD_TARGETS_S:
                verdicts.append((f"load {rows:,} rows <= {LOAD_TARGETS_S[rows]:g} s: {load_s:.2f} s",
                                 load_s <= LOAD_TARGETS_S[rows]))
            verdicts.append((f"inspect {rows:,} rows <= {INSPECT_RATIO_LIMIT:g}x the load: {inspect_s / load_s:.2f}x",
                             inspect_s <= INSPECT_RATIO_LIMIT * load_s))
            if rows == max(LOAD_TARGETS_S):
                verdicts.append((f"peak memory for {rows:,} rows <= {PEAK_LIMIT_MB} MB: {peak_mb:.0f} MB",
                                 peak_mb <= PEAK_LIMIT_MB))
    for text, met in verdicts:
        print(f"target: {text}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
