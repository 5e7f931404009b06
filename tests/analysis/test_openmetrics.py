"""`report --format prometheus`: OpenMetrics that Prometheus' own parser reads, with the run's labels."""

import json

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as classic_families

from replayer.cli import main
from replayer.run.config import OutputConfig, RunConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.sim.engine import EngineModel
from replayer.sim.faults import Faults
from replayer.sim.server import SimulatorConfig


def test_the_summary_exports_as_openmetrics_that_prometheus_parses(tmp_path, capsys):
    run = tmp_path / "nightly"
    execute(RunConfig(
        workload=WorkloadSource(synthetic="arrivals=constant,rate=20,requests=40,input=fixed:30,output=fixed:5"),
        output=OutputConfig(out_dir=run, quiet=True, slos=("ttft<=1s", "attainment>=50%", "ttft_p99<=1us")),
        simulator=SimulatorConfig(engine=EngineModel(decode_base_ms=1.0), faults=Faults(error_rates=((500, 0.25),),
                                                                                        seed=3)),
    ))
    summary = json.loads((run / "summary.json").read_text())
    assert main(["report", str(run), "--format", "prometheus", "-o", str(tmp_path / "replayer.prom")]) == 0
    text = (tmp_path / "replayer.prom").read_text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k in ("quantile", "outcome", "slo")))):
               s for family in families.values() for s in family.samples}
    classic = {family.name: family for family in classic_families(text)}  # (what textfile collectors read)
    assert {"replayer_ttft_seconds", "replayer_requests", "replayer_slo_passed"} <= set(classic)
    ttft = families["replayer_ttft_seconds"]
    assert (ttft.type, ttft.unit) == ("summary", "seconds")
    assert samples[("replayer_ttft_seconds", (("quantile", "0.99"),))].value == pytest.approx(
        summary["ttft_ms"]["p99"] / 1000)
    assert samples[("replayer_ttft_seconds_count", ())].value == summary["ttft_ms"]["count"]
    assert samples[("replayer_requests", (("outcome", "ok"),))].value == summary["completed"]
    assert samples[("replayer_requests", (("outcome", "http_500"),))].value == summary["failures"]["http_500"]
    assert samples[("replayer_request_throughput", ())].value == pytest.approx(summary["request_throughput"])
    assert samples[("replayer_slo_passed", (("slo", "all"),))].value == 0
    assert samples[("replayer_slo_passed", (("slo", "ttft_p99<=1us"),))].value == 0
    assert samples[("replayer_attainment_ratio", ())].value == pytest.approx(summary["slo"]["attainment"])
    labels = samples[("replayer_requests", (("outcome", "ok"),))].labels
    assert labels["run"] == str(run) and labels["model"] == "replayer-sim" and labels["backend"] == "replayer"
    assert labels["api"] == "chat" and labels["version"] and labels["target"].startswith("http://127.0.0.1:")
    assert json.loads(capsys.readouterr().out or "{}") == {}  # (written to the file, not printed)
    assert main(["report", str(run), "--format", "json"]) == 0
    assert "mean_ttft_ms" in json.loads(capsys.readouterr().out)  # the vLLM-style JSON keys stay
