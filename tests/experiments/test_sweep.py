import json

import pytest

from replayer.errors import ConfigError
from replayer.experiments.rebuild import rebuild
from replayer.experiments.sweep import Sweep, knee, parse_loads, sweep


def test_loads_are_a_list_or_a_geometric_range():
    assert parse_loads("4,1,2", "--speedups") == (1.0, 2.0, 4.0)
    assert parse_loads("1:16:5", "--speedups") == pytest.approx((1, 2, 4, 8, 16))
    for bad in ("1:16:1", "0,2", "a,b", "4:2:3"):
        with pytest.raises(ConfigError, match="--speedups"):
            parse_loads(bad, "--speedups")
    with pytest.raises(ConfigError, match="one of them"):
        Sweep()


def point(rate: float, ttft_p99: float) -> dict:
    return {"load": "speedup", "value": rate, "metrics": {"sent_rate": rate, "ttft_p99": ttft_p99}}


def test_the_knee_is_the_first_point_where_ttft_p99_grows_faster_than_the_load():
    points = [point(1, 100), point(2, 110), point(4, 150), point(8, 900)]
    assert knee(points)["point"] == 3 and knee(points)["ttft_p99_ratio"] == pytest.approx(6.0)
    assert knee([point(1, 100), point(2, 150), point(4, 200)]) is None


def test_a_sweep_replays_each_point_and_report_rebuilds_it_from_the_records(tmp_path, tiny_config):
    out = tmp_path / "sweep"
    result = sweep(tiny_config(duration_s=2), Sweep(speedups=(1, 8), slos=("ttft<=100ms",)), out)
    first, second = result["points"]
    assert second["metrics"]["sent_rate"] > 5 * first["metrics"]["sent_rate"]
    assert first["metrics"]["attainment"] == pytest.approx(1.0) and first["metrics"]["goodput"] > 0
    assert second["metrics"]["ttft_p99"] > first["metrics"]["ttft_p99"]
    saved = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**saved, "points": [{**p, "metrics": {}} for p in saved["points"]]}))
    assert rebuild(out)["points"] == saved["points"]  # every figure comes back from the records


def test_a_concurrency_sweep_runs_closed_loops_of_each_size_and_rebuilds(tmp_path, tiny_config):
    out = tmp_path / "sweep"
    result = sweep(tiny_config(rate=10, duration_s=2), Sweep(concurrencies=(1, 8)), out)  # 8 users on 4 slots
    first, second = result["points"]
    assert [(p["load"], p["value"]) for p in result["points"]] == [("concurrency", 1.0), ("concurrency", 8.0)]
    assert second["metrics"]["sent_rate"] > 2 * first["metrics"]["sent_rate"]
    assert second["metrics"]["ttft_p99"] > first["metrics"]["ttft_p99"] + 20  # half of them queue for a slot
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["concurrencies"] == [1, 8] and rebuild(out)["points"] == saved["points"]
    with pytest.raises(ConfigError, match="one of them"):
        Sweep(speedups=(1,), concurrencies=(2,))
