"""The texture core: ring spectra, the reference's spectrum, the per-field shape gain."""

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


def test_shape_gain_anchors_the_references_shape_at_the_fields_own_power():
    k = np.arange(65) / 128
    power = np.full(65, 9.0)  # the field: flat, 9 everywhere
    ln_ref = np.log(100.0 / (1 + 128 * k))  # the reference: red, at any level
    g = np_texture.shape_gain(k, power, k, ln_ref, 4)  # anchor 0.75 * 0.125 -> ring 12/128
    assert (g[:13] == 0).all()  # the coarse grid resolves these: untouched
    # above: ln P = ln 9 + ln R(k) - ln R(k_a), whatever the reference's level
    want = 0.5 * (np.log(13.0) - np.log1p(128 * k[13:]))
    np.testing.assert_allclose(g[13:], want)
    np.testing.assert_allclose(np_texture.shape_gain(k, 7 * power, k, ln_ref - 5, 4), g)


def test_shape_gain_is_clipped_and_leaves_empty_rings_and_dry_fields_alone():
    k = np.arange(33) / 64
    power = np.ones(33)
    power[20:] = 1e-9  # the field has no power there: a huge gain, clipped
    g = np_texture.shape_gain(k, power, k, np.zeros(33), 2)
    assert g.max() == pytest.approx(np_texture.LIMIT)
    power[25] = 0.0  # an empty ring gives no gain, not inf
    g = np_texture.shape_gain(k, power, k, np.zeros(33), 2)
    assert np.isfinite(g).all() and g[25] == 0
    assert (np_texture.shape_gain(k, np.zeros(33), k, np.zeros(33), 2) == 0).all()  # dry


def test_reference_spectrum_is_the_mirror_padded_ring_spectrum(rng):
    f = rng.normal(size=(4, 16, 24))
    k, lnp = np_texture.reference_spectrum(f)
    index, kk, count = np_texture.rings((32, 48))
    z = f - f.mean(axis=(-2, -1), keepdims=True)
    z = np.concatenate([z, z[:, ::-1]], axis=1)
    z = np.concatenate([z, z[:, :, ::-1]], axis=2)
    p = np.bincount(index.ravel(), (np.abs(np.fft.rfft2(z)) ** 2).mean(0).ravel()) / count
    np.testing.assert_allclose(np.exp(lnp), p[np.isin(kk, k)])
    assert k[0] == pytest.approx(1 / 32)  # ring 0 (the mean) is left out
    # NaN cells are filled with their field's mean; a periodic x is not padded
    f[0, :3, :3] = np.nan
    assert np.isfinite(np_texture.reference_spectrum(f)[1]).all()
    assert np_texture.rings.__wrapped__((32, 24))[0].shape == (32, 13)
    kp, _ = np_texture.reference_spectrum(f, periodic_x=True)
    assert kp[0] == pytest.approx(1 / 24)
