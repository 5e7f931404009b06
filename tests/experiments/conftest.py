"""The small workload of the experiment tests and its known capacity."""

import pytest

from replayer.run.config import OutputConfig, PromptConfig, RunConfig, WorkloadSource
from replayer.sim.engine import EngineModel
from replayer.sim.server import SimulatorConfig

SLOTS, DECODE_MS, OUTPUT_TOKENS, INPUT_TOKENS = 4, 5.0, 20, 50
ENGINE = EngineModel(max_running=SLOTS, decode_base_ms=DECODE_MS, decode_ms_per_seq=0)
SATURATION_RATE = SLOTS / ((INPUT_TOKENS / ENGINE.prefill_tokens_per_ms + OUTPUT_TOKENS * DECODE_MS) / 1000)
"""Requests per second that keep every slot busy: each holds one for its prefill and 20 decode steps (~40/s)."""


def tiny(rate: float = 5.0, duration_s: float = 4.0, arrivals: str = "poisson", **output) -> RunConfig:
    """A Poisson workload of fixed lengths against a simulator of 4 slots and a fixed 5 ms decode step."""
    spec = (f"arrivals={arrivals},rate={rate},duration={duration_s},input=fixed:{INPUT_TOKENS},"
            f"output=fixed:{OUTPUT_TOKENS}")
    return RunConfig(workload=WorkloadSource(synthetic=spec), prompts=PromptConfig(seed=7),
                     output=OutputConfig(quiet=True, **output), simulator=SimulatorConfig(engine=ENGINE))


@pytest.fixture
def tiny_config():
    """Factory of the experiments' small workload (see `tiny`)."""
    return tiny
