"""`inspect` statistics against the figures published in shared/data's READMEs."""

import numpy as np
import pytest

from replayer.traces.formats import read_trace
from replayer.traces.stats import lengths, peak, sparkline, trace_stats


def test_azure_conv_matches_its_readme():
    s = trace_stats(read_trace("sample:azure-2023-conv"))
    assert s["rows"] == 19_366 and round(s["span_s"]) == 3_502
    assert s["rate"] == {"mean_per_s": pytest.approx(5.53, abs=0.005), "peak_per_s": 16, "peak_per_min": 507}
    assert round(s["input_tokens"]["mean"]) == 1_155
    assert (s["input_tokens"]["p50"], s["input_tokens"]["p99"], s["input_tokens"]["max"]) == (1_020, 4_142, 14_050)
    assert round(s["output_tokens"]["mean"]) == 211
    assert (s["output_tokens"]["p50"], s["output_tokens"]["p99"], s["output_tokens"]["max"]) == (129, 601, 1_000)
    assert s["failed_rows"] == 0


def test_mooncake_matches_its_readme():
    s = trace_stats(read_trace("sample:mooncake-synthetic"))
    assert s["rate"] == {"mean_per_s": pytest.approx(3.91, abs=0.005), "peak_per_s": 13, "peak_per_min": 273}
    assert (s["input_tokens"]["p50"], s["input_tokens"]["p99"], s["input_tokens"]["max"]) == (11_587, 66_458, 191_378)
    assert (s["output_tokens"]["p50"], s["output_tokens"]["p99"], s["output_tokens"]["max"]) == (69, 769, 893)
    assert 0 < s["prefix_reuse"]["reuse_ratio"] < 1


def test_burstgpt_samples_match_their_readme():
    v1 = trace_stats(read_trace("sample:burstgpt-1"))
    assert (v1["failed_rows"], v1["failed_fraction"]) == (17, 0.0425)
    assert set(v1["models"]) == {"ChatGPT", "GPT-4"}
    v3 = trace_stats(read_trace("sample:burstgpt-3"))
    assert v3["failed_rows"] == 1
    assert v3["sessions"] == {"sessions": 135, "requests_in_sessions": 394,
                              "turns_mean": pytest.approx(394 / 135), "turns_max": 24}
    assert v3["log_types"]["API log"]["requests"] == 6


def test_hand_computed_helpers():
    assert lengths(np.array([1, 2, 3, 4, 100]))["p50"] == 3
    assert lengths(np.array([1, 2, 3, 4, 100]))["p90"] == 100
    assert peak(np.array([0.0, 0.5, 0.9, 1.0, 61.0]), 1.0) == 3
    line = sparkline(np.array([0.0, 0.1, 0.2, 10.0]), width=10)
    assert line == "█▁▁▁▁▁▁▁▁▃"  # 3 requests in the first bin (the busiest), 1 in the last: round(7/3) = 2
