"""xarray wrappers of the grid module: discovery, validation, lazy operations."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdownscale as xd
from xdownscale import np_grid

from .conftest import raise_if_dask_computes


def field(rng, shape=(3, 16, 24), dims=("time", "y", "x"), spacing=1000.0):
    ny, nx = shape[-2:]
    coords = {
        dims[-2]: (dims[-2], np.arange(ny) * spacing, {"units": "m"}),
        dims[-1]: (dims[-1], np.arange(nx) * spacing, {"units": "m"}),
    }
    return xr.DataArray(
        rng.normal(size=shape).astype("float32"), dims=dims, coords=coords, attrs={"units": "K"}
    )


# --- discovery ---------------------------------------------------------------------------


def test_cf_axis_attributes_win_over_names():
    da = xr.DataArray(
        np.zeros((2, 3, 4)),
        dims=("a", "b", "c"),
        coords={
            "b": ("b", np.arange(3.0), {"axis": "Y"}),
            "c": ("c", np.arange(4.0), {"standard_name": "projection_x_coordinate"}),
        },
    )
    assert xd.find_spatial_dims(da) == ("b", "c")


def test_standard_name_latitude_longitude_and_grid_rotated():
    da = xr.DataArray(
        np.zeros((3, 4)),
        dims=("r1", "r2"),
        coords={
            "r1": ("r1", np.arange(3.0), {"standard_name": "grid_latitude"}),
            "r2": ("r2", np.arange(4.0), {"standard_name": "grid_longitude"}),
        },
    )
    assert xd.find_spatial_dims(da) == ("r1", "r2")
    da = xr.DataArray(
        np.zeros((3, 4)),
        dims=("p", "q"),
        coords={
            "p": ("p", np.arange(3.0), {"units": "degrees_north"}),
            "q": ("q", np.arange(4.0), {"units": "degrees_east"}),
        },
    )
    assert xd.find_spatial_dims(da) == ("p", "q")


def test_fallback_names_and_override():
    da = xr.DataArray(np.zeros((2, 3, 4)), dims=("time", "south_north", "west_east"))
    assert xd.find_spatial_dims(da) == ("south_north", "west_east")
    assert xd.find_spatial_dims(da, spatial_dims=("west_east", "time")) == ("west_east", "time")


def test_no_spatial_dims_error():
    da = xr.DataArray(np.zeros((3, 4)), dims=("a", "b"))
    with pytest.raises(
        ValueError, match=r"could not find the spatial dims .*pass spatial_dims=\(y, x\)"
    ):
        xd.find_spatial_dims(da)


def test_one_d_input_error():
    with pytest.raises(ValueError, match="got a 1-D array"):
        xd.find_spatial_dims(xr.DataArray(np.zeros(5), dims="x"))


def test_override_errors():
    da = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"))
    with pytest.raises(ValueError, match=r"names \['lat'\] which the array does not have"):
        xd.find_spatial_dims(da, spatial_dims=("lat", "x"))
    with pytest.raises(ValueError, match="exactly two dims"):
        xd.find_spatial_dims(da, spatial_dims=("y",))
    with pytest.raises(ValueError, match="same dim twice"):
        xd.find_spatial_dims(da, spatial_dims=("y", "y"))


def test_ambiguous_axis_error():
    da = xr.DataArray(
        np.zeros((2, 3, 4)),
        dims=("a", "b", "c"),
        coords={
            "a": ("a", [0.0, 1.0], {"axis": "Y"}),
            "b": ("b", np.arange(3.0), {"axis": "Y"}),
            "c": ("c", np.arange(4.0), {"axis": "X"}),
        },
    )
    with pytest.raises(ValueError, match=r"several dims look like the Y axis: \['a', 'b'\]"):
        xd.find_spatial_dims(da)


def test_time_dim_cf_and_errors():
    t = xr.DataArray(
        np.zeros((3, 2, 2)),
        dims=("when", "y", "x"),
        coords={"when": pd.date_range("2000", periods=3)},
    )
    assert xd.find_time_dim(t) == "when"
    with pytest.raises(ValueError, match="could not find a unique time dim"):
        xd.find_time_dim(xr.DataArray(np.zeros((2, 2)), dims=("y", "x")))
    with pytest.raises(ValueError, match="dim='nope' is not a dim"):
        xd.find_time_dim(t, "nope")


def test_time_dim_cftime():
    cftime = pytest.importorskip("cftime")
    times = xr.date_range("2000-01-01", periods=4, calendar="noleap", use_cftime=True)
    da = xr.DataArray(np.zeros(4), dims="tt", coords={"tt": times})
    assert isinstance(da.tt.values[0], cftime.datetime)
    assert xd.find_time_dim(da) == "tt"


def test_grid_info_spacing_units_periodic():
    lon = np.arange(0, 360, 2.5)
    da = xr.DataArray(
        np.zeros((3, lon.size)),
        dims=("lat", "lon"),
        coords={"lat": [10.0, 7.5, 5.0], "lon": ("lon", lon, {"units": "degrees_east"})},
    )
    info = xd.grid_info(da)
    assert (info.dy, info.dx, info.units, info.periodic_x) == (2.5, 2.5, "degrees_east", True)
    assert info.spacing == 2.5
    regional = da.isel(lon=slice(0, 40))
    assert not xd.grid_info(regional).periodic_x


def test_non_monotonic_and_irregular_errors():
    da = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"), coords={"x": [0.0, 2.0, 1.0, 3.0]})
    with pytest.raises(
        ValueError, match=r"coordinate 'x' is not strictly monotonic .*da.sortby\('x'\)"
    ):
        xd.grid_info(da)
    da = xr.DataArray(np.zeros((3, 4)), dims=("y", "x"), coords={"x": [0.0, 1.0, 2.0, 4.0]})
    with pytest.raises(ValueError, match=r"coordinate 'x' is not regularly spaced .*interp"):
        xd.coarsen(da, 1)


# --- coarsen ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_coarsen_matches_core_and_is_lazy(rng, chunked):
    da = field(rng)
    src = da.chunk(time=1) if chunked else da
    with raise_if_dask_computes():
        out = xd.coarsen(src, (2, 4))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.values, np_grid.coarsen(da.values, (2, 4)))
    np.testing.assert_allclose(out.x.values, da.x.values.reshape(-1, 4).mean(1))
    assert out.attrs == da.attrs and out.dims == da.dims


def test_coarsen_transposed_dims_and_aux_coords(rng):
    da = field(rng).transpose("x", "time", "y")
    da = da.assign_coords(lat2d=(("y", "x"), rng.normal(size=(16, 24))))
    out = xd.coarsen(da, 4)
    assert out.dims == ("x", "time", "y")
    assert out.lat2d.shape == (4, 6)
    np.testing.assert_allclose(out.lat2d.values[0, 0], da.lat2d.values[:4, :4].mean())


def test_coarsen_errors(rng):
    da = field(rng)
    with pytest.raises(
        ValueError,
        match=r"factor 5 does not divide dim 'y' of size 16; crop first, e.g. da.isel\(y=slice\(0, 15\)\)",
    ):
        xd.coarsen(da, 5)
    with pytest.raises(
        ValueError,
        match=r"dim 'x' of da has 2 chunks; coarsening needs whole fields — call da.chunk\(x=-1\)",
    ):
        xd.coarsen(da.chunk(x=12), 2)
    with pytest.raises(ValueError, match="factor must be a positive integer"):
        xd.coarsen(da, 0)
    with pytest.raises(ValueError, match="factor must be a positive integer"):
        xd.coarsen(da, 2.0)
    with pytest.raises(TypeError, match="must hold real numbers"):
        xd.coarsen(da.astype(str), 2)


# --- upsample ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic"])
def test_upsample_lazy_and_coords(rng, chunked, method):
    da = field(rng, shape=(2, 4, 6))
    src = da.chunk(time=1) if chunked else da
    with raise_if_dask_computes():
        out = xd.upsample(src, 4, interpolation=method)
    assert out.shape == (2, 16, 24)
    # fine cell centres: c_i + d ((j + 0.5)/f - 0.5)
    np.testing.assert_allclose(out.x.values[:4], [-375.0, -125.0, 125.0, 375.0])
    np.testing.assert_allclose(xd.coarsen(out, 4).x, da.x)
    np.testing.assert_allclose(out.values, np_grid.upsample(da.values, (4, 4), method), rtol=1e-6)


def test_round_trips(rng):
    da = field(rng, shape=(2, 8, 8)).astype("float64")
    np.testing.assert_allclose(xd.coarsen(xd.upsample(da, 4, interpolation="nearest"), 4), da)
    np.testing.assert_allclose(xd.coarsen(xd.upsample(da, 4, conservative=True), 4), da, atol=1e-12)
    # a smooth field survives coarsen -> upsample closely
    yy, xx = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    smooth = xr.DataArray(
        np.sin(2 * np.pi * xx / 64) * np.cos(2 * np.pi * yy / 64), dims=("y", "x")
    )
    back = xd.upsample(xd.coarsen(smooth, 4), 4, interpolation="bicubic")
    # the block mean damps this wave by sinc(4/64)^2 = 0.987 (1.3 %), interpolation adds little
    assert float(np.abs(back - smooth).isel(y=slice(4, -4), x=slice(4, -4)).max()) < 0.025


def test_upsample_global_longitude_periodic():
    lon = np.arange(0, 360, 30.0)
    vals = np.cos(np.deg2rad(lon))
    da = xr.DataArray(vals[None, :], dims=("lat", "lon"), coords={"lat": [0.0], "lon": lon})
    out = xd.upsample(da, (1, 2))
    # the first fine cell (-7.5 deg) interpolates between 330 and 0 degrees
    assert float(out.isel(lat=0, lon=0)) == pytest.approx(0.75 * 1 + 0.25 * np.cos(np.deg2rad(330)))


def test_upsample_nan_mask(rng):
    da = field(rng, shape=(1, 6, 6))
    da[0, 2, 2] = np.nan
    out = xd.upsample(da, 2, interpolation="bicubic")
    assert int(out.isnull().sum()) == 4
    assert bool(out.isnull()[0, 4:6, 4:6].all())


def test_upsample_bad_method(rng):
    with pytest.raises(
        ValueError,
        match=r"interpolation='cubic' is not supported; use one of \['nearest', 'bilinear', 'bicubic'\]",
    ):
        xd.upsample(field(rng), 2, interpolation="cubic")


# --- lowpass ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_lowpass_wavelength_equals_cutoff(rng, chunked):
    da = field(rng, shape=(2, 32, 32))
    src = da.chunk(time=1) if chunked else da
    with raise_if_dask_computes():
        a = xd.lowpass(src, 0.125)
        b = xd.lowpass(src, wavelength=8000.0)
    np.testing.assert_allclose(a.values, b.values)
    # scales below the cutoff are gone (Hann window: no edge leakage in the check itself)
    before = xd.psd(da, taper="hann").sel(wavenumber=slice(0.2, None))
    after = xd.psd(a, taper="hann").sel(wavenumber=slice(0.2, None))
    assert float((after / before).max()) < 1e-3


def test_lowpass_errors(rng):
    da = field(rng, shape=(2, 32, 32))
    with pytest.raises(ValueError, match="exactly one of cutoff"):
        xd.lowpass(da)
    with pytest.raises(
        ValueError, match=r"cutoff must be in \(0, 0.5\] cycles per grid cell, got 0.7"
    ):
        xd.lowpass(da, 0.7)
    with pytest.raises(ValueError, match=r"from wavelength=100.0"):
        xd.lowpass(da, wavelength=100.0)
    with pytest.raises(ValueError, match="order must be a positive integer"):
        xd.lowpass(da, 0.2, order=0)
    nocoords = xr.DataArray(np.zeros((8, 8)), dims=("y", "x"))
    with pytest.raises(ValueError, match="wavelength= needs a regular grid"):
        xd.lowpass(nocoords, wavelength=3.0)


def test_add_history_prepends():
    attrs = xd.attrs.add_history({"history": "old line"}, "did a thing")
    first, second = attrs["history"].split("\n")
    assert "xdownscale" in first and first.endswith("did a thing") and second == "old line"
