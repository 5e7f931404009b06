"""replayer: replay recorded LLM production traces against OpenAI-compatible servers and measure what users feel.

The Python API runs the same pipeline as the command line (which is a thin layer over it):

    import replayer
    config = replayer.RunConfig(workload=replayer.WorkloadSource(trace="sample:azure-2023-conv"),
                                shaping=replayer.Shaping(duration_s=20, speedup=4))
    result = replayer.run(config)            # against the built-in simulator; TargetConfig(base_url=...) for yours
    replayer.check(result.out_dir, ["ttft_p99<=2s"])["passed"]

`run` returns a `RunResult` (run directory, `Summary`, stop reason); `report`, `check` and
`compare` judge finished run directories without sending any load; `capacity`, `sweep` and
`run_trials` are experiments: many runs of one workload, each in its own directory.
"""

from replayer.analysis.summary import Distribution, Summary
from replayer.api import Comparison, check, compare, read_runs, report, run
from replayer.errors import ConfigError, InputError, OutputError, ReplayerError
from replayer.experiments.capacity import Search, capacity
from replayer.experiments.sweep import Sweep, sweep
from replayer.experiments.trials import run_trials
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, TargetConfig, WorkloadSource
from replayer.run.pipeline import RunResult
from replayer.send.client import Timeouts
from replayer.sim.engine import EngineModel
from replayer.sim.faults import Faults
from replayer.sim.server import SimulatorConfig
from replayer.version import __version__
from replayer.workload.shaping import Shaping

__all__ = [
    "Comparison", "ConfigError", "Distribution", "EngineModel", "Faults", "InputError", "OutputConfig", "OutputError",
    "PromptConfig", "ReplayerError", "RunConfig", "RunResult", "ScaleConfig", "Shaping", "SimulatorConfig", "Summary",
    "Search", "Sweep", "TargetConfig", "Timeouts", "WorkloadSource", "__version__", "capacity", "check", "compare",
    "read_runs", "report", "run", "run_trials", "sweep",
]
