"""The accessor: registration, cheap import, one call per verb with the wrapper's signature."""

import inspect
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdownscale as xd
from xdownscale import accessor

# verb -> the wrapper it calls (its first parameter is the array the accessor is on)
WRAPPERS = {
    "coarsen": xd.coarsen,
    "upsample": xd.upsample,
    "lowpass": xd.lowpass,
    "psd": xd.psd,
    "choose_scale": xd.choose_scale,
    "qdm": xd.qdm,
    "debias": xd.debias,
    "sample": xd.sample,
    "ensemble": xd.ensemble,
}


def test_import_does_not_import_torch_or_ot():
    code = "import sys, xarray, xdownscale; print('torch' in sys.modules, 'ot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_verb_has_an_accessor_method_and_nothing_else():
    public = {n for n in vars(accessor.DownscaleAccessor) if not n.startswith("_")}
    assert public == set(WRAPPERS)


@pytest.mark.parametrize("verb", sorted(WRAPPERS))
def test_accessor_method_has_exactly_the_wrappers_parameters_and_defaults(verb):
    method = inspect.signature(getattr(accessor.DownscaleAccessor, verb))
    wrapper = inspect.signature(WRAPPERS[verb])
    m_params = list(method.parameters.values())[1:]  # drop self
    w_params = list(wrapper.parameters.values())[1:]  # drop the array
    assert [(p.name, p.kind, p.default) for p in m_params] == [
        (p.name, p.kind, p.default) for p in w_params
    ]
    assert [str(p.annotation) for p in m_params] == [str(p.annotation) for p in w_params]
    assert str(method.return_annotation) == str(wrapper.return_annotation)


def test_the_dataset_accessor_has_the_same_verbs():
    public = {n for n in vars(accessor.DatasetDownscaleAccessor) if not n.startswith("_")}
    assert public == set(WRAPPERS)
    assert isinstance(xr.Dataset().downscale, xd.DatasetDownscaleAccessor)


@pytest.mark.parametrize("verb", sorted(WRAPPERS))
def test_dataset_methods_take_the_dataarray_parameters_and_variables(verb):
    ds_params = list(
        inspect.signature(getattr(accessor.DatasetDownscaleAccessor, verb)).parameters.values()
    )
    da_params = list(
        inspect.signature(getattr(accessor.DownscaleAccessor, verb)).parameters.values()
    )
    assert [(p.name, p.kind, p.default) for p in ds_params] == [
        (p.name, p.kind, p.default) for p in da_params
    ] + [("variables", inspect.Parameter.KEYWORD_ONLY, None)]
    for p, q in zip(ds_params, da_params, strict=False):
        if p.name in ("ref", "hist", "target", "reference"):  # a Dataset matched by name
            assert str(p.annotation) == str(q.annotation).replace(
                "xr.DataArray", "xr.Dataset | xr.DataArray"
            )
        else:
            assert str(p.annotation) == str(q.annotation)
    doc = getattr(accessor.DatasetDownscaleAccessor, verb).__doc__
    assert f":func:`xdownscale.{verb}`" in doc and "variables :" in doc


@pytest.mark.parametrize("verb", sorted(WRAPPERS))
def test_accessor_methods_document_where_the_parameters_are(verb):
    doc = getattr(accessor.DownscaleAccessor, verb).__doc__
    assert f":func:`xdownscale.{verb}`" in doc


def _field(rng, chunked):
    da = xr.DataArray(rng.normal(size=(3, 16, 16)), dims=("time", "y", "x"))
    return da.chunk(time=1) if chunked else da


@pytest.mark.parametrize("chunked", [False, True])
def test_grid_and_spectra_verbs_equal_the_functions(rng, chunked):
    da = _field(rng, chunked)
    assert isinstance(da.downscale, xd.DownscaleAccessor)
    xr.testing.assert_identical(da.downscale.psd(), xd.psd(da))
    xr.testing.assert_identical(da.downscale.coarsen(2), xd.coarsen(da, 2))
    xr.testing.assert_identical(
        da.downscale.upsample(2, interpolation="bicubic"),
        xd.upsample(da, 2, interpolation="bicubic"),
    )
    xr.testing.assert_identical(da.downscale.lowpass(0.2), xd.lowpass(da, 0.2))
    with pytest.warns(UserWarning, match="never cross"):
        c = da.downscale.choose_scale(da * 2, k_max=0.3)
    with pytest.warns(UserWarning, match="never cross"):
        assert c.k_star == xd.choose_scale(da, da * 2, k_max=0.3).k_star
    assert np.isfinite(c.sigma_star)


@pytest.mark.parametrize("chunked", [False, True])
def test_qdm_and_debias_verbs_equal_the_functions(rng, chunked):
    t = pd.date_range("2000-01-01", periods=400)

    def series(mu):
        da = xr.DataArray(
            rng.normal(mu, 1.0, (400, 2, 2)),
            dims=("time", "y", "x"),
            coords={"time": t},
            attrs={"units": "K"},
        )
        return da.chunk(y=1) if chunked else da

    sim, ref, hist = series(2.0), series(1.0), series(0.0)
    out = sim.downscale.qdm(ref, hist, group="time.month", n_quantiles=10)
    xr.testing.assert_identical(
        out.drop_attrs(), xd.qdm(sim, ref, hist, group="time.month", n_quantiles=10).drop_attrs()
    )
    assert (out.chunks is not None) == chunked
    snaps = sim.chunk(time=100, y=-1) if chunked else sim  # debias maps whole fields
    deb = snaps.downscale.debias(ref, hist, reg=0.01)
    xr.testing.assert_identical(
        deb.drop_attrs(), xd.debias(snaps, ref, hist, reg=0.01).drop_attrs()
    )


@pytest.mark.parametrize("chunked", [False, True])
def test_sample_and_ensemble_verbs_equal_the_functions(chunked, one_torch_thread):
    torch = pytest.importorskip("torch")
    from xdownscale.nn import DownscalingModel, GaussianDenoiser

    den = GaussianDenoiser(torch.zeros(1, 8, 8), torch.eye(64), parameterisation="consistency")
    model = DownscalingModel(den, {"name": "white", "factors": (4,)})
    coarse = xr.DataArray(np.ones((3, 2, 2)), dims=("time", "y", "x"))
    coarse = coarse.chunk(time=1) if chunked else coarse
    kw = {"scale": 1.0, "device": "cpu", "seed": 4}
    a = coarse.downscale.sample(model, **kw)
    xr.testing.assert_identical(a.drop_attrs(), xd.sample(coarse, model, **kw).drop_attrs())
    e = coarse.downscale.ensemble(3, model, **kw)
    xr.testing.assert_identical(e.drop_attrs(), xd.ensemble(coarse, 3, model, **kw).drop_attrs())
    np.testing.assert_array_equal(e.isel(realization=0).values, a.values)
    s = coarse.downscale.ensemble(3, model, reduce=["mean"], **kw)
    want = e.astype("float64").mean("realization").values
    np.testing.assert_allclose(s["mean"].values, want, rtol=1e-6, atol=1e-7)
