import re

from replayer.analysis.html import render_html
from replayer.analysis.slo import evaluate, parse_slos
from replayer.analysis.summary import summarize
from replayer.analysis.timeseries import time_series
from replayer.records import RequestRecord
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.workload.shaping import Shaping

MS = 1_000_000
RECORDS = [RequestRecord(id=i, intended_ns=i * 300 * MS, input_tokens=10, output_tokens=3, sent_ns=i * 300 * MS,
                         first_token_ns=(i * 300 + 50 + i) * MS, end_ns=(i * 300 + 90 + i) * MS, served_input_tokens=10,
                         served_output_tokens=3, itl_us=[20_000, 20_000]) for i in range(20)]


def test_the_page_is_self_contained_with_a_chart_per_view():
    summary = summarize(RECORDS)
    summary["slo"] = evaluate(parse_slos(["ttft_p99<=60ms"]), RECORDS, summary)
    page = render_html(summary, RECORDS, time_series(RECORDS), "run <x>", server=[(0.0, {"running": 2.0})])
    assert "<script" not in page and not re.search(r"(src|href)=['\"]https?:", page)  # opens offline
    assert page.count("<svg") == 7  # load, latency, server, failures, and the TTFT, TPOT and E2E CDFs
    assert "run &lt;x&gt;" in page and "FAIL" in page and "68.81 ms" in page  # TTFTs 50..69 ms




def test_the_report_of_a_run_renders_in_headless_chromium(tmp_path, chromium):
    run = tmp_path / "run"
    execute(
        RunConfig(
            workload=WorkloadSource(trace="sample:azure-2023-conv"),
            shaping=Shaping(duration_s=20, speedup=4),
            prompts=PromptConfig(seed=1),
            output=OutputConfig(quiet=True, out_dir=run),
        )
    )
    pixels = chromium(run / "report.html", tmp_path / "shot.png")
    assert len(set(pixels)) > 50  # a blank page has a handful of distinct bytes; tables and plots have many
