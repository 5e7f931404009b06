import math
from dataclasses import replace

import pytest

from replayer.errors import ConfigError
from replayer.experiments.capacity import Search, bracket_and_bisect, capacity
from replayer.experiments.loads import at_speedup
from replayer.experiments.rebuild import rebuild
from replayer.run.config import OutputConfig
from replayer.run.pipeline import execute

from .conftest import SATURATION_RATE, SLOTS


def probing(threshold: float, answers: dict[float, bool | None] | None = None):
    """A fake probe passing below `threshold`, and the speedups it was asked, in order."""
    asked: list[float] = []

    def probe(speedup: float) -> bool | None:
        asked.append(speedup)
        return (answers or {}).get(speedup, speedup < threshold)
    return probe, asked


def test_the_search_doubles_to_a_failure_then_bisects_to_the_precision():
    probe, asked = probing(10.0)
    passing, failing = bracket_and_bisect(probe, Search(("ttft_p99<=1s",), low=1.0, precision=0.05))
    assert asked[:5] == [1, 2, 4, 8, 16]
    assert passing < 10.0 <= failing and failing / passing <= 1.05
    low, high = 8.0, 16.0  # each later probe is the geometric middle of the bracket so far: it never reopens
    for speedup in asked[5:]:
        assert math.isclose(speedup, math.sqrt(low * high))
        low, high = (speedup, high) if speedup < 10.0 else (low, speedup)


def test_the_search_ends_at_the_low_end_the_high_end_or_a_probe_that_cannot_say():
    assert bracket_and_bisect(probing(0.5)[0], Search(("ttft_p99<=1s",))) == (None, 1.0)
    probe, asked = probing(1e9)
    assert bracket_and_bisect(probe, Search(("ttft_p99<=1s",), low=1, high=20)) == (20, None)
    assert asked == [1, 2, 4, 8, 16, 20]
    probe, asked = probing(10.0, {16.0: None})
    assert bracket_and_bisect(probe, Search(("ttft_p99<=1s",))) == (8.0, None) and asked[-1] == 16.0


def test_a_search_of_users_probes_whole_numbers_and_ends_one_user_apart():
    probe, asked = probing(5.5)
    search = Search(("ttft_p99<=1s",), low=1.0, precision=0.05, load="concurrency")
    assert bracket_and_bisect(probe, search) == (5, 6)
    assert asked == [1, 2, 4, 8, 6, 5]  # (the geometric middles 5.66 and 4.90, rounded)


@pytest.mark.parametrize(("settings", "message"), [
    ({"slos": ("ttft<=1s",)}, "aggregate"), ({"low": 4, "high": 2}, "--low"), ({"precision": 1.5}, "--precision"),
    ({"trials": 0}, "--trials"), ({"load": "rate"}, "--vary"), ({"load": "concurrency", "low": 1.5}, "whole")])
def test_bad_search_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        Search(**{"slos": ("ttft_p99<=1s",), **settings})


def test_the_capacity_found_lies_just_below_the_saturation_rate_and_holds_again(tmp_path, tiny_config):
    config = tiny_config()
    result = capacity(config, Search(("ttft_p99<=200ms",), low=4, precision=0.10), tmp_path / "cap")
    assert 0.6 * SATURATION_RATE <= result["max_rate"] <= SATURATION_RATE
    speeds = [p["speedup"] for p in result["probes"]]
    assert speeds[:2] == [4, 8] and result["failing_speedup"] / result["max_speedup"] <= 1.10
    assert (tmp_path / "cap" / "capacity.json").is_file() and (tmp_path / "cap" / "report.html").is_file()
    assert all((tmp_path / "cap" / run / "records.jsonl").is_file() for p in result["probes"] for run in p["runs"])
    assert result["verdict"].startswith(f"sustains {result['max_rate']:.3g} req/s")

    def again(speedup: float, name: str):
        output = replace(config.output, out_dir=tmp_path / name, slos=("ttft_p99<=200ms",), stop_early=True)
        return execute(replace(at_speedup(config, speedup), output=output))
    assert again(result["max_speedup"], "again").slo_passed
    assert not again(1.25 * result["max_speedup"], "beyond").slo_passed


def test_the_most_closed_loop_users_found_is_the_simulators_slot_count(tmp_path, tiny_config):
    out = tmp_path / "cap"
    search = Search(("ttft_p99<=50ms",), load="concurrency")  # a fifth user on 4 slots waits a whole request
    result = capacity(tiny_config(rate=10, duration_s=2), search, out)
    assert (result["load"], result["max_concurrency"], result["failing_concurrency"]) == ("concurrency", SLOTS,
                                                                                         SLOTS + 1)
    assert "max_speedup" not in result and [p["concurrency"] for p in result["probes"]] == [1, 2, 4, 8, 6, 5]
    assert f"({SLOTS} users)" in result["verdict"] and result["verdict"].startswith("sustains")
    assert sorted(path.name for path in (out / "probes").iterdir())[0] == "01-concurrency-1"
    assert "closed-loop users probed" in (out / "report.html").read_text()
    assert rebuild(out)["probes"] == result["probes"]


def test_a_probe_stops_early_once_its_slos_are_out_of_reach(tmp_path, tiny_config):
    result = capacity(tiny_config(duration_s=3), Search(("ttft_p99<=50ms",), low=16), tmp_path / "cap")
    [first] = result["probes"]
    assert first["passed"] is False and first["stopped_early"].startswith("slo out of reach")
    assert first["trials"][0]["requests_sent"] < 150  # of about 16 x 5 x 3 = 240
    assert result["max_speedup"] is None and result["verdict"].startswith("does not sustain")


def test_max_time_bounds_the_whole_search_and_the_cut_probe_decides_nothing(tmp_path, tiny_config):
    result = capacity(tiny_config(duration_s=3), Search(("ttft_p99<=5s",), low=1, max_time_s=5), tmp_path / "cap")
    assert result["stopped"] in ("max time", "time limit") and result["elapsed_s"] < 5 + 3
    decided = [p for p in result["probes"] if not p.get("inconclusive")]
    assert decided and all(p["passed"] for p in decided)
    assert result["max_speedup"] == max(p["speedup"] for p in decided) and result["failing_speedup"] is None


def test_with_trials_a_probe_passes_only_when_every_trial_does(tmp_path, tiny_config):
    result = capacity(tiny_config(duration_s=2), Search(("ttft_p99<=2s",), low=1, high=2, trials=2), tmp_path / "cap")
    assert [p["speedup"] for p in result["probes"]] == [1, 2] and result["max_speedup"] == 2
    for probe in result["probes"]:
        assert [t["run"].rsplit("/", 1)[1] for t in probe["trials"]] == ["trial-1", "trial-2"]
        assert probe["passed"] and "spread" in probe
    seeds = {execute_seed(tmp_path / "cap" / t["run"]) for t in result["probes"][0]["trials"]}
    assert len(seeds) == 2  # fresh prompts per trial


def execute_seed(run_dir) -> int:
    import json
    return json.loads((run_dir / "records.jsonl").read_text().split("\n", 1)[0])["header"]["seed"]


def test_output_config_of_a_probe_is_checked(tiny_config):
    with pytest.raises(ConfigError):
        OutputConfig(time_limit_s=0)
