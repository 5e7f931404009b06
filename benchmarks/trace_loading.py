"""Trace-loading benchmark: writes a BurstGPT-format file the size of the real BurstGPT_1.csv
(1.43 M rows, ~52 MB; the real file cannot be downloaded here) and reports rows/s and peak memory.

    .venv/bin/python benchmarks/trace_loading.py [--rows 1430000] [--keep FILE]

The file's rows are synthetic (Gamma inter-arrivals, log-normal lengths), not BurstGPT data; only
the format and size match, which is what loading speed depends on.
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


def measure(path: Path) -> None:
    """Load in a fresh process so its peak RSS is the loader's alone."""
    code = ("import resource,time,sys;from replayer.traces.formats import read_trace;"
            "base=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;t=time.perf_counter();"
            f"tr=read_trace({str(path)!r});dt=time.perf_counter()-t;"
            "peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
            "print(f'{len(tr):,} rows in {dt:.2f} s = {len(tr)/dt:,.0f} rows/s; '"
            "f'peak RSS {peak/1024:.0f} MB (interpreter and imports before loading: {base/1024:.0f} MB)')")
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_430_000)
    parser.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "burstgpt_like.csv"
        started = time.perf_counter()
        write_burstgpt_like(path, args.rows)
        print(f"wrote {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")
        measure(path)


if __name__ == "__main__":
    main()
