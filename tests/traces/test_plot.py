import numpy as np

from replayer.traces.formats import read_trace
from replayer.traces.model import Trace
from replayer.traces.plot import plot_trace


def test_svg_has_the_three_panels_and_the_fits(tmp_path):
    path = tmp_path / "azure.svg"
    plot_trace(read_trace("sample:azure-2023-conv"), path)
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for title in ("arrival rate", "inter-arrival times", "token lengths", "Gamma shape", "Weibull shape",
                  "19,366 requests"):
        assert title in text


def test_png_is_written(tmp_path):
    path = tmp_path / "mooncake.png"
    plot_trace(read_trace("sample:mooncake-synthetic"), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_one_row_trace_still_plots(tmp_path):
    one = Trace(source="one", format="csv", row_ids=np.arange(1), arrival_s=np.zeros(1),
                input_tokens=np.array([5]), output_tokens=np.array([0]))
    plot_trace(one, tmp_path / "one.svg")
    assert (tmp_path / "one.svg").stat().st_size > 0
