"""xarray wrappers of the metrics: against the numpy cores, scipy and analytic values;
eager and dask-chunked input, laziness, dims and every error path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from xdownscale import metrics, np_metrics
from xdownscale.datasets import power_law_field
from xdownscale.grid import coarsen

from .conftest import raise_if_dask_computes


def _field(rng, shape, dims=("time", "y", "x"), loc=0.0, scale=1.0):
    return xr.DataArray(rng.normal(loc, scale, size=shape), dims=dims, attrs={"units": "m"})


def _maybe_chunk(da, chunked, **chunks):
    return da.chunk(chunks or {da.dims[0]: 5}) if chunked else da


both = pytest.mark.parametrize("chunked", [False, True], ids=["eager", "dask"])


# ----------------------------------------------------------------------------- per point


@both
def test_wasserstein_per_point_matches_scipy(rng, chunked):
    gen = _field(rng, (40, 3, 4), loc=0.3)
    ref = _field(rng, (25, 3, 4), scale=2.0)
    with raise_if_dask_computes():
        out = metrics.wasserstein(
            _maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked), aggregate=None
        )
    assert out.dims == ("y", "x") and out.attrs["units"] == "m"
    want = [
        [scipy.stats.wasserstein_distance(gen[:, i, j], ref[:, i, j]) for j in range(4)]
        for i in range(3)
    ]
    np.testing.assert_allclose(out.values, want, rtol=1e-12)
    mean = metrics.wasserstein(_maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked))
    assert float(mean) == pytest.approx(np.mean(want))
    assert float(metrics.wasserstein(gen, ref, aggregate="sum")) == pytest.approx(np.sum(want))


@both
def test_kld_matches_core_and_scipy_kde(rng, chunked):
    gen = _field(rng, (60, 2, 3), loc=0.5)
    ref = _field(rng, (80, 2, 3))
    with raise_if_dask_computes():
        out = metrics.kld(
            _maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked, y=1), aggregate=None
        )
    core = np_metrics.kld(np.moveaxis(gen.values, 0, -1), np.moveaxis(ref.values, 0, -1))
    np.testing.assert_allclose(out.values, core)
    # scipy: same grid convention, one point
    kg = scipy.stats.gaussian_kde(gen.values[:, 1, 2])
    kr = scipy.stats.gaussian_kde(ref.values[:, 1, 2])
    pad = 3 * max(np.sqrt(kg.covariance[0, 0]), np.sqrt(kr.covariance[0, 0]))
    pts = np.concatenate([gen.values[:, 1, 2], ref.values[:, 1, 2]])
    t = np.linspace(pts.min() - pad, pts.max() + pad, 256)
    p, q = kr(t), kg(t)
    f = p * np.log(p / np.maximum(q, 1e-10 * p.max()))
    f[p <= 1e-10 * p.max()] = 0
    assert float(out[1, 2]) == pytest.approx(np.sum((f[1:] + f[:-1]) * np.diff(t)) / 2, rel=1e-9)
    assert float(metrics.kld(gen, ref)) == pytest.approx(core.sum())
    assert float(metrics.kld(gen, ref, aggregate="mean")) == pytest.approx(core.mean())


def test_identical_inputs_give_zero(rng):
    ref = power_law_field((30, 16, 16), slope=-3.0, seed=3).rename(sample="time")
    ens = ref.expand_dims(realization=1)  # a one-member "ensemble" equal to the reference
    assert float(metrics.melr(ref, ref)) == 0.0
    assert float(metrics.melr(ref, ref, weighted=True)) == 0.0
    assert float(metrics.kld(ref, ref)) == 0.0
    assert float(metrics.wasserstein(ref, ref)) == 0.0
    assert float(metrics.cov_rmse(ref, ref)) == pytest.approx(0.0, abs=1e-7)
    assert float(metrics.mmd(ref, ref)) == 0.0
    assert float(abs(metrics.mean_error(ref, ref)).max()) == 0.0
    assert float(abs(metrics.quantile_error(ref, ref, [0.5, 0.99])).max()) == 0.0
    assert float(metrics.crps(ens, ref).max()) == 0.0
    assert float(metrics.constraint_rmse(ref, coarsen(ref, 4))) == 0.0
    assert float(metrics.pooled_correlation(ref, coarsen(ref, 4))) == pytest.approx(1.0)


def test_nan_points_are_nan_and_skipped_by_the_reduction(rng):
    gen = _field(rng, (30, 2, 2), loc=1.0)
    ref = _field(rng, (30, 2, 2))
    ref[3, 0, 0] = np.nan
    for f in (metrics.kld, metrics.wasserstein):
        per_point = f(gen, ref, aggregate=None)
        assert np.isnan(per_point[0, 0]) and np.isfinite(per_point[1, 1])
        assert float(f(gen, ref, aggregate="mean")) == pytest.approx(float(per_point.mean()))
    assert np.isnan(float(metrics.wasserstein(gen * np.nan, ref, aggregate="sum")))
    assert np.isnan(float(metrics.cov_rmse(gen, ref)))
    assert np.isnan(float(metrics.mmd(gen, ref)))


def test_aggregate_option_is_checked(rng):
    gen, ref = _field(rng, (5, 2, 2)), _field(rng, (5, 2, 2))
    with pytest.raises(ValueError, match="aggregate='max' is not supported"):
        metrics.wasserstein(gen, ref, aggregate="max")
    with pytest.raises(ValueError, match="n_grid must be an integer >= 16"):
        metrics.kld(gen, ref, n_grid=4)


# ----------------------------------------------------------------------------- dims


def test_extra_dims_of_generated_are_pooled_and_shared_dims_kept(rng):
    ref = _field(rng, (20, 2, 4, 4), dims=("time", "level", "y", "x"))
    gen = _field(rng, (20, 4, 2, 4, 4), dims=("time", "realization", "level", "y", "x"))
    out = metrics.wasserstein(gen, ref, aggregate=None)
    assert out.dims == ("level", "y", "x")
    pooled = gen.values.transpose(2, 3, 4, 0, 1).reshape(2, 4, 4, 80)
    want = np_metrics.wasserstein(pooled, ref.values.transpose(1, 2, 3, 0))
    np.testing.assert_allclose(out.values, want)
    assert metrics.melr(gen, ref).dims == ("level",)
    assert metrics.cov_rmse(gen, ref).dims == ("level",)


def test_sample_dim_fallback_and_override(rng):
    ref = _field(rng, (20, 3, 3), dims=("sample", "y", "x"))  # no time dim: the only other dim
    gen = _field(rng, (10, 3, 3), dims=("sample", "y", "x"))
    assert metrics.wasserstein(gen, ref).dims == ()
    two = _field(rng, (4, 5, 3, 3), dims=("a", "b", "y", "x"))
    with pytest.raises(ValueError, match="could not tell the sample dim"):
        metrics.wasserstein(two, two)
    out = metrics.wasserstein(two, two, dim=["a", "b"], aggregate=None)
    assert out.dims == ("y", "x")
    assert metrics.wasserstein(two, two, dim="a").dims == ("b",)
    with pytest.raises(ValueError, match="not non-spatial dims of reference"):
        metrics.wasserstein(two, two, dim="y")


def test_input_errors(rng):
    ref = _field(rng, (5, 4, 4))
    with pytest.raises(TypeError, match=r"must be an xarray\.DataArray"):
        metrics.kld(ref.values, ref)
    with pytest.raises(TypeError, match="must hold real numbers"):
        metrics.kld(ref.astype(str), ref)
    with pytest.raises(ValueError, match="has 2 cells in generated but 4 in reference"):
        metrics.wasserstein(ref.isel(x=slice(0, 2)), ref)
    with pytest.raises(ValueError, match="generated has no spatial dim 'x'"):
        metrics.wasserstein(ref.rename(x="lon2"), ref)
    with pytest.raises(ValueError, match="has none of the sample dims"):
        metrics.wasserstein(ref.isel(time=0), ref)


# ----------------------------------------------------------------------------- spectra


@both
def test_melr_of_scaled_fields_is_the_log_factor(rng, chunked):
    ref = power_law_field((12, 32, 32), slope=-3.0, seed=1)
    gen = 2.0 * ref
    with raise_if_dask_computes():
        out_u = metrics.melr(_maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked))
        out_w = metrics.melr(_maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked), weighted=True)
    assert float(out_u) == pytest.approx(np.log(4.0))
    assert float(out_w) == pytest.approx(np.log(4.0))


def test_melr_matches_a_direct_computation(rng):
    ref = power_law_field((6, 16, 16), slope=-3.0, seed=1)
    gen = power_law_field((9, 16, 16), slope=-2.0, seed=2)

    def energy(a):  # ring sum of |FFT|^2/(N^2), rings r = round(|k| N) in 1..7, sample mean
        p = np.abs(np.fft.fft2(a)) ** 2 / 256
        k = np.sqrt(np.fft.fftfreq(16)[:, None] ** 2 + np.fft.fftfreq(16)[None, :] ** 2) * 16
        r = np.rint(k).astype(int)
        return np.array([p[:, r == i].sum(axis=1).mean() for i in range(1, 8)])

    eg, er = energy(gen.values), energy(ref.values)
    lr = np.abs(np.log(eg / er))
    assert float(metrics.melr(gen, ref)) == pytest.approx(lr.mean(), rel=1e-10)
    assert float(metrics.melr(gen, ref, weighted=True)) == pytest.approx(
        np.sum(er / er.sum() * lr), rel=1e-10
    )


def test_melr_nan_policy(rng):
    ref = _field(rng, (4, 8, 8))
    bad = ref.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.melr(bad, ref)
    assert np.isfinite(float(metrics.melr(bad, ref, nan_policy="fill")))


# ----------------------------------------------------------------------------- fields


@both
def test_cov_rmse_matches_numpy(rng, chunked):
    ref = _field(rng, (50, 3, 3))
    gen = _field(rng, (40, 3, 3), scale=1.5)
    with raise_if_dask_computes():
        out = metrics.cov_rmse(_maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked))
        raw = metrics.cov_rmse(
            _maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked), normalize="none"
        )
    cg = np.cov(gen.values.reshape(40, 9), rowvar=False)
    cr = np.cov(ref.values.reshape(50, 9), rowvar=False)
    assert float(out) == pytest.approx(np.linalg.norm(cg - cr) / np.linalg.norm(cr))
    assert float(raw) == pytest.approx(np.sqrt(np.mean((cg - cr) ** 2)))
    assert raw.attrs["units"] == "(m)^2" and out.attrs["units"] == "1"
    with pytest.raises(ValueError, match="normalize='frobenius' is not supported"):
        metrics.cov_rmse(gen, ref, normalize="frobenius")


@both
def test_mmd_matches_core(rng, chunked):
    ref = _field(rng, (30, 3, 3))
    gen = _field(rng, (20, 3, 3), loc=0.5)
    with raise_if_dask_computes():
        out = metrics.mmd(_maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked), bandwidth=2.0)
    want = np_metrics.mmd(gen.values.reshape(20, 9), ref.values.reshape(30, 9), bandwidth=2.0)
    assert float(out) == pytest.approx(want)
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        metrics.mmd(gen, ref, bandwidth=-1.0)


# ----------------------------------------------------------------------------- per cell


@both
def test_mean_and_quantile_errors_match_numpy(rng, chunked):
    ref = _field(rng, (50, 2, 3))
    gen = _field(rng, (30, 4, 2, 3), dims=("time", "realization", "y", "x"), loc=0.5)
    with raise_if_dask_computes():
        me = metrics.mean_error(_maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked))
        qe = metrics.quantile_error(
            _maybe_chunk(gen, chunked), _maybe_chunk(ref, chunked), [0.95, 0.99]
        )
    np.testing.assert_allclose(me.values, gen.values.mean((0, 1)) - ref.values.mean(0))
    want = np.quantile(gen.values.reshape(120, 2, 3), [0.95, 0.99], axis=0) - np.quantile(
        ref.values, [0.95, 0.99], axis=0
    )
    np.testing.assert_allclose(qe.transpose("quantile", "y", "x").values, want)
    with pytest.raises(ValueError, match="q must be in"):
        metrics.quantile_error(gen, ref, 95)


def test_per_cell_errors_need_matching_coordinates(rng):
    ref = _field(rng, (5, 2, 2)).assign_coords(x=[0.0, 1.0], time=np.arange(5))
    gen = ref.assign_coords(x=[0.5, 1.5])
    with pytest.raises(ValueError, match="coordinate 'x' differs between generated and ref"):
        metrics.mean_error(gen, ref)
    close = ref.assign_coords(x=[1e-12, 1.0 + 1e-12])  # round-off (e.g. after coarsen): fine
    assert float(abs(metrics.mean_error(close, ref)).max()) == 0.0
    with pytest.raises(ValueError, match="different coordinates on a shared dim"):
        metrics.mean_error(ref.expand_dims(level=[1, 2]), ref.expand_dims(level=[3, 4]))


# ----------------------------------------------------------------------------- CRPS


@both
@pytest.mark.parametrize("fair", [False, True])
def test_crps_matches_core(rng, chunked, fair):
    ens = _field(rng, (6, 7, 2, 2), dims=("time", "realization", "y", "x"))
    obs = _field(rng, (6, 2, 2))
    with raise_if_dask_computes():
        out = metrics.crps(
            _maybe_chunk(ens, chunked, realization=3), _maybe_chunk(obs, chunked), fair=fair
        )
    want = np_metrics.crps_ensemble(np.moveaxis(ens.values, 1, -1), obs.values, fair=fair)
    np.testing.assert_allclose(out.transpose("time", "y", "x").values, want)


def test_crps_of_a_gaussian_ensemble_is_the_analytic_crps(rng):
    ens = xr.DataArray(rng.normal(1.0, 2.0, size=(4000, 3)), dims=("realization", "time"))
    obs = xr.DataArray([1.0, -1.0, 4.0], dims="time")
    z = (obs.values - 1.0) / 2.0
    want = 2.0 * (
        z * (2 * scipy.stats.norm.cdf(z) - 1) + 2 * scipy.stats.norm.pdf(z) - 1 / np.sqrt(np.pi)
    )
    np.testing.assert_allclose(metrics.crps(ens, obs, fair=True).values, want, atol=0.05)


def test_crps_errors(rng):
    ens = _field(rng, (3, 4), dims=("time", "member"))
    with pytest.raises(ValueError, match="no ensemble dim 'realization'"):
        metrics.crps(ens, ens.isel(member=0))
    with pytest.raises(ValueError, match="reference has the ensemble dim 'member'"):
        metrics.crps(ens, ens, dim="member")
    assert metrics.crps(ens, ens.isel(member=0, drop=True), dim="member").dims == ("time",)


# ----------------------------------------------------------------------------- conditioning


@both
def test_constraint_rmse_known_values(rng, chunked):
    fine = _field(rng, (3, 2, 8, 8), dims=("time", "realization", "y", "x"))
    cond = coarsen(fine.isel(realization=0, drop=True), 4)  # member 0 matches exactly
    with raise_if_dask_computes():
        out = metrics.constraint_rmse(
            _maybe_chunk(fine, chunked), _maybe_chunk(cond, chunked), dim=["time"]
        )
    c1 = coarsen(fine.isel(realization=1, drop=True), 4).values
    rel = np.sqrt(((c1 - cond.values) ** 2).sum((1, 2)) / (cond.values**2).sum((1, 2)))
    np.testing.assert_allclose(out.values, [0.0, rel.mean()], atol=1e-12)
    scaled = metrics.constraint_rmse(fine.isel(realization=0), 2.0 * cond)
    assert float(scaled) == pytest.approx(0.5)  # ||c - 2c|| / ||2c||


def test_constraint_rmse_ignores_coarse_coordinates_and_checks_factor(rng):
    fine = _field(rng, (2, 8, 8)).assign_coords(y=np.arange(8.0), x=np.arange(8.0))
    cond = coarsen(fine, 2).assign_coords(y=np.arange(4) * 10.0, x=np.arange(4) * 10.0)
    assert float(metrics.constraint_rmse(fine, cond)) == 0.0
    with pytest.raises(ValueError, match="not an integer multiple"):
        metrics.constraint_rmse(fine.isel(x=slice(0, 7)), cond)
    with pytest.raises(ValueError, match="pass the right factor"):
        metrics.constraint_rmse(fine, cond, factor=4)


@both
def test_pooled_correlation_matches_numpy(rng, chunked):
    fine = _field(rng, (4, 8, 8))
    coarse = coarsen(fine, 4) + _field(rng, (4, 2, 2), scale=0.3)
    with raise_if_dask_computes():
        out = metrics.pooled_correlation(_maybe_chunk(fine, chunked), _maybe_chunk(coarse, chunked))
    want = np.corrcoef(coarsen(fine, 4).values.ravel(), coarse.values.ravel())[0, 1]
    assert float(out) == pytest.approx(want)
    per_time = metrics.pooled_correlation(fine, coarse, dim=["y", "x"])
    assert per_time.dims == ("time",)


def test_variability_analytic_and_errors(rng):
    s = xr.DataArray(
        rng.normal(0, 3.0, size=(20, 500, 2, 2)), dims=("time", "realization", "y", "x")
    )
    assert float(metrics.variability(s)) == pytest.approx(3.0, rel=0.02)
    assert float(metrics.variability(s.chunk(time=5))) == pytest.approx(
        float(metrics.variability(s))
    )
    det = xr.concat([s.isel(realization=[0])] * 3, "realization")
    assert float(metrics.variability(det)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="no sample dim 'member'"):
        metrics.variability(s, dim="member")
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.variability(s.isel(realization=[0]))
