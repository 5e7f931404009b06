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


def test_the_capacity_and_sweep_pages_have_their_verdict_tables_and_round_charts(tmp_path, page_of, round_ticks,
                                                                                chromium, chromium_dom):
    found = capacity(CONFIG, Search(("ttft_p99<=100ms",), low=4, precision=0.5), tmp_path / "capacity")
    text = (tmp_path / "capacity" / "report.html").read_text()
    assert html.escape(found["verdict"]) in text and "probes/01-speedup-4/report.html" in text
    swept = sweep(CONFIG, Sweep(speedups=(1, 4), slos=("ttft<=100ms",)), tmp_path / "sweep")
    text = (tmp_path / "sweep" / "report.html").read_text()
    assert "Latency versus load" in text and "goodput req/s" in text
    assert text == render_experiment(swept, str(tmp_path / "sweep"))
    for name in ("capacity", "sweep"):
        for page in (page_of((tmp_path / name / "report.html").read_text()),):
            assert page.h1.startswith(f"replayer {name}") and page.scripts == 0 and len(page.tables) >= 2
            assert page.charts and all(c.lines and round_ticks(c.x_ticks) and round_ticks(c.y_ticks)
                                       for c in page.charts), page.charts
    for name in ("capacity", "sweep"):  # and as Chromium lays them out
        page = page_of(chromium_dom(tmp_path / name / "report.html"))
        assert page.charts and all(c.lines and round_ticks(c.y_ticks) for c in page.charts)
        assert len(set(chromium(tmp_path / name / "report.html", tmp_path / f"{name}.png"))) > 50
