import re
from dataclasses import replace

from replayer.analysis.html import render_html
from replayer.analysis.slo import evaluate, parse_slos
from replayer.analysis.summary import summarize
from replayer.analysis.timeseries import time_series
from replayer.records import RequestRecord
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.workload.shaping import Shaping

MS = 1_000_000
HEADER = {"version": "0.1.0", "t0_wall_ns": 1_767_225_600 * 10**9, "workers": 1,
          "workload": {"source": "sample:azure-2023-conv", "format": "azure", "requests": 20, "speedup": 2.0,
                       "shaping": {"duration_s": 6.0}},
          "target": {"base_url": "http://gpu-1:8000", "api": "chat", "model": "m-7b", "backend": "vllm",
                     "stream": True, "ignore_eos": True}}
RECORDS = [RequestRecord(id=i, intended_ns=i * 300 * MS, input_tokens=10, output_tokens=3, sent_ns=i * 300 * MS,
                         first_token_ns=(i * 300 + 50 + i) * MS, end_ns=(i * 300 + 90 + i) * MS, served_input_tokens=10,
                         served_output_tokens=3, itl_us=[20_000, 20_000]) for i in range(20)]


def test_the_page_is_self_contained_with_a_chart_per_view(page_of, round_ticks):
    summary = summarize(RECORDS)
    summary["slo"] = evaluate(parse_slos(["ttft_p99<=60ms"]), RECORDS, summary)
    html_text = render_html(summary, RECORDS, time_series(RECORDS), "run <x>", server=[(0.0, {"running": 2.0})],
                            header=HEADER)
    assert not re.search(r"(src|href)=['\"]https?:", html_text)  # opens offline
    page = page_of(html_text)
    assert page.scripts == 0 and page.h1 == "run <x>"
    assert page.header["model"] == "m-7b" and page.header["backend"] == "vllm" and "speedup 2" in page.header["shaping"]
    assert page.verdict[0] == ("bad", "SLOs violated: ttft_p99<=60ms")
    assert [title for title in (c.title for c in page.charts)] == [
        "Arrivals: the trace's intended sends against what was sent and completed",
        "Time to first token by send time", "Time per output token by send time", "End-to-end latency by send time",
        "Requests in flight", "Failures by kind",
        "Server: requests running and waiting", "TTFT CDF", "TPOT CDF", "E2E CDF"]
    for chart in page.charts:  # every chart drawn, with hover values and round ticks on both axes
        assert not chart.empty and chart.lines >= 1 and chart.hover >= 1, chart
        assert round_ticks(chart.x_ticks) and round_ticks(chart.y_ticks), chart
        assert chart.x_ticks[0] <= 0 or "CDF" in chart.title, chart  # time axes start at t0, not before it
    tables = {rows[0][0] if rows[0] else "": rows for rows in page.tables}
    assert "68.81" in str(tables["metric"])  # TTFTs 50..69 ms
    assert any(row[-1] == "FAIL" for row in tables["objective"])


def test_the_verdict_names_what_went_wrong_and_the_client_behind_windows_are_shaded(page_of):
    late = [replace(r, sent_ns=r.intended_ns + 9 * MS) for r in RECORDS]  # every send 9 ms late
    failed = RequestRecord(id=99, intended_ns=0, input_tokens=10, output_tokens=3, sent_ns=0, end_ns=MS,
                           status="http_503")
    records = [*late, failed]
    summary = summarize(records)
    html_text = render_html(summary, records, time_series(records), "late", header=HEADER)
    page = page_of(html_text)
    levels = dict((text.split(" ")[0], level) for level, text in page.verdict)
    assert levels["WARNING:"] == "bad" and levels["1"] == "warn"  # the client behind; 1 of 21 failed (http_503)
    assert "http_503 1" in " ".join(text for _, text in page.verdict)
    assert html_text.count("class='shade'") >= 4  # (the shaded windows: arrivals and the three by-send-time charts)


def test_the_report_of_a_run_renders_in_headless_chromium(tmp_path, chromium, chromium_dom, page_of, round_ticks):
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
    page = page_of(chromium_dom(run / "report.html"))  # the DOM as Chromium built it
    assert "AzureLLMInferenceTrace_conv" in page.header["trace"] and page.verdict and len(page.tables) >= 3
    assert len(page.charts) >= 8 and all(c.lines and round_ticks(c.y_ticks) for c in page.charts)
