"""psd and choose_scale wrappers: eager/lazy, peers, analytic crossings, errors."""

import warnings

import numpy as np
import pytest
import xarray as xr

import xdownscale as xd
from xdownscale.datasets import power_law_field

from .conftest import raise_if_dask_computes


def noise(rng, shape=(20, 32, 48), s=1.0, spacing=2.0):
    ny, nx = shape[-2:]
    return xr.DataArray(
        rng.normal(0, s, shape),
        dims=("time", "y", "x"),
        coords={"y": np.arange(ny) * spacing, "x": np.arange(nx) * spacing},
        attrs={"units": "K"},
    )


@pytest.mark.parametrize("chunked", [False, True])
def test_psd_white_noise_flat_and_lazy(rng, chunked):
    da = noise(rng, (300, 32, 32), s=2.0)
    src = da.chunk(time=64) if chunked else da
    with raise_if_dask_computes():
        p = xd.psd(src)
    assert p.dims == ("wavenumber",)
    np.testing.assert_allclose(p.values[1:], 4.0, rtol=0.12)
    assert p.attrs["units"] == "(K)^2"
    np.testing.assert_allclose(p.wavelength.values[1:], 2.0 / p.wavenumber.values[1:])
    assert np.isinf(p.wavelength.values[0])


def test_psd_eager_equals_dask(rng):
    da = noise(rng)
    a = xd.psd(da, dim=[], taper="hann", detrend="linear")
    b = xd.psd(da.chunk(time=7), dim=[], taper="hann", detrend="linear").compute()
    xr.testing.assert_allclose(a, b)
    assert a.dims == ("time", "wavenumber")


@pytest.mark.parametrize(
    "shape,kx,ky", [((64, 64), 5, 0), ((48, 80), 10, 0), ((96, 60), 0, 12), ((60, 60), 6, 8)]
)
def test_sinusoid_peaks_at_its_wavenumber(shape, kx, ky):
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    da = xr.DataArray(np.cos(2 * np.pi * (kx * xx / nx + ky * yy / ny)), dims=("y", "x"))
    p = xd.psd(da)
    k_true = np.hypot(kx / nx, ky / ny)
    k_peak = float(p.wavenumber[int(p.argmax())])
    assert abs(k_peak - k_true) <= 0.5 / max(shape)


def test_parseval(rng):
    da = noise(rng, (2, 30, 44))
    p = xd.psd(da, dim=[], truncate=False)
    np.testing.assert_allclose(
        (p * p.n_modes).sum("wavenumber"), 30 * 44 * (da**2).mean(("y", "x"))
    )


def test_equals_xrft_up_to_documented_factor(rng):
    xrft = pytest.importorskip("xrft")
    pytest.importorskip("numpy_groupies")
    # odd sizes: on even grids some modes lie exactly on xrft's bin edges (e.g. (2, 2) on the
    # first edge of a 64 x 64 grid), where rounding decides the bin; no such ties here
    for ny, nx, dx in [(63, 63, 2.5), (49, 81, 1.0), (45, 77, 3.0)]:
        da = noise(rng, (3, ny, nx), spacing=dx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            iso = xrft.isotropic_power_spectrum(da, dim=["y", "x"], truncate=True).mean("time")
        # xrft's bins: pandas.cut of |k| (cycles per unit length) into min(N)/4 equal bins
        fr = np.hypot(np.fft.fftfreq(ny, dx)[:, None], np.fft.fftfreq(nx, dx)[None, :])
        edges = np.linspace(0, fr.max(), min(ny, nx) // 4 + 1)
        edges[0] -= 0.001 * fr.max()
        p = xd.psd(da, bins=edges * dx)
        n = iso.sizes["freq_r"]
        k = p.wavenumber.values[:n] / dx
        np.testing.assert_allclose(iso.freq_r.values, k)
        # documented factor: xrft = P(k) * k * dx * dy (density scaling times k)
        np.testing.assert_allclose(iso.values, p.values[:n] * k * dx * dx, rtol=1e-10)


def test_psd_nan_policy(rng):
    da = noise(rng, (2, 16, 16))
    da[0, 1, 1] = np.nan
    da[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"da holds 2 NaN value\(s\) of 512; .*nan_policy='fill'"):
        xd.psd(da)
    lazy = xd.psd(da.chunk(time=1))  # lazy: checked when the chunk is computed
    with pytest.raises(ValueError, match=r"a chunk holds 1 NaN value\(s\)"):
        lazy.compute()
    assert np.isfinite(xd.psd(da, nan_policy="fill")).all()


def test_psd_errors(rng):
    da = noise(rng, (2, 16, 16))
    with pytest.raises(
        ValueError,
        match=r"dim 'x' of da has 2 chunks; the FFT needs whole fields — call da.chunk\(x=-1\)",
    ):
        xd.psd(da.chunk(x=8))
    with pytest.raises(
        ValueError, match=r"taper='hamming' is not supported; use one of \[None, 'hann'\]"
    ):
        xd.psd(da, taper="hamming")
    with pytest.raises(ValueError, match=r"detrend='quadratic' is not supported"):
        xd.psd(da, detrend="quadratic")
    with pytest.raises(ValueError, match=r"nan_policy='omit' is not supported"):
        xd.psd(da, nan_policy="omit")
    with pytest.raises(ValueError, match=r"dim='y' names \['y'\], which are not non-spatial dims"):
        xd.psd(da, dim="y")
    with pytest.raises(ValueError, match="got a 1-D array"):
        xd.psd(da.isel(time=0, y=0))
    with pytest.raises(ValueError, match="at least 4 x 4 cells"):
        xd.psd(da.isel(y=slice(0, 3)))
    with pytest.raises(ValueError, match="strictly increasing edges"):
        xd.psd(da, bins=[0.3, 0.1])
    with pytest.raises(ValueError, match="could not find the spatial dims"):
        xd.psd(xr.DataArray(np.zeros((8, 8)), dims=("a", "b")))
    with pytest.raises(ValueError, match="rings='radius' is not supported"):
        xd.psd(da, rings="radius")


# --- choose_scale ------------------------------------------------------------------------


def analytic_crossing(a_src, s_src, a_tgt, s_tgt):
    # a_s^2 k^s_s = a_t^2 k^s_t
    return (a_src**2 / a_tgt**2) ** (1.0 / (s_tgt - s_src))


@pytest.mark.parametrize("a_src,k_expected", [(0.1, 0.1), (0.04, 0.04), (0.25, 0.25)])
def test_choose_scale_power_laws(a_src, k_expected):
    tgt = power_law_field((16, 128, 128), slope=-2.0, seed=0)
    src = power_law_field((16, 128, 128), slope=-4.0, amplitude=a_src, seed=1)
    assert analytic_crossing(a_src, -4.0, 1.0, -2.0) == pytest.approx(k_expected)
    c = xd.choose_scale(src, tgt)
    assert c.crossed
    assert abs(c.k_star - k_expected) <= 1.0 / 128  # within one bin
    # sigma*^2 is the target spectrum at k* (log-log interpolated between the rings around it)
    p_tgt = xd.psd(tgt)
    k, p = p_tgt.wavenumber.values[1:], p_tgt.values[1:]
    expected = np.exp(np.interp(np.log(c.k_star), np.log(k), np.log(p)))
    assert c.sigma_star**2 == pytest.approx(expected, rel=1e-9)
    assert c.wavelength_star == pytest.approx(1.0 / c.k_star) and c.wavelength_units == "km"


def test_choose_scale_with_factor_and_spectrum_target():
    tgt = power_law_field((8, 64, 64), slope=-2.0, seed=0, spacing=1.0)
    # a biased source: 50 % more power at large scales, no power below its grid
    coarse = xd.coarsen(power_law_field((8, 64, 64), slope=-2.0, amplitude=1.5, seed=3), 4)
    c = xd.choose_scale(coarse, tgt, factor=4)
    # an interpolated coarse field loses its power below the coarse grid's scales
    assert c.crossed and 0.03 < c.k_star <= 0.125 + 1 / 64
    # the target spectrum can come precomputed (e.g. from a model card)
    c2 = xd.choose_scale(coarse, xd.psd(tgt), factor=4)
    assert c2.k_star == pytest.approx(c.k_star) and c2.sigma_star == pytest.approx(c.sigma_star)
    ds = c.to_dataset()
    assert set(ds.data_vars) == {"psd_source", "psd_target"} and ds.attrs["k_star"] == c.k_star


def test_choose_scale_never_crosses_warns():
    tgt = power_law_field((4, 64, 64), slope=-2.0, seed=0)
    above = power_law_field((4, 64, 64), slope=-2.0, amplitude=3.0, seed=1)
    with pytest.warns(
        UserWarning, match="spectra never cross: the source has at least the target's power"
    ):
        c = xd.choose_scale(above, tgt)
    assert not c.crossed and c.k_star == pytest.approx(31 / 64)
    below = power_law_field((4, 64, 64), slope=-2.0, amplitude=0.2, seed=1)
    with pytest.warns(UserWarning, match="less than half the target's power at every k > 0"):
        c = xd.choose_scale(below, tgt)
    assert not c.crossed and c.k_star == pytest.approx(1 / 64)
    # a smoothed copy of the target: below everywhere, k* at the half-power point
    smooth = xd.lowpass(tgt, 0.2, order=4)
    with pytest.warns(UserWarning, match="k\\* is the half-power point"):
        c = xd.choose_scale(smooth, tgt)
    assert not c.crossed and c.k_star == pytest.approx(0.2, abs=1 / 64)


def test_choose_scale_robust_to_a_noisy_spike():
    tgt = power_law_field((16, 128, 128), slope=-2.0, seed=0)
    src = power_law_field((16, 128, 128), slope=-4.0, amplitude=0.1, seed=1)
    p_src = xd.psd(src).copy()
    p_src[40] = p_src[40] * 1e4  # one noisy bin far above the target, then below again
    c = xd.choose_scale(p_src, tgt, smooth=1)
    assert c.k_star > 40 / 128  # without smoothing the spike is a later crossing
    c = xd.choose_scale(p_src, tgt, smooth=5)
    assert abs(c.k_star - 0.1) <= 1 / 128  # the running mean averages the single spike away


def test_choose_scale_transform_on_real_radar():
    pr = xd.datasets.open_sample()
    coarse = xd.coarsen(pr, 8)
    # the sample's own 8x coarsening: below the target everywhere, half power lost near the
    # coarse grid's scales
    with pytest.warns(UserWarning, match="half-power point"):
        c = xd.choose_scale(coarse, pr, factor=8)
    assert 0.5 / 32 < c.k_star < 0.5 / 8
    # a transform is applied to both fields before the spectra (the model's space)
    # the one log transform: computed in the data's precision (float32 here), as the models do
    logged = lambda da: np.log(np.maximum(da, 0.0) + 1e-4) - float(np.log(1e-4))  # noqa: E731
    with pytest.warns(UserWarning, match="never cross"):
        a = xd.choose_scale(coarse, pr, factor=8, transform="log")
    with pytest.warns(UserWarning, match="never cross"):
        b = xd.choose_scale(coarse, pr, factor=8, transform=logged)
    assert a.k_star == b.k_star and a.sigma_star == b.sigma_star


def test_diffusion_time_hess_numbers():
    # Hess et al. (2024): sigma* = 0.468 -> t* = 0.468 (consistency), 0.355 (VE, 0.01..500)
    c = xd.ScaleChoice(0.0667, 0.468, None, None, True, xr.DataArray(), xr.DataArray())
    assert c.diffusion_time() == 0.468
    assert c.diffusion_time("ve") == pytest.approx(0.355, abs=5e-4)
    with pytest.raises(ValueError, match="schedule='vp' is not supported"):
        c.diffusion_time("vp")
    with pytest.raises(ValueError, match="need 0 < sigma_min < sigma_max"):
        c.diffusion_time("ve", sigma_min=1.0, sigma_max=0.5)


def test_choose_scale_k_max_caps_k_star_and_takes_sigma_there():
    tgt = power_law_field((16, 128, 128), slope=-2.0, seed=0)
    src = power_law_field((16, 128, 128), slope=-4.0, amplitude=0.25, seed=1)  # crosses near 0.25
    free = xd.choose_scale(src, tgt)
    assert free.crossed and free.k_star > 0.2
    capped = xd.choose_scale(src, tgt, k_max=0.1)
    assert capped.crossed and capped.k_star == 0.1 and "capped at k_max = 0.1" in capped.note
    p_tgt = xd.psd(tgt)
    k, p = p_tgt.wavenumber.values[1:], p_tgt.values[1:]
    assert capped.sigma_star**2 == pytest.approx(
        np.exp(np.interp(np.log(0.1), np.log(k), np.log(p))), rel=1e-9
    )
    assert (
        capped.sigma_star > free.sigma_star
    )  # more noise: the scales down to 10 cells are redrawn
    # a k* already inside k_max is left alone
    assert xd.choose_scale(src, tgt, k_max=0.4).k_star == free.k_star


def test_choose_scale_errors():
    tgt = power_law_field((2, 64, 64), slope=-2.0, seed=0)
    src = power_law_field((2, 16, 16), slope=-2.0, seed=0, spacing=4.0)
    with pytest.raises(
        ValueError, match=r"src has \(16, 16\) cells but target has \(64, 64\).*pass factor=4"
    ):
        xd.choose_scale(src, tgt)
    coarse4 = xd.coarsen(tgt, 4).isel(y=slice(0, 16), x=slice(0, 16))  # spacing 4
    with pytest.raises(
        ValueError,
        match=r"grid spacing of src after upsampling is 2 but target's is 1; check factor=2 \(it should be about 4\)",
    ):
        xd.choose_scale(coarse4, tgt.isel(y=slice(0, 32), x=slice(0, 32)), factor=2)
    with pytest.raises(ValueError, match=r"tolerance must be in \[0, 1\)"):
        xd.choose_scale(tgt, tgt, tolerance=1.0)
    with pytest.raises(ValueError, match="transform='sqrt' is not supported"):
        xd.choose_scale(tgt, tgt, transform="sqrt")
    with pytest.raises(ValueError, match=r"k_max must be a wavenumber in \(0, 0.5\].*got 0.7"):
        xd.choose_scale(tgt, tgt, k_max=0.7)
    with pytest.raises(ValueError, match="smooth must be an integer >= 1, got 0"):
        xd.choose_scale(tgt, tgt, smooth=0)
    with pytest.raises(ValueError, match="looks like a spectrum"):
        xd.choose_scale(tgt, xd.psd(tgt, dim=[]))
    with pytest.raises(
        ValueError,
        match=r"src and target have no power at any wavenumber k > 0: the fields are constant \(for precipitation: all dry\).*scale=<sigma\*>",
    ):
        xd.choose_scale(tgt * 0, tgt * 0)
    with pytest.raises(ValueError, match=r"^src has no power at any wavenumber"):
        xd.choose_scale(tgt * 0, tgt)
    with pytest.raises(TypeError, match=r"target must be an xarray.DataArray, got ndarray"):
        xd.choose_scale(tgt, tgt.values)


def test_choose_scale_match_below_compares_shapes():
    tgt = power_law_field((8, 128, 128), slope=-2.0, seed=0)
    # the same field 4x less variable and smoothed above k = 0.1: "below everywhere" as is
    src = xd.lowpass(0.5 * power_law_field((8, 128, 128), slope=-2.0, seed=0), 0.1, order=8)
    with pytest.warns(UserWarning, match="less than half the target's power"):
        raw = xd.choose_scale(src, tgt, tolerance=0.5)
    assert not raw.crossed and raw.k_star == pytest.approx(1 / 128)
    # after matching the large scales, the half-power point is the filter's cutoff
    c = xd.choose_scale(src, tgt, match_below=0.03, tolerance=0.5)
    assert c.crossed and c.k_star == pytest.approx(0.1, abs=1 / 128)
    assert c.psd_source.attrs["normalized_by"] == pytest.approx(4.0, rel=0.01)
    with pytest.raises(ValueError, match=r"match_below must be a wavenumber in \(0, 0.5\]"):
        xd.choose_scale(src, tgt, match_below=0.0)


def test_scale_choice_reprs_are_compact_and_render():
    c = xd.ScaleChoice(0.0625, 0.468, 16.0, "km", True, xr.DataArray(), xr.DataArray(), "crossed")
    text = repr(c)
    assert text.splitlines() == [
        "ScaleChoice",
        "  k*               0.0625 cycles per grid cell (wavelength 16 km)",
        "  sigma*           0.468",
        "  spectra crossed  yes",
        "  how              crossed",
    ]
    html = c._repr_html_()
    assert html.startswith("<div class='xdownscale-scale'>") and "<th" in html and "16 km" in html
    long = xd.ScaleChoice(0.1, 1.0, None, None, False, xr.DataArray(), xr.DataArray(), "a " * 80)
    assert max(len(line) for line in repr(long).splitlines()) <= 100


def test_choose_scale_converts_the_targets_units_and_refuses_others():
    from xdownscale.datasets import power_law_field

    tgt = power_law_field((2, 64, 64), slope=-2.0, seed=0).assign_attrs(units="K")
    src = power_law_field((2, 64, 64), slope=-4.0, amplitude=0.1, seed=1).assign_attrs(units="K")
    k = xd.choose_scale(src, tgt)
    in_mk = xd.choose_scale(src, (tgt * 1000).assign_attrs(units="mK"))
    assert in_mk.k_star == pytest.approx(k.k_star) and in_mk.sigma_star == pytest.approx(
        k.sigma_star, rel=1e-6
    )
    with pytest.raises(ValueError, match="cannot be converted"):
        xd.choose_scale(src, tgt.assign_attrs(units="mm/h"))
    with pytest.raises(ValueError, match="so the spectra cannot be compared"):
        xd.choose_scale(src, tgt.drop_attrs())
