import math

import numpy as np
import pytest

from replayer.errors import ConfigError
from replayer.traces.fitting import fit_gamma
from replayer.traces.formats import read_trace
from replayer.traces.model import Trace
from replayer.traces.synthetic import (
    RateSchedule,
    conditional_outputs,
    fitted_defaults,
    parse_spec,
    synthesize,
    write_trace_csv,
)


def _trace_from(times: np.ndarray, inputs: np.ndarray, outputs: np.ndarray) -> Trace:
    return Trace(source="test", format="csv", row_ids=np.arange(len(times)), arrival_s=times - times[0],
                 input_tokens=inputs, output_tokens=outputs)


def _gap_cv(trace: Trace) -> float:
    gaps = np.diff(trace.arrival_s)
    return float(gaps.std() / gaps.mean())


@pytest.mark.parametrize(("arrivals", "cv"), [("poisson", 1.0), ("gamma", 3.0), ("gamma", 0.5), ("weibull", 2.0)])
def test_arrivals_have_the_requested_rate_and_burstiness(arrivals, cv):
    spec = parse_spec(f"arrivals={arrivals},cv={cv},rate=50,duration=2000,input=fixed:10,output=fixed:5,seed=3")
    trace = synthesize(spec)
    assert len(trace) / 2000 == pytest.approx(50, rel=0.05 * max(cv, 1))
    assert _gap_cv(trace) == pytest.approx(cv, rel=0.08)
    assert trace.arrival_s[0] == 0 and np.all(np.diff(trace.arrival_s) >= 0) and trace.arrival_s[-1] < 2000


def test_gamma_arrivals_fit_back_to_their_shape():
    trace = synthesize(parse_spec("arrivals=gamma,cv=2,rate=10,requests=100000,input=fixed:1,output=fixed:1"))
    assert fit_gamma(np.diff(trace.arrival_s)).shape == pytest.approx(0.25, rel=0.03)


@pytest.mark.parametrize("arrivals", ["gamma", "weibull"])
def test_shape_and_scale_give_the_same_gaps_as_that_distribution(arrivals):
    trace = synthesize(
        parse_spec(f"arrivals={arrivals},shape=0.5,scale=2,requests=100000,input=fixed:1,output=fixed:1")
    )
    gaps = np.diff(trace.arrival_s)
    rng = np.random.default_rng(0)
    reference = rng.gamma(0.5, 2, 100_000) if arrivals == "gamma" else 2 * rng.weibull(0.5, 100_000)
    assert gaps.mean() == pytest.approx(reference.mean(), rel=0.03)
    assert gaps.std() == pytest.approx(reference.std(), rel=0.06)


def test_a_period_repeats_the_rate_pattern():
    spec = parse_spec("rate=1@0/30@50/1@100,period=100,duration=400,input=fixed:1,output=fixed:1,seed=5")
    by_phase = np.histogram(np.mod(synthesize(spec).arrival_s, 100), bins=[0, 10, 45, 55, 90, 100])[0]
    assert by_phase[2] > 4 * by_phase[0] and by_phase[2] > 4 * by_phase[4]
    assert "period=100" in spec.text and parse_spec(spec.text) == spec


def test_constant_arrivals_are_evenly_spaced():
    trace = synthesize(parse_spec("arrivals=constant,rate=4,duration=10,input=fixed:1,output=fixed:1"))
    assert len(trace) == 40
    assert np.allclose(np.diff(trace.arrival_s), 0.25)


def test_a_ramp_changes_the_rate_over_time():
    trace = synthesize(parse_spec("rate=2@0/20@100,duration=100,input=fixed:1,output=fixed:1,seed=1"))
    first, last = np.histogram(trace.arrival_s, bins=[0, 20, 80, 100])[0][[0, 2]]
    assert first == pytest.approx(20 * (2 + 5.6) / 2, rel=0.3)  # mean rate 3.8/s over [0, 20)
    assert last == pytest.approx(20 * (16.4 + 20) / 2, rel=0.15)  # mean rate 18.2/s over [80, 100)
    assert len(trace) == pytest.approx(1100, rel=0.1)


def test_requests_gives_exactly_that_many_even_on_a_schedule():
    trace = synthesize(parse_spec("rate=1@0/100@50,requests=777,input=fixed:1,output=fixed:1"))
    assert len(trace) == 777


def test_length_models():
    spec = parse_spec("rate=100,requests=50000,input=zipf:1.5:10:1000,output=lognormal:200:0.5,seed=2")
    trace = synthesize(spec)
    assert trace.input_tokens.min() >= 10 and trace.input_tokens.max() <= 1000
    assert np.count_nonzero(trace.input_tokens == 10) > np.count_nonzero(trace.input_tokens == 20) * 2
    assert np.median(trace.output_tokens) == pytest.approx(200, rel=0.05)


def test_same_seed_same_workload_other_seed_other_workload():
    text = "arrivals=gamma,cv=2,rate=5,duration=100,input=zipf:1.1:1:500,output=fixed:3"
    one, two = synthesize(parse_spec(text + ",seed=9")), synthesize(parse_spec(text + ",seed=9"))
    assert np.array_equal(one.arrival_s, two.arrival_s) and np.array_equal(one.input_tokens, two.input_tokens)
    assert not np.array_equal(one.arrival_s[:10], synthesize(parse_spec(text + ",seed=10")).arrival_s[:10])


def test_conditional_outputs_follow_the_fitted_relation():
    rng = np.random.default_rng(0)
    inputs = rng.integers(1, 4000, 20_000)
    fitted = _trace_from(np.arange(20_000.0), inputs, np.where(inputs < 100, 900, 50))
    outputs = conditional_outputs(np.array([30] * 100 + [2000] * 100), fitted, rng)
    assert set(outputs[:100]) == {900} and set(outputs[100:]) == {50}


def test_fit_reproduces_a_real_trace_and_scales_its_rate():
    real = read_trace("sample:azure-2023-conv")
    defaults = fitted_defaults(real)
    assert defaults["arrivals"] in ("gamma", "weibull")
    same = synthesize(parse_spec("seed=4", fit=real), fit=real)
    assert len(same) == pytest.approx(len(real), rel=0.05)
    assert same.span_s == pytest.approx(real.span_s, rel=0.01)
    assert _gap_cv(same) == pytest.approx(float(defaults["cv"]), rel=0.15)
    real_pairs = set(zip(real.input_tokens.tolist(), real.output_tokens.tolist()))
    assert set(zip(same.input_tokens.tolist(), same.output_tokens.tolist())) <= real_pairs
    scaled = synthesize(parse_spec("rate=40,duration=60", fit=real), fit=real)  # modeled scaling
    assert len(scaled) / 60 == pytest.approx(40, rel=0.2)


def test_written_csv_reads_back_with_format_sniffing(tmp_path):
    trace = synthesize(parse_spec("rate=3,requests=50,input=fixed:7,output=fixed:9"))
    path = tmp_path / "synthetic.csv"
    write_trace_csv(trace, path)
    again = read_trace(str(path))
    assert again.format == "csv" and len(again) == 50
    assert np.allclose(again.arrival_s, trace.arrival_s, atol=1e-6)
    assert set(again.input_tokens) == {7} and set(again.output_tokens) == {9}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rate=5", "exactly one of duration"),
        ("rate=5,duration=10,requests=3", "exactly one of duration"),
        ("duration=10", "needs rate"),
        ("rate=-1,duration=10", "rates must be > 0"),
        ("rate=fast,duration=10", "expected RATE"),
        ("rate=5,duration=10,arrivals=pareto", "arrivals"),
        ("rate=5,duration=10,cv=0", "cv must be > 0"),
        ("rate=5,duration=10,input=zipf:1.2", "zipf:S:MIN:MAX"),
        ("rate=5,duration=10,input=conditional", "expected"),
        ("rate=5,duration=10,output=empirical", "needs --fit"),
        ("rate=5,duration=10,burst=3", "KEY=VALUE"),
        ("rate=5,duration=ten", "could not convert"),
        ("rate=5,duration=10,shape=2", "arrivals=gamma or weibull"),
        ("arrivals=gamma,shape=2,cv=1,rate=5,duration=10", "instead of cv"),
        ("arrivals=gamma,shape=2,scale=1,rate=5,duration=10", "not both"),
        ("arrivals=gamma,scale=1,duration=10", "needs shape"),
        ("rate=5,duration=10,period=0", "period must be > 0"),
    ],
)
def test_bad_specs_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_spec(text)
    assert "\n" not in str(caught.value)


def test_rate_schedule_is_linear_between_points_and_flat_outside():
    schedule = RateSchedule.parse("10@0/30@10")
    assert schedule.rate_at(np.array([-1.0, 5.0, 10.0, 99.0])).tolist() == [10.0, 20.0, 30.0, 30.0]
    grid, cumulative = schedule.cumulative(10.0)
    assert cumulative[-1] == pytest.approx(200.0) and math.isclose(grid[-1], 10.0)


def test_the_printed_spec_parses_back_to_the_same_spec():
    real = read_trace("sample:azure-2023-conv")
    spec = parse_spec("rate=1@0/9@30,requests=40,input=zipf:1.2:4:64", fit=real)
    assert parse_spec(spec.text, fit=real) == spec


def test_rates_can_be_multiples_of_the_fitted_trace_rate():
    trace = read_trace("sample:azure-2023-conv")
    spec = parse_spec("rate=1x@0/10x@600,duration=600", fit=trace)
    base = len(trace) / trace.span_s
    assert spec.rate.points == ((0.0, pytest.approx(base)), (600.0, pytest.approx(10 * base)))
    with pytest.raises(ConfigError, match="needs --fit"):
        parse_spec("rate=2x")
