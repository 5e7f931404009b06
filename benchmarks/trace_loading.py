"""Trace-loading benchmark: writes BurstGPT-format files the size of the real BurstGPT_1.csv
(1.43 M rows, ~52 MB) and of the current BurstGPT_3 release (5.3 M rows), in the v1 columns and in
BurstGPT_3's v3 columns (with `Session ID` and `Elapsed time`); the real files cannot be
downloaded here. For each it reports the time and peak memory of `read_trace`, and the time of
`replayer inspect`'s work (the load and the trace's statistics), then judges the targets: 1.43 M rows
in <= 0.6 s, 5.3 M rows in <= 2.5 s, inspect <= 2x the load, peak memory for 5.3 M rows <= 1 GB.
The times start once replayer is imported and include pyarrow's import, which the load triggers.

    .venv/bin/python benchmarks/trace_loading.py [--rows 1430000,5300000] [--columns v1,v3] [--keep DIR]

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

HEADERS = {"v1": "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n",
           "v3": "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"}
"""The column orders of BurstGPT_1/_2 and of BurstGPT_3 (the v2.0 release)."""


def write_burstgpt_like(path: Path, rows: int, columns: str = "v1", seed: int = 0) -> None:
    """Write `rows` BurstGPT rows in the `columns` layout, in chunks (bounded memory); v3 rows carry
    a session id (about three turns each) and a production elapsed time in seconds."""
    rng = np.random.default_rng(seed)
    t = 0.0
    with open(path, "w") as out:
        out.write(HEADERS[columns])
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            times = t + np.cumsum(rng.gamma(0.5, 5.0, n))
            t = float(times[-1])
            request = rng.lognormal(6.0, 1.0, n).astype(int)
            response = rng.lognormal(5.0, 1.0, n).astype(int)
            model = np.where(rng.random(n) < 0.8, "ChatGPT", "GPT-4")
            log_type = np.where(rng.random(n) < 0.6, "Conversation log", "API log")
            if columns == "v1":
                out.writelines(f"{int(ts)},{m},{a},{b},{a + b},{lt}\n"
                               for ts, m, a, b, lt in zip(times, model, request, response, log_type))
                continue
            sessions = (start + np.arange(n)) // 3 + rng.integers(0, 2, n)
            elapsed = rng.lognormal(1.5, 0.8, n)
            out.writelines(f"{int(ts)},{sid},{e:.3f},{m},{a},{b},{a + b},{lt}\n"
                           for ts, sid, e, m, a, b, lt in zip(times, sessions, elapsed, model, request, response,
                                                              log_type))


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
    parser.add_argument("--columns", default="v1,v3", help="column layouts to measure: v1 (BurstGPT_1/_2), v3 "
                                                           "(BurstGPT_3, with sessions and elapsed time)")
    parser.add_argument("--keep", type=Path, help="write the generated files into this folder and keep them")
    args = parser.parse_args()
    print(f"importing replayer.traces.formats: {import_time():.2f} s (before the timed work; pyarrow's own "
          "import, on first use, is timed)")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        layouts = args.columns.split(",")
        for rows, columns in ((int(n), c) for n in args.rows.split(",") for c in layouts):
            path = folder / f"burstgpt_{columns}_like_{rows}.csv"
            if not path.exists():
                started = time.perf_counter()
                write_burstgpt_like(path, rows, columns)
                print(f"wrote {path.name}: {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")
            count, load_s, peak_mb = measure(path, inspect=False)
            _, inspect_s, _ = measure(path, inspect=True)
            print(f"{count:,} rows ({columns}): load {load_s:.2f} s = {count / load_s:,.0f} rows/s, peak RSS "
                  f"{peak_mb:.0f} MB; "
                  f"inspect (load and statistics) {inspect_s:.2f} s = {inspect_s / load_s:.2f}x the load")
            if rows in LOAD_TARGETS_S:
                verdicts.append((f"load {rows:,} rows ({columns}) <= {LOAD_TARGETS_S[rows]:g} s: {load_s:.2f} s",
                                 load_s <= LOAD_TARGETS_S[rows]))
            verdicts.append((f"inspect {rows:,} rows ({columns}) <= {INSPECT_RATIO_LIMIT:g}x the load: "
                             f"{inspect_s / load_s:.2f}x",
                             inspect_s <= INSPECT_RATIO_LIMIT * load_s))
            if rows == max(LOAD_TARGETS_S):
                verdicts.append((f"peak memory for {rows:,} rows ({columns}) <= {PEAK_LIMIT_MB} MB: {peak_mb:.0f} MB",
                                 peak_mb <= PEAK_LIMIT_MB))
    for text, met in verdicts:
        print(f"target: {text}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
