import csv
import json

import pytest

from replayer.analysis.json_report import with_vllm_keys
from replayer.analysis.markdown import markdown_report
from replayer.analysis.slo import evaluate, parse_slos
from replayer.analysis.summary import summarize
from replayer.cli import main
from replayer.records import RequestRecord
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.workload.shaping import Shaping

MS = 1_000_000
RECORDS = [RequestRecord(id=i, intended_ns=i * 1000 * MS, input_tokens=10, output_tokens=3, sent_ns=i * 1000 * MS,
                         first_token_ns=(i * 1000 + 100 * (i + 1)) * MS, end_ns=(i * 1000 + 100 * (i + 1) + 40) * MS,
                         served_input_tokens=10, served_output_tokens=3, itl_us=[20_000, 20_000]) for i in range(3)]


def test_vllm_key_names_carry_our_values():
    summary = summarize(RECORDS)  # TTFTs 100, 200, 300; TPOT 20; E2E 140, 240, 340; duration 2.34 s
    summary["slo"] = evaluate(parse_slos(["ttft<=250ms"]), RECORDS, summary)
    flat = with_vllm_keys(summary)
    assert (flat["mean_ttft_ms"], flat["median_ttft_ms"], flat["p99_ttft_ms"]) == (200.0, 200.0, pytest.approx(298.0))
    assert flat["median_tpot_ms"] == 20.0 and flat["p90_itl_ms"] == 20.0 and flat["mean_e2el_ms"] == 240.0
    assert flat["duration"] == 2.34 and flat["request_goodput"] == pytest.approx(2 / 2.34)
    assert flat["total_token_throughput"] == pytest.approx((9 + 30) / 2.34)
    assert flat["ttft_ms"] == summary["ttft_ms"]  # our own keys stay


def test_the_terminal_report_never_cuts_a_number_or_a_verdict_at_80_columns():
    from rich.console import Console

    from replayer.analysis.text import render_summary

    slow = [RequestRecord(id=i, intended_ns=i * 1000 * MS, input_tokens=10_000 * i, output_tokens=3,
                          sent_ns=i * 1000 * MS, first_token_ns=(i * 1000 + 279_220) * MS,
                          end_ns=(i * 1000 + 279_220 + 40) * MS, served_input_tokens=10_000 * i,
                          served_output_tokens=3, itl_us=[20_000, 20_000], labels={"model": f"model-{i}" * 3})
            for i in range(3)]
    summary = summarize(slow)
    summary["slo"] = evaluate(parse_slos(["ttft<=250ms", "tpot<=50ms", "attainment>=90%", "ttft_p99<=2s",
                                          "error_rate<=1%"]), slow, summary)
    console = Console(record=True, width=80)
    render_summary(summary, console)
    text = console.export_text()
    assert "…" not in text
    assert "TTFT (s)" in text and "279.22" in text and "TPOT " in text  # long latencies in seconds, short in ms
    assert text.count("FAIL") == 2 and "pass" in text
    from replayer.analysis.compare import compare_runs
    from replayer.analysis.text import compare_table
    from replayer.records import RecordFile
    deltas = compare_runs([RecordFile({}, slow, trailer={})], [RecordFile({}, slow, trailer={})])
    console = Console(record=True, width=80)
    console.print(compare_table(deltas, "runs/release-2026.11-base", "runs/release-2026.12-candidate"))
    assert "…" not in console.export_text()


def test_markdown_has_the_latency_table_and_the_slo_verdict():
    summary = summarize(RECORDS)
    summary["slo"] = evaluate(parse_slos(["ttft_p50<=150ms"]), RECORDS, summary)
    text = markdown_report(summary, "nightly")
    assert text.startswith("### nightly\n\n**3** of 3 requests completed, 0 failed; 1.28 req/s")
    assert "| TTFT | 200.00 | 200.00 |" in text
    assert "**SLOs violated: ttft_p50<=150ms**" in text and "| `ttft_p50<=150ms` | 200.00 ms | **FAIL** |" in text


def test_a_run_leaves_its_time_series_and_report_writes_every_format(tmp_path, capsys):
    run = tmp_path / "run"
    execute(
        RunConfig(
            workload=WorkloadSource(trace="sample:azure-2023-conv"),
            shaping=Shaping(duration_s=10, speedup=5),
            prompts=PromptConfig(seed=1),
            output=OutputConfig(quiet=True, out_dir=run),
        )
    )
    rows = list(csv.DictReader((run / "timeseries.csv").open()))
    summary = json.loads((run / "summary.json").read_text())
    assert sum(int(row["sent"]) for row in rows) == summary["requests_sent"]
    assert summary["mean_ttft_ms"] == summary["ttft_ms"]["mean"]
    assert (
        main(
            [
                "report",
                str(run),
                "--format",
                "markdown",
                "-o",
                str(tmp_path / "r.md"),
                "--timeseries",
                str(tmp_path / "ts.csv"),
                "--bin",
                "0.5",
            ]
        )
        == 0
    )
    assert (tmp_path / "r.md").read_text().startswith("### replayer summary of")
    assert [row["t_s"] for row in csv.DictReader((tmp_path / "ts.csv").open())][:2] == ["0.0", "0.5"]
    assert main(["report", str(run), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["completed"] == summary["completed"]


def test_report_takes_what_only_the_run_saw_from_the_records_file_not_its_summary(tmp_path):
    from dataclasses import replace

    from replayer.analysis.runs import summarize_run
    from replayer.records import RecordWriter, append_trailer, read_records

    writer = RecordWriter(tmp_path / "records.jsonl", {"config": {}, "target": {"stream": True}})
    for record in RECORDS:
        writer.write(replace(record, labels={"model": "GPT-4"}))
    writer.close()
    append_trailer(
        tmp_path / "records.jsonl",
        {"stop_reason": "SIGINT", "client_cpu_s": 1.5, "server_metrics": {"available": False}},
    )
    stale = {"client_cpu_s": 9.0, "breakdowns": {"model": {"ChatGPT": {"requests": 3}}, "turns": {"stale": {}}}}
    (tmp_path / "summary.json").write_text(json.dumps(stale))
    summary = summarize_run(read_records(tmp_path / "records.jsonl"))
    assert summary["client_cpu_s"] == 1.5 and summary["server_metrics"] == {"available": False}
    assert summary["interrupted"] == "SIGINT"
    assert list(summary["breakdowns"]["model"]) == ["GPT-4"]
    assert list(summary["breakdowns"]["turns"]) == ["single-turn"]  # recomputed from the records, not taken
