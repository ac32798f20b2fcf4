"""Tests of the xarray/dask wrapper of entropic optimal-transport debiasing."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xdownscale
from xdownscale import ConvergenceWarning, OptimalTransportDebiaser, debias
from xdownscale import np_transport as nt

from .conftest import raise_if_dask_computes


def _field(rng, n, ny, nx, loc=0.0, scale=1.0, dims=("time", "y", "x")):
    coords = {dims[1]: np.arange(ny) + 0.5, dims[2]: np.arange(nx) + 0.5}
    base = rng.normal(size=(n, ny, nx))
    base[:, :, 1:] += 0.8 * base[:, :, :-1]  # spatial correlation
    return xr.DataArray(
        loc + scale * base, dims=dims, coords=coords, name="pr", attrs={"units": "mm"}
    )


@pytest.fixture
def trio(rng):
    hist = _field(rng, 200, 3, 4)
    ref = _field(rng, 180, 3, 4, loc=2.0, scale=1.5)
    sim = _field(rng, 60, 3, 4, loc=0.3)
    return sim, ref, hist


@pytest.mark.parametrize("chunked", [False, True])
def test_wrapper_equals_core_eager_and_dask(trio, chunked):
    sim, ref, hist = trio
    s = sim.chunk(time=25) if chunked else sim
    with raise_if_dask_computes():
        out = debias(s, ref, hist, reg=0.01)
    assert out.dims == sim.dims and out.attrs["units"] == "mm" and "debias" in out.attrs["history"]
    assert (out.chunks is not None) == chunked
    # the core, by hand
    Y = hist.values.reshape(200, -1)
    Z = ref.values.reshape(180, -1)
    c, sc = nt.standardization(Y, Z)
    ys, zs = (Y - c) / sc, (Z - c) / sc
    med = nt.median_cost(ys, zs)
    res = nt.sinkhorn(ys, zs, 0.01 * med, eps_start=med, tol=1e-4, max_iter=5000)
    expect = nt.entropic_map((sim.values.reshape(60, -1) - c) / sc, zs, res.g, res.eps) * sc + c
    np.testing.assert_allclose(out.values.reshape(60, -1), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out.x, sim.x)


def test_dask_result_does_not_depend_on_chunks_or_batches(trio):
    sim, ref, hist = trio
    ot = OptimalTransportDebiaser(reg=0.01).fit(ref, hist)
    a = ot.apply(sim).values
    b = ot.apply(sim.chunk(time=7), batch_size=3).values
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # the fitted arrays enter the graph once, not once per task
    graph = dict(ot.apply(sim.chunk(time=7)).data.__dask_graph__())
    holders = [k for k, v in graph.items() if len(pickle.dumps(v)) > ot.state_.z.nbytes]
    assert len(holders) == 1 and len(graph) > 20


def test_debias_corrects_mean_and_spread(trio):
    _, ref, hist = trio
    out = debias(hist, ref)  # default reg, hist = sim
    np.testing.assert_allclose(out.mean("time"), ref.mean("time"), atol=0.1)
    ratio = out.std("time") / ref.std("time")
    assert float(ratio.min()) > 0.85 and float(ratio.max()) < 1.05
    xr.testing.assert_allclose(hist.downscale.debias(ref), out)


def test_fine_ref_is_coarsened_with_block_mean(rng, trio):
    sim, _, hist = trio
    fine = _field(rng, 150, 6, 8, loc=1.0)
    fine = fine.assign_coords(y=np.arange(6) / 2 + 0.25, x=np.arange(8) / 2 + 0.25)
    ot = OptimalTransportDebiaser(reg=0.01).fit(fine, hist)
    assert list(ot.state_.attrs["coarsen_factor"]) == [2, 2]
    coarse = fine.coarsen(y=2, x=2).mean()
    xr.testing.assert_allclose(
        ot.apply(sim), OptimalTransportDebiaser(reg=0.01).fit(coarse, hist).apply(sim)
    )


def test_nan_cells_and_empty_snapshots(trio):
    sim, ref, hist = trio
    hist = hist.copy()
    hist[5, 1, 2] = np.nan  # cell (1, 2) is dropped from the features
    hist[7] = np.nan  # an all-NaN snapshot is left out
    sim = sim.copy()
    sim[3, 0, 0] = np.nan  # this snapshot cannot be mapped
    ot = OptimalTransportDebiaser(reg=0.01).fit(ref, hist)
    a = ot.state_.attrs
    assert a["n_hist"] == 199 and a["n_dropped"] == 1 and int(ot.state_.mask.sum()) == 11
    out = ot.apply(sim)
    assert bool(out[:, 1, 2].isnull().all())
    assert bool(out[3].isnull().all())
    assert int(out.isnull().sum()) == 60 + 11


def test_save_load_round_trip(tmp_path, trio):
    sim, ref, hist = trio
    ot = OptimalTransportDebiaser(reg=0.01, n_samples=150, seed=3).fit(ref, hist)
    path = tmp_path / "map.nc"
    ot.save(path)
    back = OptimalTransportDebiaser.open(path)
    xr.testing.assert_identical(back.apply(sim).drop_attrs(), ot.apply(sim).drop_attrs())
    a, b = ot.state_.attrs, back.state_.attrs
    assert (b["n_iter"], bool(b["converged"]), list(b["coarsen_factor"])) == (
        a["n_iter"],
        True,
        [1, 1],
    )
    assert back.n_samples == 150 and b["n_hist"] == 150 and "n=150" in repr(back)
    assert back.apply(sim).attrs["units"] == "mm"
    zarr_path = tmp_path / "map.zarr"
    ot.save(zarr_path)
    again = OptimalTransportDebiaser.open(zarr_path)
    xr.testing.assert_identical(again.apply(sim).drop_attrs(), ot.apply(sim).drop_attrs())
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(ValueError, match="is not a fitted OptimalTransportDebiaser state"):
        OptimalTransportDebiaser.open(tmp_path / "other.nc")


def test_subsampling_is_seeded(trio):
    sim, ref, hist = trio
    a = OptimalTransportDebiaser(reg=0.01, n_samples=100, seed=1).fit(ref, hist).apply(sim)
    b = OptimalTransportDebiaser(reg=0.01, n_samples=100, seed=1).fit(ref, hist).apply(sim)
    c = OptimalTransportDebiaser(reg=0.01, n_samples=100, seed=2).fit(ref, hist).apply(sim)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a, c)


def test_float32_and_extra_sim_dims(trio):
    sim, ref, hist = trio
    ens = xr.concat([sim, sim + 0.1], dim="member").astype(np.float32)
    out = debias(ens.chunk(time=20), ref, hist, reg=0.01)
    assert out.dtype == np.float32 and out.dims == ("member", "time", "y", "x")
    one = debias(sim.astype(np.float32), ref, hist, reg=0.01)
    np.testing.assert_allclose(out[0], one, rtol=1e-6)


@settings(max_examples=8, deadline=None)
@given(shift=st.floats(-100, 100), scale=st.floats(0.01, 100))
def test_map_is_equivariant_under_affine_change_of_units(shift, scale):
    rng = np.random.default_rng(0)
    hist, ref, sim = _field(rng, 60, 2, 2), _field(rng, 50, 2, 2, 1.0, 2.0), _field(rng, 9, 2, 2)
    base = debias(sim, ref, hist, reg=0.01, tol=1e-9)
    moved = debias(
        sim * scale + shift, ref * scale + shift, hist * scale + shift, reg=0.01, tol=1e-9
    )
    np.testing.assert_allclose(
        moved, base * scale + shift, rtol=1e-6, atol=1e-6 * (abs(shift) + scale)
    )


def test_not_converged_warns(trio):
    _, ref, hist = trio
    with pytest.warns(ConvergenceWarning, match=r"did not converge: marginal error .* > tol"):
        ot = OptimalTransportDebiaser(max_iter=3, tol=1e-12).fit(ref, hist)
    assert not ot.state_.attrs["converged"] and ot.state_.attrs["n_iter"] == 3


def test_bad_inputs(rng, trio, tmp_path):
    sim, ref, hist = trio
    with pytest.raises(ValueError, match=r"is not the model grid \(3 x 4.*nor finer by an integer"):
        debias(sim, _field(rng, 50, 7, 7))
    shifted = ref.assign_coords(x=ref.x + 0.5)
    with pytest.raises(ValueError, match="misaligned along 'x'"):
        debias(sim, shifted)
    with pytest.raises(ValueError, match=r"hist has 1 usable snapshot.* at least 2"):
        debias(sim, ref, hist.isel(time=[0]))
    with pytest.raises(ValueError, match="every snapshot of ref along 'time' is all-NaN"):
        debias(sim, ref * np.nan, hist)
    nanny = hist.copy()
    nanny[0, :, :2] = np.nan
    nanny[1, :, 2:] = np.nan
    with pytest.raises(ValueError, match="no cell of the 3 x 4 grid is finite in every snapshot"):
        debias(sim, ref, nanny)
    with pytest.raises(
        ValueError,
        match=r"needs about 621.88 KiB, more than the 9.77 KiB available; fit on a seeded subsample of about n_samples=16 snapshots",
    ):
        debias(sim, ref, hist, max_memory=10_000)
    debias(sim, ref, hist, max_memory=10_000, n_samples=16)  # the suggestion fits
    with pytest.raises(ValueError, match=r"raise max_memory: not even 2 snapshots fit"):
        debias(sim, ref, hist, max_memory=100)
    with pytest.raises(
        MemoryError, match=r"fit on a seeded subsample of about n_samples=\d+ snapshots"
    ):
        debias(_field(rng, 3000, 3, 4), _field(rng, 3000, 3, 4), max_memory=40 * 2**20)
    with pytest.raises(ValueError, match=r"besides the spatial dims .* stack them"):
        debias(sim, ref.expand_dims(member=2), hist)
    with pytest.raises(ValueError, match="rename ref's"):
        debias(sim, ref.rename(y="lat", x="lon"), hist)
    with pytest.raises(TypeError, match=r"ref must be an xarray\.DataArray, got ndarray"):
        debias(sim, ref.values, hist)
    with pytest.raises(ValueError, match="reg must be a positive number"):
        OptimalTransportDebiaser(reg=-1.0)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2, got 1"):
        OptimalTransportDebiaser(n_samples=1)
    with pytest.raises(ValueError, match="device='tpu' is not supported"):
        OptimalTransportDebiaser(device="tpu")
    with pytest.raises(
        ValueError, match=r"standardize='pca' is not supported; use one of \['global', 'cell'\]"
    ):
        OptimalTransportDebiaser(standardize="pca")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not fitted yet"):
        OptimalTransportDebiaser().apply(sim)
    ot = OptimalTransportDebiaser(reg=0.01).fit(ref, hist)
    with pytest.raises(ValueError, match="but the map was fit on 3 x 4"):
        ot.apply(sim.isel(x=slice(0, 2)))
    with pytest.raises(ValueError, match="coordinates along 'y' differ"):
        ot.apply(sim.assign_coords(y=sim.y + 10))
    with pytest.raises(ValueError, match=r"call sim.chunk\(y=-1\)"):
        ot.apply(sim.chunk(y=1))


def test_import_does_not_load_ot_or_torch():
    code = "import sys, xdownscale; print('ot' in sys.modules, 'torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split()[0] == "False"
    assert xdownscale.debias is debias


def test_debias_converts_compatible_units_and_refuses_others():
    rng = np.random.default_rng(0)

    def f(n, loc=0.0, scale=1.0, units="mm"):
        base = rng.normal(size=(n, 3, 4))
        base[:, :, 1:] += 0.8 * base[:, :, :-1]
        return xr.DataArray(
            loc + scale * base,
            dims=("time", "y", "x"),
            coords={"y": np.arange(3) + 0.5, "x": np.arange(4) + 0.5},
            attrs={"units": units},
        )

    hist, ref, sim = f(200), f(180, 2.0, 1.5), f(60, 0.3)
    mm = xdownscale.debias(sim, ref, hist, reg=0.05)
    cm = xdownscale.debias(
        (sim / 10).assign_attrs(units="cm"), ref, (hist / 10).assign_attrs(units="cm"), reg=0.05
    )
    np.testing.assert_allclose(cm.values, mm.values, atol=1e-10)
    assert cm.attrs["units"] == "mm"  # the result carries ref's units
    with pytest.raises(ValueError, match=r"units 'K' of hist .* cannot be converted to 'mm'"):
        xdownscale.debias(sim, ref, hist.assign_attrs(units="K"), reg=0.05)
    with pytest.raises(ValueError, match=r"hist has no 'units' attribute"):
        xdownscale.debias(sim, ref, hist.drop_attrs(), reg=0.05)
