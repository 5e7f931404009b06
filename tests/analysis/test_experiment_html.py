import html

from replayer.analysis.experiment_html import render_experiment
from replayer.experiments.capacity import Search, capacity
from replayer.experiments.sweep import Sweep, sweep
from replayer.run.config import OutputConfig, RunConfig, WorkloadSource
from replayer.sim.engine import EngineModel
from replayer.sim.server import SimulatorConfig

CONFIG = RunConfig(workload=WorkloadSource(synthetic="rate=5,duration=2,input=fixed:50,output=fixed:20"),
                   output=OutputConfig(quiet=True),
                   simulator=SimulatorConfig(engine=EngineModel(max_running=4, decode_base_ms=5, decode_ms_per_seq=0)))


def test_the_capacity_and_sweep_reports_render_in_headless_chromium(tmp_path, chromium):
    found = capacity(CONFIG, Search(("ttft_p99<=100ms",), low=4, precision=0.5), tmp_path / "capacity")
    page = (tmp_path / "capacity" / "report.html").read_text()
    assert html.escape(found["verdict"]) in page and "<svg" in page and "probes/01-speedup-4/report.html" in page
    assert len(set(chromium(tmp_path / "capacity" / "report.html", tmp_path / "capacity.png"))) > 50
    swept = sweep(CONFIG, Sweep(speedups=(1, 4), slos=("ttft<=100ms",)), tmp_path / "sweep")
    page = (tmp_path / "sweep" / "report.html").read_text()
    assert "Latency versus load" in page and "goodput req/s" in page
    assert page == render_experiment(swept, str(tmp_path / "sweep"))
    assert len(set(chromium(tmp_path / "sweep" / "report.html", tmp_path / "sweep.png"))) > 50
