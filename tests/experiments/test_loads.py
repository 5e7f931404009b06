import pytest

from replayer.errors import ConfigError
from replayer.experiments.loads import at_rate, at_speedup
from replayer.run.config import RunConfig, WorkloadSource
from replayer.traces.synthetic import mean_rate
from replayer.workload.shaping import Shaping


def test_a_trace_is_compressed_and_a_synthetic_spec_has_its_rates_multiplied():
    trace = RunConfig(workload=WorkloadSource(trace="sample:azure-2023-conv"))
    assert at_speedup(trace, 4).shaping.speedup == 4 and at_rate(trace, 3).shaping.rate == 3
    synthetic = RunConfig(workload=WorkloadSource(synthetic="arrivals=gamma,cv=3,rate=2@0/6@10,duration=20"))
    faster = at_speedup(synthetic, 3).workload.synthetic
    assert "rate=6@0/18@10" in faster and "duration=20" in faster and "cv=3" in faster
    assert mean_rate(at_rate(synthetic, 12).workload.synthetic) == pytest.approx(12)


def test_an_experiment_sets_the_pace_itself():
    with pytest.raises(ConfigError, match="--speedup"):
        at_speedup(RunConfig(shaping=Shaping(speedup=2)), 4)
