import numpy as np
import pytest

from replayer.analysis.noise import Sample, bootstrap_change, spread


def test_spread_is_the_mean_with_a_student_t_interval():
    result = spread([10.0, 12.0, 14.0])
    assert result.mean == pytest.approx(12.0)
    half = 4.303 * 2.0 / np.sqrt(3)  # t(0.975, 2 df) x sample sd / sqrt(n)
    assert (result.low, result.high) == pytest.approx((12.0 - half, 12.0 + half))
    assert (result.min, result.max, result.trials) == (10.0, 14.0, 3)
    assert spread([None, 5.0]).low == spread([5.0]).high == 5.0
    assert spread([None]) is None


def median(values, _duration):
    return float(np.median(values))


def test_the_bootstrap_interval_covers_no_change_for_one_distribution_and_excludes_it_for_a_shift():
    rng = np.random.default_rng(0)
    base = [Sample(rng.normal(100, 10, 300), 1.0)]
    same = [Sample(rng.normal(100, 10, 300), 1.0)]
    shifted = [Sample(rng.normal(120, 10, 300), 1.0)]
    low, high = bootstrap_change(base, same, median, relative=True)
    assert low < 0 < high
    low, high = bootstrap_change(base, shifted, median, relative=True)
    assert 0.15 < low < 0.2 < high < 0.25


def test_the_bootstrap_is_reproducible_and_needs_values():
    base = [Sample(np.arange(50.0), 1.0)]
    assert bootstrap_change(base, base, median, True) == bootstrap_change(base, base, median, True)
    assert bootstrap_change([Sample(np.empty(0), 1.0)], base, lambda v, d: None if not v.size else 1.0, True) is None
