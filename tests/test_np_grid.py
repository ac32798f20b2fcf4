"""Cores of the grid operations: block mean, interpolation weights, low-pass."""

import numpy as np
import pytest

from xdownscale import np_grid


def test_coarsen_is_block_mean(rng):
    a = rng.normal(size=(2, 8, 12))
    out = np_grid.coarsen(a, (2, 3))
    assert out.shape == (2, 4, 4)
    np.testing.assert_allclose(out[1, 2, 3], a[1, 4:6, 9:12].mean())


def test_coarsen_nan_aware_without_warnings(rng):
    a = rng.normal(size=(4, 4))
    a[0, 0] = np.nan
    a[2:, 2:] = np.nan
    with np.errstate(all="raise"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = np_grid.coarsen(a, (2, 2))
    np.testing.assert_allclose(out[0, 0], np.nanmean(a[:2, :2]))
    assert np.isnan(out[1, 1])


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic"])
@pytest.mark.parametrize("periodic", [False, True])
def test_interp_weights_partition_of_unity(method, periodic):
    w = np_grid.interp_matrix(7, 4, method, periodic)
    assert w.shape == (28, 7)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_bilinear_reproduces_linear_field_inside():
    x = np.arange(10.0)
    fine = np_grid.upsample(np.tile(x, (3, 1)), (1, 4), "bilinear")
    pos = (np.arange(40) + 0.5) / 4 - 0.5
    inside = (pos >= 0) & (pos <= 9)
    np.testing.assert_allclose(fine[0, inside], pos[inside])


def test_bicubic_reproduces_quadratic_inside():
    x = np.arange(12.0)
    fine = np_grid.upsample(np.tile(x**2, (2, 1)), (1, 2), "bicubic")
    pos = (np.arange(24) + 0.5) / 2 - 0.5
    inside = (pos >= 1) & (pos <= 10)
    np.testing.assert_allclose(fine[0, inside], pos[inside] ** 2, atol=1e-9)


def test_periodic_wraps():
    a = np.array([[0.0, 0.0, 0.0, 4.0]])
    w = np_grid.upsample(a, (1, 2), "bilinear", periodic=(False, True))
    # first fine cell sits half-way to the previous coarse cell, which wraps to the last one
    assert w[0, 0] == pytest.approx(1.0)
    c = np_grid.upsample(a, (1, 2), "bilinear", periodic=(False, False))
    assert c[0, 0] == 0.0


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_upsample_nan_mask_is_parent_mask(rng, method):
    a = rng.normal(size=(6, 6))
    a[2, 3] = np.nan
    out = np_grid.upsample(a, (3, 3), method)
    parent = np.repeat(np.repeat(np.isnan(a), 3, 0), 3, 1)
    np.testing.assert_array_equal(np.isnan(out), parent)
    if method == "bilinear":
        # a convex combination of valid cells only: bounded by the valid data range
        assert np.nanmin(a) - 1e-12 <= np.nanmin(out) and np.nanmax(out) <= np.nanmax(a) + 1e-12


def test_conservative_upsample_round_trip(rng):
    a = rng.normal(size=(3, 5, 7))
    for method in ("bilinear", "bicubic"):
        out = np_grid.upsample(a, (4, 2), method, conservative=True)
        np.testing.assert_allclose(np_grid.coarsen(out, (4, 2)), a, atol=1e-12)


def test_lowpass_keeps_large_scales_exactly_periodic():
    n = 64
    x = np.arange(n)
    big = np.sin(2 * np.pi * 3 * x / n)
    small = np.sin(2 * np.pi * 20 * x / n)
    field = np.tile(big + small, (n, 1))
    out = np_grid.lowpass(field, 0.1, periodic=(True, True))
    np.testing.assert_allclose(out, np.tile(big, (n, 1)), atol=1e-10)


def test_lowpass_mirror_has_no_edge_ringing_for_smooth_ramp():
    ramp = np.tile(np.linspace(0, 1, 50), (50, 1))
    out = np_grid.lowpass(ramp, 0.2)
    assert np.abs(out - ramp).max() < 0.02


def test_lowpass_restores_nan(rng):
    a = rng.normal(size=(16, 16))
    a[3:5, 3:5] = np.nan
    out = np_grid.lowpass(a, 0.25, order=4)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(a))
