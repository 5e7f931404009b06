import numpy as np
import pytest

from replayer.errors import ConfigError
from replayer.trace import Categorical, Trace, read_trace
from replayer.workload import Shaping, shape


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
