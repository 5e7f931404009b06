import json

import numpy as np
import pytest

from replayer.analysis.compare import compare_runs, parse_limit
from replayer.cli import main
from replayer.errors import ConfigError
from replayer.records import RecordFile, RequestRecord
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.sim.engine import EngineModel
from replayer.sim.server import SimulatorConfig
from replayer.workload.shaping import Shaping


def run_of(ttft_ms: list[float], failed: int = 0, tokens: int = 10) -> RecordFile:
    """A run's records: one successful request per TTFT (sent a second apart, 10 ms per token after
    the first), then `failed` failures."""
    records = []
    for index, ttft in enumerate(ttft_ms):
        sent = index * 1_000_000_000
        first = sent + int(ttft * 1e6)
        records.append(RequestRecord(index, sent, 100, tokens, sent_ns=sent, first_token_ns=first,
                                     end_ns=first + (tokens - 1) * 10_000_000, served_output_tokens=tokens))
    for index in range(len(ttft_ms), len(ttft_ms) + failed):
        sent = index * 1_000_000_000
        records.append(RequestRecord(index, sent, 100, tokens, sent_ns=sent, end_ns=sent + 1, status="http_500"))
    return RecordFile({"target": {"stream": True}}, records, trailer={})


def test_a_change_is_a_regression_only_when_its_whole_interval_lies_beyond_the_limit():
    rng = np.random.default_rng(3)
    base = run_of(list(rng.normal(100, 5, 400)))
    shifted = run_of(list(rng.normal(150, 5, 400)), failed=40)
    limits = {"ttft_p50": 0.10, "output_throughput": 0.10, "error_rate": 0.01}
    deltas = {d.metric: d for d in compare_runs([base], [shifted], limits)}
    assert deltas["ttft_p50"].change == pytest.approx(0.5, abs=0.05) and deltas["ttft_p50"].regressed
    assert deltas["ttft_p50"].low > 0.10  # the whole interval beyond the 10 % limit
    assert deltas["error_rate"].regressed and deltas["error_rate"].change == pytest.approx(40 / 440)
    assert not compare_runs([shifted], [base], limits)[0].regressed  # the other way round it got better
    same = {d.metric: d for d in compare_runs([base], [run_of(list(rng.normal(100, 5, 400)))], limits)}
    assert same["ttft_p50"].verdict == "within noise" and same["ttft_p50"].low < 0 < same["ttft_p50"].high


def test_a_change_beyond_the_limit_but_not_beyond_noise_is_within_noise():
    rng = np.random.default_rng(4)
    small = [run_of(list(rng.exponential(100, 30)))]
    worse = [run_of(list(rng.exponential(115, 30)))]  # +15 % on 30 samples: the interval is far wider
    delta = next(d for d in compare_runs(small, worse, {"ttft_p99": 0.10}) if d.metric == "ttft_p99")
    assert delta.verdict == "within noise" and not delta.regressed and delta.low < 0.10 < delta.high


def test_trials_widen_the_interval_by_their_spread():
    rng = np.random.default_rng(5)
    one = [run_of(list(rng.normal(100, 5, 200)))]
    other = [run_of(list(rng.normal(104, 5, 200)))]
    spread_base = [run_of(list(rng.normal(mean, 5, 200))) for mean in (90, 100, 110)]
    spread_new = [run_of(list(rng.normal(mean, 5, 200))) for mean in (94, 104, 114)]
    narrow = next(d for d in compare_runs(one, other, {"ttft_p50": 0.5}) if d.metric == "ttft_p50")
    wide = next(d for d in compare_runs(spread_base, spread_new, {"ttft_p50": 0.5}) if d.metric == "ttft_p50")
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)


def test_runs_of_different_workloads_show_throughputs_as_not_comparable_and_never_regress():
    base, new = run_of([100.0] * 400), run_of([100.0] * 400, failed=200)  # a third fewer completions per second
    judged = {d.metric: d for d in compare_runs([base], [new])}
    assert judged["request_throughput"].regressed
    shown = {d.metric: d for d in compare_runs([base], [new], rates_comparable=False)}
    assert shown["request_throughput"].verdict == shown["output_throughput"].verdict == "not comparable"
    assert shown["request_throughput"].change == judged["request_throughput"].change
    assert shown["error_rate"].regressed  # (the rest is judged as before)


def test_a_given_limit_replaces_its_metrics_default_and_keeps_the_others():
    base, new = run_of([100.0] * 400), run_of([160.0] * 400, failed=40)
    limits = {d.metric: d.limit for d in compare_runs([base], [new], {"ttft_p99": 0.80, "tpot_p90": 0.2})}
    assert limits["ttft_p99"] == 0.80 and limits["tpot_p90"] == 0.2
    assert limits["ttft_p50"] == limits["e2e_p99"] == 0.10 and limits["error_rate"] == 0.01


@pytest.mark.parametrize(("text", "expected"), [("ttft_p99=10%", ("ttft_p99", 0.10)),
                                                ("error_rate=0.5%", ("error_rate", 0.005)),
                                                ("OUTPUT_THROUGHPUT=0.2", ("output_throughput", 0.2))])
def test_limits_parse(text, expected):
    assert parse_limit(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["ttft=10%", "ttft_p99", "ttft_p99=ten", "ttft_p99=-1%"])
def test_bad_limits_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="--max-regression"):
        parse_limit(text)


def test_the_same_configuration_is_within_noise_and_twice_the_decode_time_a_regression(tmp_path, capsys, page_of,
                                                                                       round_ticks, chromium_dom):
    read_page, is_round = page_of, round_ticks
    shaping = Shaping(duration_s=6, speedup=5)
    for name, decode_ms in (("fast", 10.0), ("again", 10.0), ("slow", 20.0)):
        execute(
            RunConfig(
                workload=WorkloadSource(trace="sample:azure-2023-conv"),
                shaping=shaping,
                prompts=PromptConfig(seed=1),
                output=OutputConfig(quiet=True, out_dir=tmp_path / name),
                simulator=SimulatorConfig(engine=EngineModel(decode_base_ms=decode_ms)),
            )
        )
    assert main(["compare", str(tmp_path / "fast"), str(tmp_path / "slow"), "--format", "json"]) == 1
    regressed = json.loads(capsys.readouterr().out)["regressed"]
    assert {"tpot_p50", "tpot_p99"} <= set(regressed) and "error_rate" not in regressed
    assert main(["compare", str(tmp_path / "slow"), str(tmp_path / "fast"), "--max-regression", "tpot_p99=5%"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "fast"), str(tmp_path / "slow"), "--max-regression", "tpot_p99=500%",
                 "--format", "json"]) == 1  # tpot_p50 keeps its default limit
    regressed = json.loads(capsys.readouterr().out)["regressed"]
    assert "tpot_p50" in regressed and "tpot_p99" not in regressed
    assert main(["compare", str(tmp_path / "fast"), str(tmp_path / "again"), "--format", "json"]) == 0
    metrics = {m["metric"]: m for m in json.loads(capsys.readouterr().out)["metrics"]}
    assert metrics["ttft_p99"]["verdict"] == "within noise"
    main(["compare", str(tmp_path / "fast"), str(tmp_path / "again")])
    assert "within noise" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "fast"), str(tmp_path / "slow"), "--format", "html", "-o",
                 str(tmp_path / "compare.html")]) == 1
    page = read_page((tmp_path / "compare.html").read_text())
    assert page.scripts == 0 and page.h1.startswith("replayer compare")
    level, text = page.verdict[0]
    assert level == "bad" and "tpot_p50" in text and "tpot_p99" in text
    deltas = next(rows for rows in page.tables if rows[0][:2] == ["metric", "base"])
    assert {row[0]: row[-1] for row in deltas[1:]}["tpot_p99"] == "REGRESSION"
    assert [c.title for c in page.charts][:4] == ["TTFT p99 by send time", "E2E p99 by send time",
                                                  "TPOT p99 by send time", "Completed per second"]
    assert all(c.lines >= 2 and is_round(c.x_ticks) and is_round(c.y_ticks) for c in page.charts)  # both runs
    laid_out = read_page(chromium_dom(tmp_path / "compare.html"))  # and as Chromium built the page
    assert laid_out.verdict == page.verdict and len(laid_out.charts) == len(page.charts) and laid_out.tables
