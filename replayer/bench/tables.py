"""Tables of the client bench (`replayer bench`)."""

from __future__ import annotations

from rich.table import Table


def bench_table(results: list) -> Table:
    """`replayer bench`: one row per ladder step (`replayer.bench.ladder.StepResult`); yellow rows missed a limit."""
    emission = results[0].emission if results else "step"
    table = Table(title=f"Client bench, {emission} emission (ms)", title_justify="left", box=None, pad_edge=False,
                  caption="req/s: intended -> achieved. TTFT inflation = client TTFT - server truth; ITL error = "
                          "|client - truth| per gap. CPU: client seconds per 1k requests / per 100k tokens. "
                          "raw: a minimal raw-socket client on the same requests (TTFT inflation p50/p99, CPU, "
                          "lag p99).",
                  caption_justify="left")
    for name in ("step", "req/s", "done", "lag p50/p99/max", "TTFT infl. p50/p99", "ITL err. p50/p99", "CPU",
                 "raw infl.", "raw CPU", "raw lag"):
        table.add_column(name, justify="right", no_wrap=True)

    def values(*numbers: float) -> str:
        return "/".join(f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in numbers)

    for r in results:
        table.add_row(
            f"{r.rate:g}x{r.tokens}",
            f"{r.intended_rate:.0f}->{r.achieved_rate:.0f}",
            f"{r.completed}/{r.planned}",
            values(*r.lag_ms),
            values(*r.ttft_inflation_ms),
            values(*r.itl_error_ms),
            f"{r.cpu_per_1k_requests_s:.2f}/{r.cpu_per_100k_tokens_s:.2f}",
            values(*r.raw_ttft_inflation_ms),
            f"{r.raw_cpu_per_1k_requests_s:.2f}",
            values(r.raw_lag_p99_ms),
            style=None if r.faithful else "yellow",
        )
    return table
