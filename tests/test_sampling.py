"""sample / ensemble: laziness, chunk invariance, masks, attrs, conventions, statistics, errors."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xdownscale
from xdownscale.nn import (
    DownscalingModel,
    GaussianDenoiser,
    ModelCard,
    UNet,
    get_model,
)

from .conftest import raise_if_dask_computes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _coarse(rng, shape=(4, 3, 6, 5), units="mm/h") -> xr.DataArray:
    data = rng.gamma(0.8, 1.5, shape).astype("float32")
    dims = {2: ("y", "x"), 3: ("time", "y", "x"), 4: ("time", "member_in", "y", "x")}[len(shape)]
    coords = {"y": np.arange(shape[-2]) * 4.0, "x": np.arange(shape[-1]) * 4.0}
    coords["y"] = xr.DataArray(coords["y"], dims="y", attrs={"units": "km"})
    coords["x"] = xr.DataArray(coords["x"], dims="x", attrs={"units": "km"})
    return xr.DataArray(data, dims=dims, coords=coords, attrs={"units": units}, name="pr")


def test_eager_and_dask_agree_and_dask_stays_lazy(rng, cm):
    da = _coarse(rng)
    eager = da.downscale.sample(cm, scale=0.6, device="cpu")
    with raise_if_dask_computes():
        lazy = da.chunk(time=2).downscale.sample(cm, scale=0.6, device="cpu")
    assert isinstance(lazy.data, dask.array.Array)
    assert lazy.shape == eager.shape == (4, 3, 24, 20)
    assert np.array_equal(lazy.compute().values, eager.values)


def test_bit_identical_for_any_chunking_and_batch_size(rng, cm):
    da = _coarse(rng)
    runs = [
        da.chunk(time=1, member_in=3).downscale.sample(cm, scale=0.6, batch_size=2, device="cpu"),
        da.chunk(time=3, member_in=2).downscale.sample(cm, scale=0.6, batch_size=5, device="cpu"),
        da.chunk(time=4, member_in=1).downscale.sample(cm, scale=0.6, batch_size=1, device="cpu"),
    ]
    vals = [r.compute(scheduler="threads").values for r in runs]
    assert all(np.array_equal(vals[0], v) for v in vals[1:])
    other = da.downscale.sample(cm, scale=0.6, seed=1, device="cpu").values
    assert not np.allclose(other, vals[0])


def test_nan_mask_restored(rng, cm):
    da = _coarse(rng)
    da[0, 0, 2, 3] = np.nan
    out = da.chunk(time=1).downscale.sample(cm, scale=0.6, device="cpu").compute()
    mask = np.isnan(out.values)
    assert mask[0, 0, 8:12, 12:16].all()
    assert mask.sum() == 16
    assert (out.values[~mask] >= 0).all()  # log transform: non-negative output


def test_attrs_coords_and_history(rng, cm):
    da = _coarse(rng)
    da.attrs["history"] = "made by hand"
    out = da.downscale.sample(cm, scale=0.6, seed=7, device="cpu")
    assert out.name == "pr" and out.attrs["units"] == "mm/h"
    line = out.attrs["history"].splitlines()[0]
    for text in ("sample:", "'tiny-cm'", "sampler consistency", "sigma* = 0.6", "seed 7", "4x"):
        assert text in line
    assert out.attrs["history"].endswith("made by hand")
    np.testing.assert_allclose(np.diff(out.x.values), 1.0)
    assert out.x.values[0] == pytest.approx(-1.5)


def test_sha256_is_named_in_history(rng):
    den = GaussianDenoiser(np.zeros((1, 8, 8)), np.eye(64), parameterisation="consistency")
    model = DownscalingModel(den, {"name": "hashed", "factors": (2,), "sha256": "ab" * 32})
    out = _coarse(rng, (2, 4, 4)).downscale.sample(model, scale=0.5, device="cpu")
    assert f"(sha256 {'ab' * 32})" in out.attrs["history"]
    assert model.token == "sha256:" + "ab" * 32


def test_ensemble_member_dim_conventions(rng, cm):
    da = _coarse(rng, (3, 6, 5))
    with raise_if_dask_computes():
        ens = da.chunk(time=2).downscale.ensemble(5, cm, scale=0.6, member_chunk=2, device="cpu")
    assert ens.dims == ("realization", "time", "y", "x")
    assert ens.chunks[0] == (2, 2, 1)
    r = ens.realization
    assert r.attrs["standard_name"] == "realization" and r.attrs["axis"] == "E"
    np.testing.assert_array_equal(r.values, np.arange(5))
    vals = ens.compute().values
    single = da.downscale.sample(cm, scale=0.6, device="cpu").values
    assert np.array_equal(vals[0], single)  # member 0 is sample()
    eager = da.downscale.ensemble(5, cm, scale=0.6, batch_size=4, device="cpu").values
    assert np.array_equal(vals, eager)
    assert not np.allclose(vals[0], vals[1])
    assert "ensemble of 5" in ens.attrs["history"]


def test_streaming_statistics_match_the_full_ensemble(rng, cm):
    da = _coarse(rng, (3, 6, 5))
    da[1, 0, 0] = np.nan
    full = da.downscale.ensemble(9, cm, scale=0.6, device="cpu")
    kw = dict(
        reduce=["mean", "std", "min", "max", "exceedance", "quantile"],
        threshold=[0.5, 2.0],
        q=[0.1, 0.5, 0.9],
        scale=0.6,
        device="cpu",
    )
    with raise_if_dask_computes():
        lazy = da.chunk(time=2).downscale.ensemble(9, cm, batch_size=4, **kw)
    stats = lazy.compute()
    eager = da.downscale.ensemble(9, cm, batch_size=7, **kw)
    for name in stats.data_vars:  # bit-identical whatever the chunking / batch size
        assert np.array_equal(stats[name].values, eager[name].values, equal_nan=True)
    f = full.astype("float64")
    xr.testing.assert_allclose(stats["mean"], f.mean("realization").astype("float32"), atol=1e-5)
    xr.testing.assert_allclose(stats["std"], f.std("realization").astype("float32"), atol=1e-5)
    np.testing.assert_array_equal(stats["min"].values, full.min("realization").values)
    np.testing.assert_array_equal(stats["max"].values, full.max("realization").values)
    exc = (full > 2.0).mean("realization").where(full.notnull().all("realization"))
    np.testing.assert_allclose(stats["exceedance"].sel(threshold=2.0), exc, atol=1e-7)
    qv = np.quantile(f.values, [0.1, 0.5, 0.9], axis=0)
    np.testing.assert_allclose(
        stats["quantile"].transpose("q", ...).values, qv, rtol=1e-6, atol=1e-6
    )
    assert np.isnan(stats["mean"].values[1, 0:4, 0:4]).all()
    assert stats["mean"].attrs["units"] == "mm/h"
    assert stats["exceedance"].attrs["units"] == "1"
    assert "realization: std (9 members)" == stats["std"].attrs["cell_methods"]


def test_scale_auto_uses_the_models_spectrum(rng, cm):
    da = _coarse(rng, (2, 6, 5))
    k = np.linspace(0, 0.45, 10)
    psd = 1e-1 * np.maximum(k, 0.02) ** -1.0
    card = ModelCard(
        **{**cm.card.to_dict(), "target_psd": psd.tolist(), "target_psd_wavenumber": k.tolist()}
    )
    model = DownscalingModel(cm.denoiser, card)
    fine = xdownscale.lowpass(xdownscale.upsample(da, 4), 0.125)
    target = xr.DataArray(psd, dims="wavenumber", coords={"wavenumber": k})
    # auto compares spectral shapes: the input's large scales (k <= 0.25 / factor) are matched
    # to the model's training spectrum first
    with pytest.warns(UserWarning, match="half-power point"):  # a smoothed input never crosses
        choice = xdownscale.choose_scale(
            card.forward_transform(fine), target, nan_policy="fill", match_below=0.25 / 4
        )
    # the coarse grid resolves nothing beyond its Nyquist (0.5 / factor cycles per fine cell):
    # a k* past it is capped there, sigma*^2 = P_target(0.125) interpolated log-log
    assert choice.k_star > 0.125
    with pytest.warns(UserWarning, match="capped at k_max = 0.125"):
        capped = xdownscale.choose_scale(
            card.forward_transform(fine),
            target,
            nan_policy="fill",
            match_below=0.25 / 4,
            k_max=0.125,
        )
    assert capped.k_star == 0.125
    expected = capped.sigma_star
    # the card's spectrum, log-log interpolated at 0.125 (here via the source's rings)
    direct = float(np.sqrt(np.exp(np.interp(np.log(0.125), np.log(k[1:]), np.log(psd[1:])))))
    assert expected == pytest.approx(direct, rel=0.02)
    out = da.downscale.sample(model, device="cpu")
    assert f"sigma* = {expected:.4g}" in out.attrs["history"]
    via_number = da.downscale.sample(cm, scale=expected, device="cpu")
    assert np.array_equal(out.values, via_number.values)


def test_scale_auto_keeps_a_k_star_inside_the_coarse_resolution(rng, cm):
    da = _coarse(rng, (2, 6, 5))
    k = np.linspace(0, 0.45, 10)
    psd = 1e-1 * np.maximum(k, 0.02) ** -0.3  # shallow: the source loses half its power early
    card = ModelCard(
        **{**cm.card.to_dict(), "target_psd": psd.tolist(), "target_psd_wavenumber": k.tolist()}
    )
    model = DownscalingModel(cm.denoiser, card)
    fine = xdownscale.lowpass(xdownscale.upsample(da, 4), 0.125)
    target = xr.DataArray(psd, dims="wavenumber", coords={"wavenumber": k})
    with pytest.warns(UserWarning, match="half-power point"):
        choice = xdownscale.choose_scale(
            card.forward_transform(fine), target, nan_policy="fill", match_below=0.25 / 4
        )
    assert choice.k_star <= 0.125
    out = da.downscale.sample(model, device="cpu")
    assert f"sigma* = {choice.sigma_star:.4g}" in out.attrs["history"]
    via_choice = da.downscale.sample(cm, scale=choice, device="cpu")
    assert np.array_equal(out.values, via_choice.values)


@settings(max_examples=8, deadline=None)
@given(
    chunk=st.integers(1, 5),
    batch=st.integers(1, 9),
    seed=st.integers(0, 2**40),
)
def test_chunk_and_batch_invariance_property(chunk, batch, seed):
    den = GaussianDenoiser(np.zeros((1, 8, 8)), np.eye(64), parameterisation="consistency")
    model = DownscalingModel(den, {"name": "white-cm", "factors": (2,)})
    da = xr.DataArray(np.arange(5 * 16.0).reshape(5, 4, 4), dims=("time", "y", "x"))
    ref = da.downscale.ensemble(3, model, scale=0.7, seed=seed, batch_size=4, device="cpu")
    got = da.chunk(time=chunk).downscale.ensemble(
        3, model, scale=0.7, seed=seed, batch_size=batch, member_chunk=chunk, device="cpu"
    )
    assert np.array_equal(ref.values, got.compute().values)


def test_edm_methods_and_exact_conditioning(rng, white):
    da = _coarse(rng, (3, 4, 4), units="K").chunk(time=2)
    for method, steps in (("heun", 4), ("sde", 6)):
        out = da.downscale.sample(white, scale=1.0, sampler=method, steps=steps, device="cpu")
        assert out.shape == (3, 16, 16) and np.isfinite(out.values).all()
        assert f"sampler {method} ({steps} steps)" in out.attrs["history"]
    cond = da.downscale.sample(white, scale=2.0, sampler="conditional", steps=20, device="cpu")
    back = xdownscale.coarsen(cond.compute().astype("float64"), 4)
    np.testing.assert_allclose(back.values, da.values, atol=1e-5)


def test_model_is_never_put_into_the_graph(rng, cm):
    out = _coarse(rng).chunk(time=1).downscale.sample(cm, scale=0.6, device="cpu")

    class Guard(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, (torch.nn.Module, DownscalingModel)):
                raise AssertionError(f"the graph holds a {type(obj).__name__}")
            return None

    buf = io.BytesIO()
    Guard(buf).dump(dict(out.data.__dask_graph__()))  # raises if a model is inside
    assert get_model(cm.token)[0] is cm


def test_unknown_token_in_a_fresh_process_is_a_clear_error():
    with pytest.raises(
        LookupError,
        match=r"is not loaded in this process: it was built in memory.*create the Client first",
    ):
        get_model("mem-does-not-exist")


def test_bfloat16_autocast_runs(rng, cm):
    da = _coarse(rng, (2, 6, 5))
    a = da.downscale.sample(cm, scale=0.6, device="cpu")
    b = da.downscale.sample(cm, scale=0.6, device="cpu", precision="bfloat16")
    assert b.shape == a.shape and np.isfinite(b.values).all()
    assert np.abs(b - a).mean() < 0.1 * np.abs(a).mean()


def test_import_does_not_import_torch():
    code = "import sys, xdownscale; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


# ----------------------------------------------------------------------------- errors


def test_model_resolution_errors(rng):
    da = _coarse(rng, (6, 5))
    with pytest.raises(
        ValueError,
        match=r"unknown model 'radar-16x'; registered models: kolmogorov-8x, radar-8x, radar-8x-cm",
    ):
        da.downscale.sample("radar-16x")
    with pytest.raises(ValueError, match=r"unknown model '/tmp/w.safetensors'.*no file exists"):
        da.downscale.sample(Path("/tmp/w.safetensors"))
    with pytest.raises(TypeError, match="model must be None \\(the default\\), a registered name"):
        da.downscale.sample(42)
    with pytest.raises(TypeError, match="model is a bare UNet"):
        da.downscale.sample(UNet(channels=(8,)))
    with pytest.raises(TypeError, match=r"denoiser must be a torch.nn.Module"):
        DownscalingModel("not a net", {})


def test_input_errors(rng, cm, white, monkeypatch):
    da = _coarse(rng, (2, 6, 5))
    with pytest.raises(
        ValueError, match=r"factor=2 does not match model 'tiny-cm', which supports factors \(4,\)"
    ):
        da.downscale.sample(cm, factor=2, scale=0.5, device="cpu")
    bad = da.assign_coords(x=da.x * 2, y=da.y * 2)
    with pytest.raises(
        ValueError,
        match="with factor=4 the input grid spacing 8 km gives 2 km, but model 'tiny-cm' works at 1 km; pass factor=8",
    ):
        bad.downscale.sample(cm, factor=4, scale=0.5, device="cpu")
    with pytest.raises(ValueError, match="could not find the spatial dims"):
        xr.DataArray(np.zeros((2, 3, 3)), dims=("a", "b", "c")).downscale.sample(cm, factor=4)
    with pytest.raises(
        ValueError, match="da has units 'K' but model 'tiny-cm' expects 'mm/h' \\(not convertible"
    ):
        da.assign_attrs(units="K").downscale.sample(cm, scale=0.5, device="cpu")
    with pytest.raises(
        ValueError,
        match=r"da has no 'units' attribute, but model 'tiny-cm' expects 'mm/h'; .*da.attrs\['units'\] = 'mm/h'",
    ):
        da.drop_attrs().downscale.sample(cm, scale=0.5, device="cpu")
    # compatible units are converted to the model's and back: the result is in the input's
    ok = da.assign_attrs(units="mm h-1").downscale.sample(cm, scale=0.5, device="cpu", seed=1)
    assert ok.attrs["units"] == "mm h-1"
    in_si = (da / 3.6e6).assign_attrs(units="m s-1")
    got = in_si.downscale.sample(cm, scale=0.5, device="cpu", seed=1)
    assert got.attrs["units"] == "m s-1"
    np.testing.assert_allclose(got.values * 3.6e6, ok.values, rtol=1e-5)
    asked = da.downscale.sample(cm, scale=0.5, device="cpu", seed=1, units="mm/day")
    np.testing.assert_allclose(asked.values, 24 * ok.values, rtol=1e-5)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda' was requested but CUDA is not available"):
        da.downscale.sample(cm, scale=0.5, device="cuda")
    with pytest.raises(ValueError, match="device='gpu' is not supported"):
        da.downscale.sample(cm, scale=0.5, device="gpu")


def test_option_errors(rng, cm, white):
    da = _coarse(rng, (2, 6, 5))
    da_k = _coarse(rng, (2, 4, 4), units="K")
    with pytest.raises(
        ValueError,
        match="sampler='heun' needs an EDM denoiser, but model 'tiny-cm' is parameterised as 'consistency'",
    ):
        da.downscale.sample(cm, scale=0.5, sampler="heun")
    with pytest.raises(ValueError, match="sampler='consistency' needs a consistency model"):
        da_k.downscale.sample(white, scale=0.5, sampler="consistency")
    with pytest.raises(ValueError, match="sampler='ddim' is not supported"):
        da.downscale.sample(cm, scale=0.5, sampler="ddim")
    with pytest.raises(ValueError, match=r"sigma\* = 100 is outside model 'tiny-cm'"):
        da.downscale.sample(cm, scale=100.0)
    with pytest.raises(
        ValueError, match="scale='auto' needs the target spectrum stored with the model"
    ):
        da.downscale.sample(cm)
    with pytest.raises(ValueError, match="scale='big' is not understood"):
        da.downscale.sample(cm, scale="big")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        da.downscale.sample(cm, scale=0.5, batch_size=0)
    with pytest.raises(
        ValueError, match=r"sampler='conditional' enforces C'x = y'.*needs the coarse field"
    ):
        da_k.downscale.sample(white, factor=1, scale=0.5, sampler="conditional")
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        da.downscale.ensemble(0, cm, scale=0.5)
    with pytest.raises(ValueError, match="reduce=\\['mean', 'median'\\] is not understood"):
        da.downscale.ensemble(3, cm, scale=0.5, reduce=["mean", "median"])
    with pytest.raises(ValueError, match="reduce includes 'exceedance': pass threshold="):
        da.downscale.ensemble(3, cm, scale=0.5, reduce="exceedance")
    with pytest.raises(ValueError, match=r"q must be probabilities in \[0, 1\], got 1.5"):
        da.downscale.ensemble(3, cm, scale=0.5, reduce="quantile", q=1.5)
    with pytest.raises(
        ValueError, match=r"card.sigma_data=1.0 contradicts the denoiser's sigma_data=0.5"
    ):
        DownscalingModel(cm.denoiser, {"sigma_data": 1.0})
    with pytest.raises(ValueError, match="transform='sqrt' is not supported"):
        ModelCard(transform="sqrt")


@pytest.mark.parametrize("method", ["heun", "conditional"])
def test_conserve_keeps_block_means_in_physical_units(rng, white, method):
    da = _coarse(rng, (3, 4, 4), units="K")
    kw = dict(scale=1.0, sampler=method, steps=6, device="cpu")
    free = da.downscale.sample(white, conserve="none", **kw)
    back_free = xdownscale.coarsen(free.astype("float64"), 4)
    if method == "heun":  # without conservation the block means wander
        assert float(abs(back_free - da).max()) > 1e-2
    out = da.downscale.sample(white, **kw)  # "auto": additive for an identity-transform model
    assert "additive conservation of block means" in out.attrs["history"]
    back = xdownscale.coarsen(out.astype("float64"), 4)
    np.testing.assert_allclose(back.values, da.values, atol=1e-5)
    # the same correction as the core function applied to the free sample (smoothness of the
    # correction is tested in test_nn_samplers)
    from xdownscale.nn.samplers import conserve

    expect = conserve(torch.from_numpy(free.values), torch.from_numpy(da.values), 4, "additive")
    np.testing.assert_allclose(out.values, expect.numpy(), atol=1e-5)


def test_conserve_multiplicative_for_precipitation(rng, cm):
    da = _coarse(rng, (2, 3, 6, 5)).compute()
    da[0, 0, :2, :2] = 0.0  # dry coarse cells stay exactly dry
    da[1, 2, 3, 4] = np.nan  # masked cells stay masked
    out = da.downscale.sample(cm, scale=0.6, device="cpu")
    assert "multiplicative conservation" in out.attrs["history"]
    assert float(out.min()) >= 0.0
    assert (out[0, 0, :8, :8] == 0).all()
    assert out[1, 2, 12:16, 16:20].isnull().all() and int(out.isnull().sum()) == 16
    back = xdownscale.coarsen(out.astype("float64"), 4)
    np.testing.assert_allclose(back.values, da.values, rtol=1e-5, atol=1e-6)
    # lazy and chunk-invariant like everything else
    with raise_if_dask_computes():
        lazy = da.chunk(time=1).downscale.sample(cm, scale=0.6, device="cpu")
    np.testing.assert_array_equal(lazy.values, out.values)


def test_conserve_option_errors(rng, cm, white):
    da = _coarse(rng, (2, 4, 4), units="K")
    with pytest.raises(ValueError, match=r"conserve='mass' is not supported; use one of"):
        da.downscale.sample(white, scale=1.0, conserve="mass", device="cpu")
    fine = xr.DataArray(np.ones((2, 16, 16)), dims=("time", "y", "x"), attrs={"units": "K"})
    with pytest.raises(
        ValueError, match=r"conserve='additive' keeps the block means .* factor > 1"
    ):
        fine.downscale.sample(white, factor=1, scale=1.0, conserve="additive", device="cpu")
    out = fine.downscale.sample(white, factor=1, scale=1.0, device="cpu")  # auto: nothing to keep
    assert "conservation" not in out.attrs["history"]


# ----------------------------------------------------------------------------- real users' inputs


def _global_field(rng, nt=1):
    """Smooth positive 'rain' on a global 8-degree grid that wraps around in longitude."""
    ny, nx = 8, 45
    lon = np.arange(nx) * 8.0 + 4.0
    k = np.arange(1, 5)
    field = np.empty((nt, ny, nx))
    for t in range(nt):
        a, p = rng.normal(size=(k.size, ny)), rng.uniform(0, 2 * np.pi, (k.size, ny))
        waves = a[:, :, None] * np.cos(k[:, None, None] * np.deg2rad(lon) + p[:, :, None])
        field[t] = 0.5 * np.exp(0.6 * waves.sum(0))
    return xr.DataArray(
        field.astype("float32"),
        dims=("time", "lat", "lon"),
        coords={"lat": np.linspace(-56, 56, ny), "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"units": "mm h-1"},
    )


@pytest.mark.slow
def test_no_seam_at_the_date_line_of_a_global_grid(rng):
    """Interpolation, low-pass, network and conservation all wrap around: the jump across
    the date line is no larger than across any other coarse-cell edge (it was 2.7 times)."""
    da = _global_field(rng)
    out = da.downscale.sample(factor=8, steps=2, seed=0).values
    wrap = np.abs(out[..., 0] - out[..., -1]).mean()
    edges = np.abs(out[..., 8::8] - out[..., 7:-1:8]).mean()
    assert wrap < 1.3 * edges


def test_a_single_2d_field_gives_a_2d_field(rng, cm):
    da = _coarse(rng, (6, 5))
    out = da.downscale.sample(cm, scale=0.5, device="cpu")
    assert out.dims == ("y", "x") and out.shape == (24, 20)
    ens = da.downscale.ensemble(3, cm, scale=0.5, device="cpu")
    assert ens.dims == ("realization", "y", "x")
    np.testing.assert_array_equal(ens.isel(realization=0).values, out.values)
    stats = da.downscale.ensemble(3, cm, scale=0.5, device="cpu", reduce=["mean"])
    assert stats["mean"].dims == ("y", "x")


def test_all_dry_field_with_scale_auto_stays_dry():
    pr = xdownscale.datasets.open_sample().isel(time=slice(0, 1))
    dry = xdownscale.coarsen(pr * 0.0, 8)
    out = dry.downscale.sample(steps=1)
    assert float(np.abs(out).max()) == 0.0


def test_longitude_without_units_is_taken_as_degrees():
    pr = xdownscale.datasets.open_sample().isel(time=0)
    coarse = xdownscale.coarsen(pr, 8)
    bare = coarse.assign_coords(lat=coarse.lat.values, lon=coarse.lon.values)
    assert bare.lon.attrs == {} and xdownscale.grid_info(bare).units == "degrees_east"
    out = bare.downscale.sample(steps=1, seed=2)  # the factor comes from the model's card
    ref = coarse.downscale.sample(steps=1, seed=2)
    np.testing.assert_array_equal(out.values, ref.values)


def test_unitless_projected_coordinates_say_what_was_assumed(rng, cm):
    da = _coarse(rng, (2, 6, 5))
    bare = da.assign_coords(x=da.x.values * 250.0, y=da.y.values * 250.0)  # "m", but unlabelled
    with pytest.raises(
        ValueError,
        match=r"the coordinates have no units, so they were taken to be in the model's km: set da.x.attrs\['units'\]",
    ):
        bare.downscale.sample(cm, scale=0.5, device="cpu")


def test_threshold_nan_is_refused_and_strings_are_converted(rng, cm):
    da = _coarse(rng, (2, 6, 5))
    kw = {"scale": 0.5, "device": "cpu", "reduce": ["exceedance"]}
    with pytest.raises(ValueError, match=r"threshold=nan is not a finite number"):
        da.downscale.ensemble(4, cm, threshold=float("nan"), **kw)
    a = da.downscale.ensemble(4, cm, threshold="24 mm/day", **kw)
    b = da.downscale.ensemble(4, cm, threshold=1.0, **kw)
    np.testing.assert_array_equal(a["exceedance"].values, b["exceedance"].values)
    assert a["exceedance"].threshold.values.tolist() == [pytest.approx(1.0)]
    with pytest.raises(TypeError, match=r"threshold must be a number .* or a string with units"):
        da.downscale.ensemble(4, cm, threshold=[object()], **kw)


@pytest.mark.parametrize("chunked", [False, True])
def test_infinite_and_complex_inputs_are_refused(rng, cm, chunked):
    da = _coarse(rng, (2, 6, 5))
    bad = da.copy(data=da.values.copy())
    bad.values[0, 1, 1] = np.inf
    bad = bad.chunk(time=1) if chunked else bad
    with pytest.raises(ValueError, match=r"holds 1 infinite value\(s\)"):
        bad.downscale.sample(cm, scale=0.5, device="cpu").compute()
    with pytest.raises(TypeError, match=r"da holds complex numbers"):
        (da + 0j).downscale.sample(cm, scale=0.5, device="cpu")


def test_a_huge_eager_ensemble_is_refused_before_allocating(rng, cm):
    da = _coarse(rng, (2, 6, 5))
    with pytest.raises(
        MemoryError,
        match=r"ensemble of n=1000000000 members held in memory needs about .* chunk the input",
    ):
        da.downscale.ensemble(10**9, cm, scale=0.5, device="cpu")


def test_resources_annotate_only_the_network_tasks(rng, cm):
    da = _coarse(rng).chunk(time=2)
    out = da.downscale.sample(cm, scale=0.5, device="cpu", resources={"GPU": 1})
    layers = out.data.__dask_graph__().layers
    annotated = {name.split("-")[0] for name, lay in layers.items() if lay.annotations}
    assert annotated == {"_sample_task"}
    ens = da.downscale.ensemble(2, cm, scale=0.5, device="cpu", resources={"GPU": 1})
    assert any(
        lay.annotations == {"resources": {"GPU": 1}}
        for lay in ens.data.__dask_graph__().layers.values()
    )
    with pytest.raises(TypeError, match=r"resources must be a dict such as \{'GPU': 1\}"):
        da.downscale.sample(cm, scale=0.5, device="cpu", resources="GPU")


def test_device_auto_is_resolved_by_the_process_that_runs_the_task(rng, cm, monkeypatch):
    da = _coarse(rng).chunk(time=2)
    out = da.downscale.sample(cm, scale=0.5)  # device="auto": kept in the graph as "auto"
    from xdownscale.nn import device as nd

    seen = []
    real = nd.resolve_device
    monkeypatch.setattr(
        "xdownscale.nn.pipeline.resolve_device", lambda d: seen.append(d) or real("cpu")
    )
    out.compute()
    assert seen and set(seen) == {"auto"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_device_uses_the_gpu_and_agrees_with_the_cpu(rng, cm):
    da = _coarse(rng)
    gpu = da.downscale.sample(cm, scale=0.5, device="auto")
    cpu = da.downscale.sample(cm, scale=0.5, device="cpu")
    np.testing.assert_allclose(gpu.values, cpu.values, rtol=1e-3, atol=1e-4)
