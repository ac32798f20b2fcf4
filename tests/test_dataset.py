"""The verbs on a Dataset: which variables are processed, what is kept, errors, laziness."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdownscale as xd

from .conftest import raise_if_dask_computes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ds(rng, chunked=False, nt=3) -> xr.Dataset:
    """Precipitation (mm/h) and temperature (K) on a 4 km grid, a station count per time step."""
    y = xr.DataArray(np.arange(4) * 4.0, dims="y", attrs={"units": "km"})
    x = xr.DataArray(np.arange(4) * 4.0, dims="x", attrs={"units": "km"})
    time = pd.date_range("2001-01-01", periods=nt)
    coords = {"time": time, "y": y, "x": x}
    pr = rng.gamma(0.8, 1.5, (nt, 4, 4)).astype("float32")
    tas = (280 + rng.normal(size=(nt, 4, 4))).astype("float32")
    ds = xr.Dataset(
        {
            "pr": (("time", "y", "x"), pr, {"units": "mm/h"}),
            "tas": (("time", "y", "x"), tas, {"units": "K"}),
            "n_obs": ("time", np.arange(nt) + 10),
        },
        coords=coords,
        attrs={"title": "two fields and a count"},
    )
    return ds.chunk(time=1) if chunked else ds


def _same(a: xr.DataArray, b: xr.DataArray) -> None:
    """Identical but for the history's timestamp."""
    assert a.attrs.pop("history").split(": ", 1)[1] == b.attrs.pop("history").split(": ", 1)[1]
    xr.testing.assert_identical(a, b)


@pytest.mark.parametrize("chunked", [False, True])
def test_grid_verbs_process_every_spatial_variable_and_keep_the_rest(rng, chunked):
    ds = _ds(rng, chunked)
    with raise_if_dask_computes():
        out = ds.downscale.coarsen(2)
    assert set(out.data_vars) == {"pr", "tas", "n_obs"}
    xr.testing.assert_identical(out["pr"], xd.coarsen(ds["pr"], 2))
    xr.testing.assert_identical(out["tas"], xd.coarsen(ds["tas"], 2))
    xr.testing.assert_identical(out["n_obs"], ds["n_obs"])
    assert out.attrs["title"] == "two fields and a count"
    assert "coarsen of the Dataset variables ['pr', 'tas']" in out.attrs["history"]
    assert "history" not in ds.attrs  # the input is not modified
    low = ds.downscale.lowpass(wavelength=10.0, variables="tas")
    xr.testing.assert_identical(low["pr"], ds["pr"])
    xr.testing.assert_identical(low["tas"], xd.lowpass(ds["tas"], wavelength=10.0))


def test_psd_gives_one_spectrum_per_variable(rng):
    ds = _ds(rng)
    out = ds.downscale.psd(dim=["time"])
    assert set(out.data_vars) == {"pr", "tas", "n_obs"}
    assert out["pr"].dims == ("wavenumber",)
    xr.testing.assert_identical(out["tas"], xd.psd(ds["tas"], dim=["time"]).rename("tas"))


@pytest.mark.parametrize("chunked", [False, True])
def test_sample_takes_the_variables_the_model_accepts(rng, cm, chunked):
    ds = _ds(rng, chunked)
    # lazy in, lazy out (nothing computed); eager in, eager out (sampling.py chunks and computes)
    lazy = raise_if_dask_computes() if chunked else contextlib.nullcontext()
    with lazy, pytest.warns(UserWarning, match=r"left out .*\['tas'\]"):
        out = ds.downscale.sample(cm, scale=0.5, seed=3)
    assert (out["pr"].chunks is not None) == chunked
    # tas (K) is not precipitation: it cannot share the fine grid and is left out, with a warning
    assert set(out.data_vars) == {"pr", "n_obs"}
    assert out.sizes["x"] == 16
    expected = ds["pr"].downscale.sample(cm, scale=0.5, seed=3)
    _same(out["pr"].compute(), expected.compute())


def test_a_mapping_of_models_downscales_each_variable_with_its_own(rng, cm, white):
    ds = _ds(rng)
    out = ds.downscale.sample({"pr": cm, "tas": white}, scale=0.5, seed=1)
    assert set(out.data_vars) == {"pr", "tas", "n_obs"}
    _same(out["pr"], ds["pr"].downscale.sample(cm, scale=0.5, seed=1))
    _same(out["tas"], ds["tas"].downscale.sample(white, scale=0.5, seed=1))
    assert out["tas"].attrs["units"] == "K"
    # variables= narrows a mapping down
    with pytest.warns(UserWarning, match=r"left out the data variables \['pr'\]"):
        only = ds.downscale.sample({"pr": cm, "tas": white}, scale=0.5, seed=1, variables=["tas"])
    assert set(only.data_vars) == {"tas", "n_obs"}


def test_ensemble_statistics_are_named_after_the_variable(rng, cm):
    ds = _ds(rng)
    with pytest.warns(UserWarning, match="left out"):
        out = ds.downscale.ensemble(3, cm, scale=0.5, reduce=["mean", "std"], variables="pr")
    assert {"pr_mean", "pr_std", "n_obs"} <= set(out.data_vars)
    full = ds["pr"].downscale.ensemble(3, cm, scale=0.5, reduce=["mean", "std"])
    _same(out["pr_mean"], full["mean"].assign_attrs(full.attrs).rename("pr_mean"))


def test_qdm_matches_ref_and_hist_by_variable_name(rng):
    sim, ref, hist = (_ds(rng, nt=120) for _ in range(3))
    ref["tas"] = ref["tas"] + 2.0
    ref = ref.drop_vars("pr")  # pr has no reference: skipped, kept as it was
    out = sim.downscale.qdm(ref, hist, n_quantiles=10)
    _same(out["tas"], sim["tas"].downscale.qdm(ref["tas"], hist["tas"], n_quantiles=10))
    xr.testing.assert_identical(out["pr"], sim["pr"])
    with pytest.raises(ValueError, match="variable 'pr' cannot take qdm: no variable 'pr' in ref"):
        sim.downscale.qdm(ref, hist, variables=["pr"])


def test_choose_scale_gives_one_choice_per_variable(rng):
    ds = _ds(rng, nt=4)
    fine = ds.downscale.upsample(2, interpolation="bicubic")
    noise = xr.DataArray(rng.normal(size=(4, 8, 8)), dims=("time", "y", "x"))
    target = fine.assign(pr=fine.pr * np.exp(0.3 * noise), tas=fine.tas + 0.3 * noise)
    with pytest.warns(UserWarning, match="spectra never cross") as record:
        choices = ds.downscale.choose_scale(target, factor=2, variables=["pr", "tas"])
    # each warning says which variable it is about
    assert {str(w.message).split(":")[0] for w in record} == {"variable 'pr'", "variable 'tas'"}
    assert set(choices) == {"pr", "tas"}
    assert all(isinstance(c, xd.ScaleChoice) for c in choices.values())
    with pytest.warns(UserWarning, match="never cross"):
        expected = xd.choose_scale(ds["tas"], target["tas"], factor=2)
    assert choices["tas"].k_star == expected.k_star


def test_errors_name_the_candidates_and_why(rng, cm):
    ds = _ds(rng)
    with pytest.raises(
        ValueError,
        match=r"variables=\['rain'\] names \['rain'\], which the Dataset does not have; its data variables are \['pr', 'tas', 'n_obs'\]",
    ):
        ds.downscale.coarsen(2, variables=["rain"])
    with pytest.raises(
        ValueError,
        match=r"variable 'n_obs' cannot take coarsen: no two spatial dims \(dims \('time',\)\)",
    ):
        ds.downscale.coarsen(2, variables="n_obs")
    with pytest.raises(
        ValueError,
        match=r"no data variable of the Dataset can take sample \('tas': .*'K'.*; 'n_obs': no two spatial dims .*\); fix those, or name the variables",
    ):
        ds[["tas", "n_obs"]].downscale.sample(cm, scale=0.5)
    with pytest.raises(ValueError, match=r"model is a mapping without an entry for \['tas'\]"):
        ds.downscale.sample({"pr": cm}, variables=["pr", "tas"])
    with pytest.raises(ValueError, match="the Dataset is empty"):
        xr.Dataset().downscale.psd()


def test_a_reference_dataset_is_matched_by_variable_name(rng, cm):
    ds = _ds(rng)
    axes = {d: xr.DataArray(np.arange(32.0), dims=d, attrs={"units": "km"}) for d in "yx"}
    fine_pr = rng.gamma(0.8, 1.5, (4, 32, 32)).astype("float32")
    reference = xr.Dataset({"pr": (("time", "y", "x"), fine_pr, {"units": "mm/h"})}, coords=axes)
    with pytest.warns(UserWarning, match="left out"):
        out = ds.downscale.sample(cm, scale=0.5, reference=reference)
    assert "texture from a reference of 4 fields" in out["pr"].attrs["history"]
    _same(out["pr"], ds["pr"].downscale.sample(cm, scale=0.5, reference=reference["pr"]))
