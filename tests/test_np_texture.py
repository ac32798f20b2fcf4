"""The texture core: the gain from two spectra, the gain on an FFT grid, ring spectra."""

from __future__ import annotations

import numpy as np
import pytest

from xdownscale import np_texture


def test_ring_spectrum_of_white_noise_is_flat_at_its_variance(rng):
    k, p = np_texture.ring_spectrum(rng.normal(0, 2.0, (16, 64, 64)))
    assert k[0] == 0 and k[-1] == pytest.approx(0.5, abs=1 / 64)
    np.testing.assert_allclose(p[1:], 4.0, rtol=0.15)


def test_ring_spectrum_fills_nan_with_the_field_mean(rng):
    a = rng.normal(size=(4, 32, 32))
    a[:, :4, :4] = np.nan
    _, p = np_texture.ring_spectrum(a)
    assert np.isfinite(p).all()


def test_log_gain_is_half_the_log_ratio_ramped_in_from_the_coarse_nyquist():
    k = np.arange(65) / 128
    g = np_texture.log_gain(k, np.full(65, 9.0), np.ones(65), 4, smooth=1)
    assert (g[k <= 0.125] == 0).all()  # the coarse grid resolves these: untouched
    np.testing.assert_allclose(g[k >= 0.25], np.log(3.0))
    mid = (k > 0.125) & (k < 0.25)
    np.testing.assert_allclose(g[mid], np.log(3.0) * (k[mid] - 0.125) / 0.125)


def test_log_gain_is_clipped_smoothed_and_ignores_empty_rings():
    k = np.arange(33) / 64
    p_ref = np.ones(33)
    p_gen = np.full(33, 1e-9)  # the model has no power there: a huge gain, clipped
    g = np_texture.log_gain(k, p_ref, p_gen, 2)
    assert g.max() == pytest.approx(np_texture.LIMIT)
    p_gen = np.ones(33)
    p_gen[20] = 0.0  # an empty ring gives no gain, not inf
    g = np_texture.log_gain(k, p_ref, p_gen, 2, smooth=1)
    assert np.isfinite(g).all() and g[20] == 0
    spike = np.ones(33)
    spike[25] = np.exp(2 * 5 * 0.1)
    g = np_texture.log_gain(k, spike, np.ones(33), 4, smooth=5)  # spread over 5 rings
    np.testing.assert_allclose(g[23:28], 0.1)


def test_gain_grid_is_radial_and_held_beyond_the_last_wavenumber():
    g = np_texture.gain_grid((8, 8), (0.0, 0.25, 0.5), (0.0, np.log(2), np.log(4)))
    assert g.dtype == np.float32 and g.shape == (8, 8)
    assert g[0, 0] == 1.0 and g[0, 2] == pytest.approx(2.0) and g[0, 4] == pytest.approx(4.0)
    assert g[4, 4] == pytest.approx(4.0)  # the corner, |k| = 0.71, beyond the last ring
    np.testing.assert_array_equal(g, g.T)
