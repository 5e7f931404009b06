from dataclasses import replace

import numpy as np
import pytest

from replayer.errors import ConfigError
from replayer.traces.formats import read_trace
from replayer.traces.model import Categorical, Trace
from replayer.workload.shaping import Shaping, peak_concurrency, shape


def make_trace(times, inputs=None, outputs=None, models=None) -> Trace:
    n = len(times)
    return Trace(source="t", format="test", row_ids=np.arange(n), arrival_s=np.asarray(times, float),
                 input_tokens=np.asarray(inputs or [10] * n), output_tokens=np.asarray(outputs or [5] * n),
                 models=Categorical(np.asarray(models, np.int32), ("ChatGPT", "GPT-4")) if models else None)


def test_speedup_divides_every_gap_and_same_timestamps_stay_together():
    workload = shape(make_trace([0, 0, 10, 30]), Shaping(speedup=10))
    assert workload.offsets_ns.tolist() == [0, 0, 1_000_000_000, 3_000_000_000]


def test_rate_rescales_to_the_requested_mean_rate():
    # 5 requests over 40 s = 0.1 req/s; 1 req/s needs a 10x speedup
    workload = shape(make_trace([0, 10, 20, 30, 40]), Shaping(rate=1.0))
    assert workload.speedup == pytest.approx(10.0)
    assert workload.offsets_ns[-1] == 4_000_000_000


def test_window_is_in_trace_seconds_and_offsets_restart_at_zero():
    workload = shape(make_trace([0, 5, 10, 15, 20]), Shaping(start_s=5, duration_s=10))
    assert workload.trace.row_ids.tolist() == [1, 2]
    assert workload.offsets_ns.tolist() == [0, 5_000_000_000]
    assert workload.skipped == {"outside_window": 3}


def test_zero_token_rows_are_skipped_and_counted_unless_included():
    trace = make_trace([0, 1, 2], inputs=[10, 0, 10], outputs=[5, 0, 0])
    assert shape(trace, Shaping()).skipped == {"zero_tokens": 2}
    assert len(shape(trace, Shaping(include_failed=True))) == 3


def test_burstgpt_sample_failure_rows_are_reported():
    workload = shape(read_trace("sample:burstgpt-1"), Shaping())
    assert len(workload) == 383
    assert workload.skipped == {"zero_tokens": 17}


def test_filters_by_model_and_log_type_case_insensitively():
    trace = read_trace("sample:burstgpt-1")
    gpt4 = shape(trace, Shaping(models=("gpt-4",), include_failed=True))
    assert set(gpt4.trace.models.values()) == {"GPT-4"}
    assert gpt4.skipped["model_filter"] == int(np.count_nonzero(trace.models.values() != "GPT-4"))
    api = shape(trace, Shaping(log_types=("API log",), include_failed=True))
    assert set(api.trace.log_types.values()) == {"API log"}


def test_max_requests_keeps_the_first_rows():
    workload = shape(make_trace([0, 1, 2, 3]), Shaping(max_requests=2))
    assert workload.trace.row_ids.tolist() == [0, 1]
    assert workload.skipped == {"max_requests": 2}


@pytest.mark.parametrize("kwargs", [
    {"speedup": 0}, {"speedup": -1}, {"rate": 0}, {"speedup": 2, "rate": 1}, {"duration_s": 0},
    {"start_s": -1}, {"max_requests": 0},
])
def test_invalid_shaping_is_refused(kwargs):
    with pytest.raises(ConfigError):
        Shaping(**kwargs)


def test_unknown_filter_value_and_empty_result_are_clear_errors():
    trace = read_trace("sample:burstgpt-1")
    with pytest.raises(ConfigError, match="no model 'Claude'.*ChatGPT, GPT-4"):
        shape(trace, Shaping(models=("Claude",)))
    with pytest.raises(ConfigError, match="no requests left"):
        shape(trace, Shaping(start_s=1e9))
    with pytest.raises(ConfigError, match="no log type column"):
        shape(read_trace("sample:azure-2023-conv"), Shaping(log_types=("API log",)))


def test_busiest_window_holds_the_most_requests():
    trace = make_trace([0, 1, 50, 50.5, 51, 51.2, 90])
    workload = shape(trace, Shaping(busiest_s=2))
    assert workload.trace.row_ids.tolist() == [2, 3, 4, 5]
    assert workload.window_s == (50.0, 52.0)


def test_the_busiest_window_is_that_of_the_rows_the_filters_keep():
    # ChatGPT (0) is busiest early, GPT-4 (1) late: GPT-4's busiest 2 s are its own, not the trace's.
    trace = make_trace([0, 0.5, 1, 1.5, 10, 10.5, 11], models=[0, 0, 0, 0, 1, 1, 1])
    workload = shape(trace, Shaping(busiest_s=2, models=("GPT-4",)))
    assert workload.trace.row_ids.tolist() == [4, 5, 6]
    assert workload.skipped == {"model_filter": 4}


def test_busiest_minute_of_azure_has_its_documented_peak():
    workload = shape(read_trace("sample:azure-2023-conv"), Shaping(busiest_s=60))
    assert len(workload) >= 507  # the README's 507 is for minute bins aligned to the first request


def test_absolute_window_in_the_trace_clock():
    burst = read_trace("sample:burstgpt-1")  # seconds since the trace's day 0; first row at 5 s
    workload = shape(burst, Shaping(from_time="45", until_time="118", include_failed=True))
    assert workload.trace.row_ids.tolist() == [1]
    azure = read_trace("sample:azure-2023-conv")
    window = shape(azure, Shaping(from_time="2023-11-16 18:15:50", until_time="2023-11-16 18:15:52"))
    assert window.trace.row_ids.tolist() == [1, 2, 3]
    with pytest.raises(ConfigError, match="not dates"):
        shape(burst, Shaping(from_time="2023-11-16"))


def test_token_ranges_and_max_input_tokens():
    trace = make_trace([0, 1, 2, 3], inputs=[10, 500, 5000, 50], outputs=[1, 2, 3, 400])
    assert shape(trace, Shaping(input_range=(20, 1000))).trace.row_ids.tolist() == [1, 3]
    assert shape(trace, Shaping(output_range=(2, 3))).trace.row_ids.tolist() == [1, 2]
    dropped = shape(trace, Shaping(max_input_tokens=1000))
    assert dropped.trace.row_ids.tolist() == [0, 1, 3] and dropped.skipped == {"over_max_input_tokens": 1}
    clamped = shape(trace, Shaping(max_input_tokens=1000, over_limit="clamp"))
    assert clamped.trace.input_tokens.tolist() == [10, 500, 1000, 50] and clamped.clamped == 1


def test_sampling_keeps_a_seeded_fraction_at_the_original_times():
    trace = make_trace(list(range(10_000)))
    a = shape(trace, Shaping(sample_fraction=0.25, sample_seed=3))
    b = shape(trace, Shaping(sample_fraction=0.25, sample_seed=3))
    assert a.trace.row_ids.tolist() == b.trace.row_ids.tolist()
    assert 2300 < len(a) < 2700
    assert a.trace.arrival_s.tolist() == a.trace.row_ids.astype(float).tolist()


def test_session_sampling_keeps_whole_sessions_and_draws_lone_rows_one_by_one():
    sessions = [f"s{i // 4}" if i % 5 else "" for i in range(8_000)]  # sessions of 3-4 rows, and lone rows
    labels = tuple(dict.fromkeys(sessions))
    trace = replace(make_trace(list(range(8_000))),
                    sessions=Categorical(np.array([labels.index(s) for s in sessions], np.int32), labels))
    kept = shape(trace, Shaping(sample_sessions=0.5, sample_seed=1))
    names = kept.trace.sessions.values()
    whole = {name: sessions.count(name) for name in set(sessions) if name}
    assert all(list(names).count(name) in (0, whole[name]) for name in set(names) if name)
    assert 0.4 < len(set(names) - {""}) / len(whole) < 0.6
    assert 0.4 < list(names).count("") / sessions.count("") < 0.6
    with pytest.raises(ConfigError, match="has no sessions"):
        shape(make_trace([0, 1]), Shaping(sample_sessions=0.5))


def test_max_idle_gap_shortens_only_the_long_silences_before_the_speedup():
    workload = shape(make_trace([0, 1, 3601, 3602, 7000]), Shaping(max_idle_gap_s=60, speedup=2))
    assert workload.offsets_ns.tolist() == [0, 500_000_000, 30_500_000_000, 31_000_000_000, 61_000_000_000]


@pytest.mark.parametrize("kwargs", [
    {"busiest_s": 10, "start_s": 5}, {"input_range": (5, 1)}, {"sample_fraction": 0}, {"sample_fraction": 1.5},
    {"over_limit": "truncate"}, {"max_input_tokens": 0}, {"sample_sessions": 0},
    {"sample_sessions": 0.5, "sample_fraction": 0.5}, {"max_idle_gap_s": 0}, {"session_timing": "closed"},
])
def test_invalid_new_shaping_is_refused(kwargs):
    with pytest.raises(ConfigError):
        Shaping(**kwargs)


def test_peak_concurrency_counts_requests_open_at_the_same_time():
    trace = read_trace("sample:burstgpt-1")
    workload = shape(trace, Shaping(max_requests=3))
    one_at_a_time = replace(workload, offsets_ns=np.array([0, 10, 20]) * 10**9)
    assert peak_concurrency(one_at_a_time, ms_per_token=0, first_token_s=1.0) == 1
    together = replace(workload, offsets_ns=np.array([0, 0, 5]) * 10**8)
    assert peak_concurrency(together, ms_per_token=0, first_token_s=1.0) == 3
    back_to_back = replace(workload, offsets_ns=np.array([0, 1, 2]) * 10**9)  # each ends as the next starts
    assert peak_concurrency(back_to_back, ms_per_token=0, first_token_s=1.0) == 1


def test_row_labels_give_each_row_the_traces_model_and_log_type():
    workload = shape(read_trace("sample:burstgpt-1"), Shaping())
    labels = workload.row_labels()
    assert {row["model"] for row in labels} == {"ChatGPT", "GPT-4"} and len(labels) == len(workload)
    assert labels[0]["model"] == workload.trace.models.values()[0]
    assert len({id(row) for row in labels}) <= 4  # one shared dict per combination, not one per row
    assert shape(read_trace("sample:azure-2023-conv"), Shaping(max_requests=5)).row_labels() == [None] * 5
