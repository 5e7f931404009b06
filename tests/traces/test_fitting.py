import math

import numpy as np
import pytest

from replayer.traces.fitting import digamma, fit_gamma, fit_weibull, trigamma, weibull_cv


@pytest.mark.parametrize(("x", "psi"), [(1.0, -0.5772156649015329), (0.5, -1.9635100260214235),
                                         (10.0, 2.251752589066721)])
def test_digamma_known_values(x, psi):
    assert digamma(x) == pytest.approx(psi, abs=1e-10)


def test_trigamma_known_values():
    assert trigamma(1.0) == pytest.approx(math.pi ** 2 / 6, abs=1e-10)
    assert trigamma(0.5) == pytest.approx(math.pi ** 2 / 2, abs=1e-10)


@pytest.mark.parametrize(("shape", "scale"), [(0.3, 2.0), (1.0, 0.5), (4.0, 10.0)])
def test_gamma_mle_recovers_shape_and_scale_within_3_percent(shape, scale):
    sample = np.random.default_rng(42).gamma(shape, scale, size=100_000)
    fit = fit_gamma(sample)
    assert fit.shape == pytest.approx(shape, rel=0.03)
    assert fit.scale == pytest.approx(scale, rel=0.03)
    assert fit.ks_statistic < 0.03  # the right family fits


def test_wrong_family_shows_in_the_ks_distance():
    bimodal = np.concatenate([np.full(5000, 0.01), np.full(5000, 10.0)]) * np.random.default_rng(1).uniform(
        0.9, 1.1, 10_000
    )
    assert fit_gamma(bimodal).ks_statistic > 0.1


def test_degenerate_inputs():
    assert fit_gamma(np.array([0.0, 0.0, 1.0])) is None
    assert fit_gamma(np.full(10, 2.0)).shape == math.inf


@pytest.mark.parametrize(("shape", "scale"), [(0.5, 3.0), (1.5, 0.2)])
def test_weibull_mle_recovers_shape_and_scale_within_3_percent(shape, scale):
    sample = scale * np.random.default_rng(7).weibull(shape, size=100_000)
    fit = fit_weibull(sample)
    assert fit.shape == pytest.approx(shape, rel=0.03)
    assert fit.scale == pytest.approx(scale, rel=0.03)
    assert fit.ks_statistic < 0.03


def test_weibull_cv_of_shape_one_is_exponential():
    assert weibull_cv(1.0) == pytest.approx(1.0)
