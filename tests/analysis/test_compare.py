import json

import pytest

from replayer.analysis.compare import compare_summaries, parse_limit
from replayer.cli import main
from replayer.errors import ConfigError
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.sim.engine import EngineModel
from replayer.sim.server import SimulatorConfig
from replayer.workload.shaping import Shaping


def summary(ttft_p99: float, throughput: float, failed: int, sent: int = 100) -> dict:
    return {"ttft_ms": {"p99": ttft_p99}, "output_throughput": throughput, "failed": failed, "requests_sent": sent}


def test_each_metric_regresses_in_its_own_direction():
    limits = {"ttft_p99": 0.10, "output_throughput": 0.10, "error_rate": 0.01}
    deltas = {d.metric: d for d in compare_summaries(summary(100, 1000, 1), summary(125, 850, 3), limits)}
    assert deltas["ttft_p99"].change == pytest.approx(0.25) and deltas["ttft_p99"].regressed
    assert deltas["output_throughput"].change == pytest.approx(-0.15) and deltas["output_throughput"].regressed
    assert deltas["error_rate"].change == pytest.approx(0.02) and deltas["error_rate"].regressed  # +2 points
    better = compare_summaries(summary(100, 1000, 3), summary(80, 1200, 1), limits)
    assert not any(d.regressed for d in better)
    within = compare_summaries(summary(100, 1000, 1), summary(109, 910, 1), limits)
    assert not any(d.regressed for d in within)


@pytest.mark.parametrize(("text", "expected"), [("ttft_p99=10%", ("ttft_p99", 0.10)),
                                                ("error_rate=0.5%", ("error_rate", 0.005)),
                                                ("OUTPUT_THROUGHPUT=0.2", ("output_throughput", 0.2))])
def test_limits_parse(text, expected):
    assert parse_limit(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["ttft=10%", "ttft_p99", "ttft_p99=ten", "ttft_p99=-1%"])
def test_bad_limits_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="--max-regression"):
        parse_limit(text)


def test_a_slower_server_is_flagged(tmp_path, capsys):
    shaping = Shaping(duration_s=10, speedup=5)
    for name, decode_ms in (("fast", 10.0), ("slow", 20.0)):
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
    assert {"tpot_p50", "tpot_p99", "e2e_p99"} <= set(regressed) and "error_rate" not in regressed
    assert main(["compare", str(tmp_path / "slow"), str(tmp_path / "fast"), "--max-regression", "tpot_p99=5%"]) == 0
