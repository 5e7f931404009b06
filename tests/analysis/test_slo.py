from dataclasses import replace
from xml.etree import ElementTree

import pytest

from replayer.analysis.markdown import junit_xml
from replayer.analysis.slo import SLO_OUT_OF_REACH, SloWatch, evaluate, parse_slo, parse_slos
from replayer.analysis.summary import summarize
from replayer.cli import main
from replayer.cli.run import run_exit_code
from replayer.errors import ConfigError
from replayer.records import RequestRecord
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.sim.engine import EngineModel
from replayer.sim.server import SimulatorConfig
from replayer.workload.shaping import Shaping

MS = 1_000_000


def ok(i, sent, first, end, n_out):
    return RequestRecord(id=i, intended_ns=sent * MS, input_tokens=10, output_tokens=n_out, sent_ns=sent * MS,
                         first_token_ns=first * MS, end_ns=end * MS, served_input_tokens=10, served_output_tokens=n_out,
                         itl_us=[])


# TTFT 100/200/300 ms; TPOT 100 (5 tokens), 10 (3 tokens), none (1 token); E2E 500/220/300; one failure
RECORDS = [ok(0, 0, 100, 500, 5), ok(1, 1000, 1200, 1220, 3), ok(2, 2000, 2300, 2300, 1),
           RequestRecord(id=3, intended_ns=3000 * MS, input_tokens=10, output_tokens=4, sent_ns=3000 * MS,
                         end_ns=4000 * MS, status="http_500", error="boom")]


@pytest.mark.parametrize(("text", "metric", "op", "limit"), [
    ("ttft_p99<=500ms", "ttft_p99", "<=", 500.0), ("e2e<2s", "e2e", "<", 2000.0), ("TPOT <= 900us", "tpot", "<=", 0.9),
    ("error_rate<=1%", "error_rate", "<=", 0.01), ("attainment>=0.9", "attainment", ">=", 0.9),
    ("output_throughput>=2000tok/s", "output_throughput", ">=", 2000.0), ("itl_max<=80", "itl_max", "<=", 80.0),
])
def test_slos_parse_into_the_metrics_unit(text, metric, op, limit):
    slo = parse_slo(text)
    assert (slo.metric, slo.op) == (metric, op) and slo.limit == pytest.approx(limit)


@pytest.mark.parametrize(("texts", "message"), [
    (["ttft_p42<=1s"], "unknown metric 'ttft_p42'"), (["ttft<=5%"], "a latency takes ms, s or us"),
    (["ttft>=5ms"], "per-request SLO is an upper bound"), (["ttft 500"], "expected METRIC<=VALUE"),
    (["error_rate<=5ms"], "a fraction"), (["goodput>=2"], "add at least one"),
])
def test_bad_slos_are_one_line_errors(texts, message):
    with pytest.raises(ConfigError, match=message):
        parse_slos(texts)


def test_goodput_and_attainment_count_requests_meeting_every_per_request_slo():
    summary = summarize(RECORDS)  # duration 4 s (the failure ends last)
    result = evaluate(parse_slos(["ttft<=250ms", "tpot<=50ms", "attainment>=50%", "goodput>=0.5"]), RECORDS, summary)
    # request 0: TPOT 100 > 50; request 1: TTFT 200, TPOT 10: good; request 2: TTFT 300 > 250; 3 failed
    assert (result["good_requests"], result["goodput"], result["attainment"]) == (1, 0.25, 0.25)
    assert [(c["slo"], c["value"], c["passed"]) for c in result["checks"]] == [
        ("attainment>=50%", 0.25, False), ("goodput>=0.5", 0.25, False)]
    assert result["passed"] is False
    lenient = evaluate(parse_slos(["e2e<=500ms"]), RECORDS, summary)  # a 1-token request has no TPOT to fail
    assert lenient["good_requests"] == 3 and lenient["passed"] is True and lenient["checks"] == []


def test_aggregate_slos_read_the_summary():
    summary = summarize(RECORDS)
    result = evaluate(parse_slos(["ttft_p50<=200ms", "ttft_max<300ms", "error_rate<=25%", "request_throughput>=1"]),
                      RECORDS, summary)
    assert [(c["value"], c["passed"]) for c in result["checks"]] == [
        (200.0, True), (300.0, False), (0.25, True), (0.75, False)]


def test_junit_has_one_case_per_aggregate_slo_and_a_failure_for_each_violation():
    summary = summarize(RECORDS)
    xml = junit_xml(evaluate(parse_slos(["ttft_p50<=200ms", "ttft_max<300ms"]), RECORDS, summary), "runs/x")
    suite = ElementTree.fromstring(xml.split("?>", 1)[1])
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    [failed] = [case for case in suite if case.find("failure") is not None]
    assert failed.get("name") == "ttft_max<300ms" and "measured 300.00 ms" in failed.find("failure").get("message")


def test_junit_has_a_case_per_per_request_slo_failing_only_with_the_gate_over_them():
    summary = summarize(RECORDS)
    gated = evaluate(parse_slos(["ttft<=250ms", "tpot<=50ms", "attainment>=50%"]), RECORDS, summary)
    assert gated["missed"] == {"ttft<=250ms": 2, "tpot<=50ms": 2}  # (the failure misses both)
    suite = ElementTree.fromstring(junit_xml(gated, "runs/x").split("?>", 1)[1])
    cases = {case.get("name"): case for case in suite}
    assert set(cases) == {"ttft<=250ms (per request)", "tpot<=50ms (per request)", "attainment>=50%"}
    assert (suite.get("tests"), suite.get("failures")) == ("3", "3")
    assert "missed by 2 requests" in cases["ttft<=250ms (per request)"].find("failure").get("message")
    alone = evaluate(parse_slos(["ttft<=250ms"]), RECORDS, summary)  # no gate: reported, never failed
    [case] = ElementTree.fromstring(junit_xml(alone, "runs/x").split("?>", 1)[1])
    assert case.find("failure") is None and "missed by 2 requests" in case.find("system-out").text


def test_run_exits_1_on_a_violated_slo_and_check_gives_the_same_verdict_from_the_files(tmp_path, capsys):
    base = RunConfig(
        workload=WorkloadSource(trace="sample:azure-2023-conv"),
        shaping=Shaping(duration_s=10, speedup=5),
        prompts=PromptConfig(seed=1),
        output=OutputConfig(quiet=True),
    )
    met = execute(
        replace(base, output=replace(base.output, out_dir=tmp_path / "met", slos=("ttft_p99<=10s", "error_rate<=0")))
    )
    missed = execute(replace(base, output=replace(base.output, out_dir=tmp_path / "missed", slos=("ttft_p50<=1us",))))
    assert (run_exit_code(met), met.summary["slo"]["passed"]) == (0, True)
    assert (run_exit_code(missed), missed.summary["slo"]["passed"]) == (1, False)
    assert main(["check", str(tmp_path / "met")]) == 0
    assert main(["check", str(tmp_path / "missed"), "--junit", str(tmp_path / "slo.xml")]) == 1
    assert 'failures="1"' in (tmp_path / "slo.xml").read_text()
    assert main(["check", str(tmp_path / "missed"), "--slo", "ttft_p50<=10s"]) == 0  # other SLOs, same records
    assert "SLOs violated: ttft_p50<=1us" in capsys.readouterr().out


def finished(index: int, ttft_ms: float | None, warmup: bool = False) -> RequestRecord:
    """A finished request: ok with this TTFT, or failed (None)."""
    record = RequestRecord(index, 0, 10, 10, sent_ns=0, warmup=warmup)
    if ttft_ms is None:
        record.fail("http_500", "boom", 1)
    else:
        record.first_token_ns, record.end_ns, record.served_output_tokens = int(ttft_ms * 1e6), int(ttft_ms * 1e6), 10
    return record


def test_the_watch_calls_a_percentile_out_of_reach_only_once_the_rest_cannot_save_it():
    watch = SloWatch(parse_slos(["ttft_p90<=100ms"]), planned=20)
    # p90 of 20 values interpolates between the 18th and 19th: 2 values over the bound can still pass
    assert watch.observe(finished(0, 500)) is None
    assert watch.observe(finished(1, 500)) is None
    reason = watch.observe(finished(2, 500))
    assert reason.startswith(SLO_OUT_OF_REACH) and "ttft_p90<=100ms" in reason
    records = [finished(i, 500 if i < 2 else 10) for i in range(20)]
    assert evaluate(parse_slos(["ttft_p90<=100ms"]), records, summarize(records))["passed"]  # 2 over: still held
    three = [finished(i, 500 if i < 3 else 10) for i in range(20)]
    assert not evaluate(parse_slos(["ttft_p90<=100ms"]), three, summarize(three))["passed"]


def test_the_watch_counts_failures_misses_and_ignores_the_warmup():
    errors = SloWatch(parse_slos(["error_rate<=10%"]), planned=10)
    assert errors.observe(finished(0, None)) is None
    assert errors.observe(finished(1, None, warmup=True)) is None
    assert errors.observe(finished(2, None)).startswith(SLO_OUT_OF_REACH)
    attainment = SloWatch(parse_slos(["ttft<=50ms", "attainment>=80%"]), planned=10)
    assert attainment.observe(finished(0, 60)) is None and attainment.observe(finished(1, None)) is None
    assert "attainment" in attainment.observe(finished(2, 70))
    never = SloWatch(parse_slos(["output_throughput>=100", "ttft_p99<=1s"]), planned=1000)
    assert all(never.observe(finished(i, 10)) is None for i in range(100))


def test_a_run_stopped_early_fails_its_slos_and_keeps_what_finished(tmp_path):
    config = RunConfig(workload=WorkloadSource(synthetic="arrivals=constant,rate=40,duration=6,input=fixed:50,"
                                                         "output=fixed:50"),
                       output=OutputConfig(quiet=True, out_dir=tmp_path / "run", slos=("ttft_p99<=50ms",),
                                           stop_early=True),
                       simulator=SimulatorConfig(engine=EngineModel(max_running=2, decode_base_ms=5,
                                                                    decode_ms_per_seq=0)))
    result = execute(config)
    assert result.stop_reason.startswith(SLO_OUT_OF_REACH)
    assert result.summary["slo"]["stopped_early"] == result.stop_reason and not result.slo_passed
    assert result.summary["requests_sent"] < 240 and result.summary["accounting"]["balanced"]
    assert run_exit_code(result) == 1


def test_stop_early_needs_an_aggregate_slo_and_one_process():
    with pytest.raises(ConfigError, match="aggregate"):
        OutputConfig(slos=("ttft<=1s",), stop_early=True)
    with pytest.raises(ConfigError, match="--workers"):
        RunConfig(output=OutputConfig(slos=("ttft_p99<=1s",), stop_early=True), scale=ScaleConfig(workers=2))
