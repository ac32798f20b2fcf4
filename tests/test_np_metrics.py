"""Numpy cores of the metrics against scipy, brute force and analytic values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xdownscale import np_metrics

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


# ----------------------------------------------------------------------------- wasserstein


@pytest.mark.parametrize(("n", "m"), [(50, 50), (37, 91), (1, 5), (200, 3)])
def test_wasserstein_matches_scipy(rng, n, m):
    a = rng.gamma(2.0, size=(4, n))
    b = rng.normal(1.0, 2.0, size=(4, m))
    got = np_metrics.wasserstein(a, b)
    want = [scipy.stats.wasserstein_distance(a[i], b[i]) for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_wasserstein_nan_propagates(rng):
    a = rng.normal(size=(2, 10))
    a[1, 3] = np.nan
    out = np_metrics.wasserstein(a, rng.normal(size=(2, 7)))
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_wasserstein_empty_raises():
    with pytest.raises(ValueError, match="at least one sample"):
        np_metrics.wasserstein(np.zeros((2, 0)), np.zeros((2, 3)))


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(1, 30), elements=finite), finite)
def test_wasserstein_of_a_shift_is_the_shift(a, c):
    np.testing.assert_allclose(np_metrics.wasserstein(a + c, a), abs(c), atol=1e-9 * (1 + abs(c)))


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 20), elements=finite),
    arrays(np.float64, st.integers(1, 20), elements=finite),
)
def test_wasserstein_symmetric_and_zero_on_self(a, b):
    assert np_metrics.wasserstein(a, a) == 0.0
    np.testing.assert_allclose(
        np_metrics.wasserstein(a, b), np_metrics.wasserstein(b, a), rtol=1e-12, atol=1e-9
    )


# ----------------------------------------------------------------------------- KDE / KLD


def test_scott_bandwidth_and_kde_match_gaussian_kde(rng):
    x = rng.normal(size=(3, 120)) * np.array([[1.0], [0.1], [5.0]])
    grid = np.linspace(-8, 8, 33)[None, :] * np.array([[1.0], [0.1], [5.0]])
    got = np_metrics.kde_scott(x, grid, max_elements=100)  # forces blocks of one point
    for i in range(3):
        kde = scipy.stats.gaussian_kde(x[i], bw_method="scott")
        np.testing.assert_allclose(np_metrics.scott_bandwidth(x[i]), np.sqrt(kde.covariance[0, 0]))
        np.testing.assert_allclose(got[i], kde(grid[i]), rtol=1e-10, atol=1e-300)


def _kld_scipy(gen: np.ndarray, ref: np.ndarray, n_grid: int = 256) -> float:
    """Independent per-point reference with scipy's gaussian_kde and the same conventions."""
    kg, kr = scipy.stats.gaussian_kde(gen), scipy.stats.gaussian_kde(ref)
    pad = 3 * max(np.sqrt(kg.covariance[0, 0]), np.sqrt(kr.covariance[0, 0]))
    t = np.linspace(min(gen.min(), ref.min()) - pad, max(gen.max(), ref.max()) + pad, n_grid)
    p, q = kr(t), kg(t)
    floor = 1e-10 * p.max()
    use = p > floor
    f = np.where(use, p * np.log(np.where(use, p, 1.0) / np.maximum(q, floor)), 0.0)
    return float(np.sum((f[1:] + f[:-1]) * np.diff(t)) / 2)


def test_kld_matches_scipy_kde(rng):
    gen = rng.normal(0.3, 1.2, size=(5, 300))
    ref = rng.standard_t(5, size=(5, 400))
    got = np_metrics.kld(gen, ref, max_elements=5000)
    want = [_kld_scipy(gen[i], ref[i]) for i in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_kld_gaussian_shift_is_close_to_analytic(rng):
    # KL(N(0, 1) || N(1, 1)) = 0.5; KDE smoothing shrinks it by the factor 1/(1 + h^2) ~ 0.98
    ref = rng.normal(size=(1, 4000))
    gen = rng.normal(1.0, 1.0, size=(1, 4000))
    assert abs(np_metrics.kld(gen, ref)[0] - 0.5) < 0.05


def test_kld_identical_is_zero_and_degenerate_points(rng):
    x = rng.normal(size=(3, 50))
    x[1] = 2.0  # constant, equal on both sides: 0
    assert np.all(np_metrics.kld(x, x) == 0.0)
    y = x.copy()
    y[1] = 3.0  # different constants: undefined
    y[2, 0] = np.nan
    out = np_metrics.kld(y, x)
    assert np.isnan(out[1]) and np.isnan(out[2]) and out[0] == 0.0


def test_kld_broadcasts_leading_dims(rng):
    gen = rng.normal(size=(2, 3, 40))
    ref = rng.normal(size=(2, 3, 50))
    out = np_metrics.kld(gen, ref)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[1, 2], np_metrics.kld(gen[1, 2], ref[1, 2]))


def test_kld_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        np_metrics.kld(np.zeros((2, 1)), np.zeros((2, 4)))


# ----------------------------------------------------------------------------- CRPS


def _crps_brute(x: np.ndarray, y: float, fair: bool) -> float:
    m = x.size
    pairs = np.abs(x[:, None] - x[None, :]).sum()
    return np.abs(x - y).mean() - pairs / (2 * m * (m - 1) if fair else 2 * m * m)


@pytest.mark.parametrize("fair", [False, True])
def test_crps_matches_brute_force(rng, fair):
    ens = rng.normal(size=(6, 9))
    obs = rng.normal(size=6)
    got = np_metrics.crps_ensemble(ens, obs, fair=fair)
    np.testing.assert_allclose(got, [_crps_brute(ens[i], obs[i], fair) for i in range(6)])


def _crps_gaussian(mu: float, sigma: float, y: float) -> float:
    z = (y - mu) / sigma
    return sigma * (
        z * (2 * scipy.stats.norm.cdf(z) - 1) + 2 * scipy.stats.norm.pdf(z) - 1 / np.sqrt(np.pi)
    )


def test_crps_large_ensemble_is_the_gaussian_crps(rng):
    ens = rng.normal(0.5, 2.0, size=20000)
    want = _crps_gaussian(0.5, 2.0, 1.7)
    assert abs(np_metrics.crps_ensemble(ens, np.float64(1.7)) - want) < 0.02


def test_fair_crps_is_unbiased_and_standard_is_not(rng):
    # E[standard] = CRPS + sigma / (m sqrt(pi)); E[fair] = CRPS  (m = 4 members)
    mu, sigma, y, m, reps = 0.0, 1.0, 0.4, 4, 40000
    ens = rng.normal(mu, sigma, size=(reps, m))
    obs = np.full(reps, y)
    exact = _crps_gaussian(mu, sigma, y)
    fair = np_metrics.crps_ensemble(ens, obs, fair=True)
    std = np_metrics.crps_ensemble(ens, obs, fair=False)
    se = fair.std() / np.sqrt(reps)
    assert abs(fair.mean() - exact) < 4 * se
    assert abs(std.mean() - (exact + sigma / (m * np.sqrt(np.pi)))) < 4 * se


def test_crps_perfect_ensemble_is_zero_and_errors():
    assert np_metrics.crps_ensemble(np.full((1, 5), 3.0), np.array([3.0]))[0] == 0.0
    with pytest.raises(ValueError, match="at least 2 members"):
        np_metrics.crps_ensemble(np.zeros((3, 1)), np.zeros(3), fair=True)


# ----------------------------------------------------------------------------- MELR


def test_melr_of_a_scaled_spectrum_is_the_log_factor(rng):
    e_ref = rng.uniform(0.1, 10, size=(2, 20))
    for weighted in (False, True):
        np.testing.assert_allclose(
            np_metrics.melr(3.0 * e_ref, e_ref, weighted=weighted), np.log(3.0)
        )
        assert np.all(np_metrics.melr(e_ref, e_ref, weighted=weighted) == 0.0)


def test_melr_weights_follow_the_reference_energy():
    e_ref = np.array([9.0, 1.0])
    e_gen = np.array([9.0, np.e])  # log ratio 0 at k1, 1 at k2
    assert np_metrics.melr(e_gen, e_ref) == pytest.approx(0.5)
    assert np_metrics.melr(e_gen, e_ref, weighted=True) == pytest.approx(0.1)


# ----------------------------------------------------------------------------- covariance


@pytest.mark.parametrize(("n", "m", "d"), [(200, 150, 6), (5, 7, 40)])  # direct / Gram path
@pytest.mark.parametrize("relative", [True, False])
def test_cov_rmse_matches_numpy_cov(rng, n, m, d, relative):
    g = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    r = rng.normal(size=(m, d))
    cg, cr = np.cov(g, rowvar=False), np.cov(r, rowvar=False)
    diff = np.linalg.norm(cg - cr)
    want = diff / np.linalg.norm(cr) if relative else diff / d
    np.testing.assert_allclose(np_metrics.cov_rmse(g, r, relative=relative), want, rtol=1e-9)


def test_cov_rmse_identical_and_scaled(rng):
    r = rng.normal(size=(30, 8))
    assert np_metrics.cov_rmse(r, r) == 0.0
    np.testing.assert_allclose(np_metrics.cov_rmse(2.0 * r, r), 3.0)  # C_gen = 4 C_ref
    wide = rng.normal(size=(4, 50))  # Gram path: identical up to rounding
    assert np_metrics.cov_rmse(wide, wide) < 1e-6


def test_cov_rmse_errors(rng):
    with pytest.raises(ValueError, match="features"):
        np_metrics.cov_rmse(rng.normal(size=(5, 3)), rng.normal(size=(5, 4)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        np_metrics.cov_rmse(rng.normal(size=(1, 3)), rng.normal(size=(5, 3)))


# ----------------------------------------------------------------------------- MMD


def test_mmd_matches_brute_force_and_median_heuristic(rng):
    g = rng.normal(size=(12, 3))
    r = rng.normal(0.5, 1.0, size=(9, 3))
    z = np.concatenate([g, r])
    sigma = np.median(scipy.spatial.distance.pdist(z))
    # the core expands |a - b|^2 = |a|^2 + |b|^2 - 2 a.b (fast, loses a few digits)
    assert np_metrics.median_bandwidth(g, r) == pytest.approx(sigma, rel=1e-5)

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    kgg = np.mean([k(a, b) for a in g for b in g])
    krr = np.mean([k(a, b) for a in r for b in r])
    kgr = np.mean([k(a, b) for a in g for b in r])
    got = np_metrics.mmd(g, r, bandwidth=sigma, squared=True)
    assert got == pytest.approx(kgg + krr - 2 * kgr, rel=1e-10)
    assert np_metrics.mmd(g, r, bandwidth=sigma) == pytest.approx(np.sqrt(got), rel=1e-12)


def test_mmd_gaussians_match_closed_form(rng):
    # x ~ N(mu1, s^2 I_d), y ~ N(mu2, s^2 I_d), RBF(sigma): population MMD^2 =
    # 2 A (1 - exp(-|dmu|^2 / (2 (sigma^2 + 2 s^2)))), A = (sigma^2 / (sigma^2 + 2 s^2))^(d/2);
    # the V-statistic adds (1 - A)(1/n + 1/m) from the diagonal.
    d, n, s, sigma, reps = 2, 800, 1.0, 1.5, 8
    mu = np.array([0.8, 0.0])
    got = [
        np_metrics.mmd(
            rng.normal(size=(n, d)) * s + mu,
            rng.normal(size=(n, d)) * s,
            bandwidth=sigma,
            squared=True,
        )
        for _ in range(reps)
    ]
    a = (sigma**2 / (sigma**2 + 2 * s**2)) ** (d / 2)
    pop = 2 * a * (1 - np.exp(-(mu @ mu) / (2 * (sigma**2 + 2 * s**2))))
    want = pop + (1 - a) * 2 / n
    se = np.std(got, ddof=1) / np.sqrt(reps)
    assert abs(np.mean(got) - want) < 4 * se


def test_mmd_identical_is_zero_and_errors(rng):
    x = rng.normal(size=(20, 5))
    assert np_metrics.mmd(x, x) == 0.0
    bad = x.copy()
    bad[0, 0] = np.nan
    assert np.isnan(np_metrics.mmd(bad, x))
    with pytest.raises(ValueError, match="same features"):
        np_metrics.mmd(x, x[:, :2])
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        np_metrics.mmd(np.zeros((3, 2)), np.zeros((3, 2)))
