"""Core of the radially averaged PSD: normalisation, rings, Parseval, peers."""

import numpy as np
import pytest

from xdownscale import np_spectra


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (63, 50)])
def test_white_noise_is_flat_at_variance(rng, shape):
    s = 1.7
    a = rng.normal(0, s, size=(200, *shape))
    p = np_spectra.psd(a).mean(0)[1:]
    # each ring mean over 200 fields: relative sampling error well below 10 %
    np.testing.assert_allclose(p, s**2, rtol=0.12)
    assert abs(p.mean() / s**2 - 1) < 0.02


def test_parseval_exact_without_truncation(rng):
    a = rng.normal(size=(3, 30, 44))
    _, _, count = np_spectra.ring_operator(30, 44, truncate=False)
    p = np_spectra.psd(a, truncate=False)
    np.testing.assert_allclose((p * count).sum(-1), a[0].size * (a**2).mean(axis=(-2, -1)))
    assert count.sum() == 30 * 44


@pytest.mark.parametrize("shape", [(64, 64), (63, 63), (64, 96), (97, 64)])
def test_equals_pysteps_rapsd(rng, shape):
    spectral = pytest.importorskip("pysteps.utils.spectral")
    a = rng.normal(size=shape)
    ref, freq = spectral.rapsd(a, fft_method=np.fft, return_freq=True)
    rings = "wavenumber" if shape[0] == shape[1] else "index"
    np.testing.assert_allclose(np_spectra.psd(a, rings=rings), ref, rtol=1e-12)
    _, k, _ = np_spectra.ring_operator(*shape, True, rings)
    np.testing.assert_allclose(k, freq)


def test_detrend_and_window(rng):
    yy, xx = np.mgrid[:32, :32]
    plane = 3.0 + 0.5 * yy - 0.2 * xx
    noise = rng.normal(size=(50, 32, 32))
    p_lin = np_spectra.psd(noise + plane, detrend="linear")
    p_ref = np_spectra.psd(noise, detrend="linear")
    np.testing.assert_allclose(p_lin, p_ref, atol=1e-9)
    assert np_spectra.psd(noise + 5.0, detrend="constant")[:, 0].max() < 1e-20
    # Hann window scaled to mean(w^2) = 1 keeps the white-noise level
    assert abs(np_spectra.psd(noise, taper="hann").mean(0)[2:].mean() - 1) < 0.05


def test_fill_nan_keeps_white_noise_level(rng):
    a = rng.normal(size=(100, 40, 40))
    a[:, :10, :] = np.nan
    p = np_spectra.psd(a, fill_nan=True).mean(0)[3:]
    assert abs(p.mean() - 1) < 0.05
    assert np.isnan(np_spectra.psd(np.full((8, 8), np.nan), fill_nan=True)).all()


def test_float32_stays_float32(rng):
    a = rng.normal(size=(2, 16, 16)).astype("float32")
    assert np_spectra.psd(a).dtype == np.float32
