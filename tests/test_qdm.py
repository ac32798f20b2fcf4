"""Tests of the xarray/dask QDM wrapper, the accessor, persistence and parity with xsdba."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pytest
import xarray as xr

import xdownscale  # registers .downscale
from xdownscale import np_qdm
from xdownscale.qdm import QuantileDeltaMapping, qdm

from .conftest import raise_if_dask_computes, shared_file


def _series(values, calendar="noleap", start=2000, dims=("x", "time"), units="K"):
    n_t = values.shape[dims.index("time")]
    t = xr.date_range(f"{start}-01-01", periods=n_t, freq="D", calendar=calendar, use_cftime=True)
    return xr.DataArray(values, dims=dims, coords={"time": t}, attrs={"units": units})


@pytest.fixture
def trio(rng):
    n = 4 * 365
    ref = _series(rng.normal(2.0, 1.5, (3, n)).astype(np.float32), start=1981)
    hist = _series(rng.normal(0.0, 1.0, (3, n)).astype(np.float32), start=1981)
    sim = _series(rng.normal(1.0, 1.2, (3, 3 * 365)).astype(np.float32), start=2041)
    return ref, hist, sim


def _core(ref, hist, sim, kind="additive", n=50, group="time", interp="nearest", window=1):
    prop = group.partition(".")[2]
    lab = (
        (lambda d: np.zeros(d.sizes["time"], int))
        if not prop
        else (lambda d: getattr(d.time.dt, "month" if prop == "month" else prop).values)
    )
    groups = np.arange(1, 13) if prop == "month" else np.array([0])
    af, _, _ = np_qdm.fit(
        ref.values,
        hist.values,
        ref_labels=lab(ref),
        hist_labels=lab(hist),
        groups=groups,
        n_quantiles=n,
        kind=kind,
        window=window,
    )
    return np_qdm.adjust(
        sim.values, af, sim_labels=lab(sim), groups=groups, kind=kind, interp=interp, window=window
    )


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("group", ["time", "time.month"])
def test_wrapper_equals_core_eager_and_dask(trio, chunked, group):
    ref, hist, sim = trio
    want = _core(ref, hist, sim, group=group)
    if chunked:
        ref, hist, sim = ref.chunk(x=1, time=400), hist.chunk(x=2), sim.chunk(x=1, time=300)
        with raise_if_dask_computes():
            out = qdm(sim, ref, hist, group=group)
        assert isinstance(out.data, dask.array.Array)
    else:
        out = qdm(sim, ref, hist, group=group)
    np.testing.assert_array_equal(out.values, want)
    assert out.dtype == np.float32 and out.dims == sim.dims


def test_accessor_matches_function_and_keeps_attrs(trio):
    ref, hist, sim = trio
    sim = sim.assign_attrs(long_name="max temperature", history="made by hand")
    out = sim.downscale.qdm(ref, hist, kind="additive", n_quantiles=20, group="time.month")
    np.testing.assert_array_equal(
        out.values, qdm(sim, ref, hist, n_quantiles=20, group="time.month").values
    )
    assert out.attrs["long_name"] == "max temperature" and out.attrs["units"] == "K"
    first, second = out.attrs["history"].split("\n")
    assert "xdownscale" in first and "quantile delta mapping" in first
    assert "kind='additive'" in first and "n_quantiles=20" in first and "time.month" in first
    assert xdownscale.__version__ in first and second == "made by hand"


def test_dims_in_any_order_and_lazy_ref(trio):
    ref, hist, sim = trio
    want = qdm(sim, ref, hist).values
    out = qdm(sim.transpose("time", "x"), ref.chunk(x=1), hist.transpose("time", "x"))
    assert out.dims == ("time", "x") and isinstance(out.data, dask.array.Array)
    np.testing.assert_array_equal(out.transpose("x", "time").values, want)


def test_extra_sim_dims_broadcast(trio):
    ref, hist, sim = trio
    ens = xr.concat([sim, sim + 1], dim="member")
    out = qdm(ens, ref, hist)
    np.testing.assert_array_equal(out.isel(member=0).values, qdm(sim, ref, hist).values)


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "standard"])
@pytest.mark.parametrize("group", ["time.month", "time.season", "time.dayofyear"])
def test_calendars_and_groups(rng, calendar, group):
    n = 3 * 366
    hist = _series(rng.normal(size=(2, n)), calendar=calendar)
    ref = hist + 3.0
    sim = _series(rng.normal(size=(2, n)), calendar=calendar, start=2050)
    out = qdm(sim, ref, hist, group=group, window=15 if group.endswith("dayofyear") else None)
    np.testing.assert_allclose(out.values, sim.values + 3.0, rtol=1e-12)  # af == 3 exactly


def test_season_matches_numpy_grouping(trio):
    ref, hist, sim = trio
    out = qdm(sim, ref, hist, group="time.season", n_quantiles=10)
    m = QuantileDeltaMapping(group="time.season", n_quantiles=10).fit(ref, hist)
    assert m.state_.group.attrs["labels"] == "DJF MAM JJA SON"
    djf = sim.time.dt.month.isin([12, 1, 2])
    part = sim.where(djf, drop=True)
    m2 = QuantileDeltaMapping(n_quantiles=10).fit(
        ref.where(ref.time.dt.month.isin([12, 1, 2]), drop=True),
        hist.where(hist.time.dt.month.isin([12, 1, 2]), drop=True),
    )
    np.testing.assert_allclose(out.where(djf, drop=True).values, m2.apply(part).values)


def test_units_flux_rate_and_temperature(rng):
    n = 2000
    flux = _series(rng.gamma(0.5, 3e-5, (2, n)), units="kg m-2 s-1")
    ref = _series(rng.gamma(0.5, 3.0, (2, n)), units="mm/day")
    sim = _series(rng.gamma(0.5, 4e-5, (2, n)), units="kg m-2 s-1")
    out = qdm(sim, ref, flux, kind="multiplicative")
    assert out.attrs["units"] == "mm/day"
    conv = lambda d, f, u: d.copy(data=d.values * f).assign_attrs(units=u)  # noqa: E731
    want = qdm(
        conv(sim, 86400.0, "mm/day"), ref, conv(flux, 86400.0, "mm/day"), kind="multiplicative"
    )
    np.testing.assert_allclose(out.values, want.values, rtol=1e-9)
    per_s = qdm(sim, ref, flux, kind="multiplicative", units="mm s-1")
    np.testing.assert_allclose(per_s.values * 86400.0, out.values, rtol=1e-9)
    assert per_s.attrs["units"] == "mm s-1"
    tref = _series(rng.normal(10, 3, (2, n)), units="degC")
    thist = _series(rng.normal(280, 3, (2, n)), units="K")
    tsim = _series(rng.normal(285, 3, (2, n)), units="K")
    out_c = qdm(tsim, tref, thist)
    assert out_c.attrs["units"] == "degC"
    out_k = qdm(tsim, tref.copy(data=tref.values + 273.15).assign_attrs(units="K"), thist)
    np.testing.assert_allclose(out_c.values + 273.15, out_k.values, rtol=1e-12)


def test_nan_handling_without_warnings(trio):
    ref, hist, sim = trio
    ref = ref.copy()
    sim = sim.copy()
    ref[0, ::7] = np.nan
    ref[1] = np.nan  # all-NaN cell
    sim[2, 10] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = qdm(sim, ref, hist).values
        out_d = qdm(sim.chunk(x=1), ref.chunk(x=1), hist).values
    assert np.isnan(out[1]).all() and np.isnan(out[2, 10])
    assert np.isfinite(out[0]).all() and np.isfinite(np.delete(out[2], 10)).all()
    np.testing.assert_array_equal(out, out_d)


def test_multiplicative_dry_days(rng):
    n = 3 * 365
    wet = lambda p, s, shape: np.where(rng.random(shape) < p, 0.0, rng.gamma(0.6, s, shape))  # noqa: E731
    ref = _series(wet(0.5, 4.0, (4, n)), units="mm d-1")
    hist = _series(wet(0.8, 3.0, (4, n)), units="mm d-1")
    sim = _series(wet(0.7, 3.0, (4, n)), units="mm d-1", start=2050)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = qdm(sim, ref, hist, kind="multiplicative", group="time.month")
        a = qdm(sim, ref, hist, kind="multiplicative", dry_threshold="0.1 mm/day", seed=7)
        b = qdm(
            sim.chunk(x=1),
            ref.chunk(x=3),
            hist.chunk(x=2),
            kind="multiplicative",
            dry_threshold=0.1,
            seed=7,
        )
        c = qdm(sim, ref, hist, kind="multiplicative", dry_threshold=0.1, seed=8)
    assert np.isfinite(plain).all() and np.isfinite(a).all()
    np.testing.assert_array_equal(a.values, b.values)  # seeded, chunking-independent
    assert not np.array_equal(a.values, c.values)
    assert ((a.values == 0) | (a.values >= 0.1)).all()
    assert "dry_threshold=0.1 mm d-1" in a.attrs["history"]


def test_dry_threshold_in_flux_units(rng):
    n = 1000
    ref = _series(np.where(rng.random((1, n)) < 0.5, 0.0, 1.0), units="kg m-2 s-1")
    m = QuantileDeltaMapping(kind="multiplicative", dry_threshold="0.864 mm/day").fit(ref, ref)
    assert m.state_.attrs["dry_threshold"] == pytest.approx(1e-5)


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf", "scipy"])
def test_save_load_netcdf_roundtrip(trio, tmp_path, engine):
    pytest.importorskip({"netcdf4": "netCDF4", "h5netcdf": "h5py", "scipy": "scipy"}[engine])
    ref, hist, sim = trio
    m = QuantileDeltaMapping(kind="additive", n_quantiles=30, group="time.month").fit(
        ref.chunk(x=1), hist
    )
    path = tmp_path / "qdm.nc"
    m.save(path, engine=engine)
    m2 = QuantileDeltaMapping.open(path, engine=engine)
    assert (m2.kind, m2.group, m2.n_quantiles, m2.units) == ("additive", "time.month", 30, "K")
    np.testing.assert_array_equal(
        m.apply(sim, interp="linear").values, m2.apply(sim, interp="linear").values
    )
    assert repr(m2).startswith("<QuantileDeltaMapping (fitted) kind='additive'")
    assert "groups=12" in repr(m2)
    lo, hi = float(m.state_["af"].min()), float(m.state_["af"].max())
    assert f"factors={lo:.3g} .. {hi:.3g}, median " in repr(m2) and repr(m2).endswith(" K>")
    assert "<table>" in m2._repr_html_() and "factors" in m2._repr_html_()


def test_save_load_zarr_roundtrip(trio, tmp_path):
    ref, hist, sim = trio
    ref, hist, sim = abs(ref), abs(hist), abs(sim)  # multiplicative: a ratio scale
    m = QuantileDeltaMapping(kind="multiplicative", dry_threshold=0.5).fit(ref, hist)
    try:
        import zarr  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install zarr"):
            m.save(tmp_path / "qdm.zarr")
        return
    m.save(tmp_path / "qdm.zarr")
    m2 = QuantileDeltaMapping.open(tmp_path / "qdm.zarr")
    assert m2.state_.attrs["dry_threshold"] == 0.5
    np.testing.assert_array_equal(m.apply(sim).values, m2.apply(sim).values)


def test_doy_window_graph_stays_small(rng):
    n = 5 * 365
    ref = _series(rng.normal(size=(8, 6, n)), dims=("y", "x", "time")).chunk(y=2, x=6)
    sim = ref.chunk(time=365)  # several time chunks: rechunked per spatial block
    small = qdm(sim, ref, ref, group="time.dayofyear", window=3)
    big = qdm(sim, ref, ref, group="time.dayofyear", window=61)
    n_small, n_big = len(dict(small.__dask_graph__())), len(dict(big.__dask_graph__()))
    assert n_small == n_big  # the window never enters the graph
    n_blocks = 4
    n_inputs = 4 * 5 + 4 + 4  # chunks of sim, ref and hist: the lazy +-inf check, one task each
    assert n_big <= 12 * n_blocks + 5 * 6 + n_inputs  # a few tasks per block and input chunk
    np.testing.assert_allclose(big.values, ref.values, rtol=1e-12)


def test_fitted_state_contents(trio):
    ref, hist, _ = trio
    m = QuantileDeltaMapping(n_quantiles=10, group="time.month").fit(ref, hist)
    assert m.state_.af.dims == ("x", "group", "quantiles")
    np.testing.assert_allclose(m.state_.quantiles, np_qdm.equally_spaced_nodes(10))
    np.testing.assert_allclose(m.state_.af, m.state_.ref_q - m.state_.hist_q)
    jan = ref.time.dt.month == 1
    np.testing.assert_allclose(
        m.state_.ref_q.sel(group=1).isel(x=0),
        np.quantile(
            ref.isel(x=0).where(jan, drop=True).values.astype(float),
            np_qdm.equally_spaced_nodes(10),
        ),
        rtol=1e-6,
    )


# ----------------------------------------------------------------------------- errors


def test_errors(trio):
    ref, hist, sim = trio
    with pytest.raises(TypeError, match=r"must be an xarray.DataArray, got ndarray"):
        qdm(sim.values, ref, hist)
    with pytest.raises(
        ValueError, match=r"kind='\+' is not supported; use one of \['additive', 'multiplicative'\]"
    ):
        qdm(sim, ref, hist, kind="+")
    with pytest.raises(ValueError, match=r"group='time.week' is not supported"):
        qdm(sim, ref, hist, group="time.week")
    with pytest.raises(ValueError, match=r"window must be a positive odd integer.*got 4"):
        qdm(sim, ref, hist, group="time.dayofyear", window=4)
    with pytest.raises(ValueError, match=r"window=5 is only used with group='time.dayofyear'"):
        qdm(sim, ref, hist, group="time.month", window=5)
    with pytest.raises(ValueError, match=r"n_quantiles must be an integer >= 1, got 0"):
        qdm(sim, ref, hist, n_quantiles=0)
    with pytest.raises(ValueError, match=r"interp='cubic' is not supported"):
        qdm(sim, ref, hist, interp="cubic")
    with pytest.raises(ValueError, match=r"extrapolation='linear' is not supported"):
        qdm(sim, ref, hist, extrapolation="linear")
    with pytest.raises(ValueError, match=r"dry_threshold=0.1 is only used with kind='multipl"):
        qdm(sim, ref, hist, dry_threshold=0.1)
    with pytest.raises(ValueError, match=r"dry_threshold must be positive"):
        qdm(sim, ref, hist, kind="multiplicative", dry_threshold=-1.0)
    with pytest.raises(TypeError, match=r"dry_threshold must be a number"):
        qdm(sim, ref, hist, kind="multiplicative", dry_threshold=[1])
    with pytest.raises(TypeError, match=r"seed must be an integer >= 0, got float 1.5"):
        qdm(sim, ref, hist, seed=1.5)
    with pytest.raises(ValueError, match=r"units 'mm/day' of hist .* cannot be converted to 'K'"):
        qdm(sim, ref, hist.assign_attrs(units="mm/day"))
    with pytest.raises(ValueError, match=r"units 'bogus_unit' of sim are not understood"):
        qdm(sim.assign_attrs(units="bogus_unit"), ref, hist)
    with pytest.raises(ValueError, match=r"ref has units 'K' but hist has no 'units'"):
        hist_nounits = hist.copy()
        hist_nounits.attrs = {}
        qdm(sim, ref, hist_nounits)
    with pytest.raises(ValueError, match=r"ref has non-time dims \['x'\] but hist has \['y'\]"):
        qdm(sim, ref, hist.rename(x="y"))
    with pytest.raises(ValueError, match=r"could not find a unique time dim"):
        qdm(sim, ref, hist.rename(time="step").drop_vars("step"))
    with pytest.raises(ValueError, match=r"needs dates along dim 'time' of ref"):
        qdm(sim, ref.assign_coords(time=np.arange(ref.sizes["time"])), hist, group="time.month")
    with pytest.raises(ValueError, match=r"different coordinates along their non-time dims"):
        qdm(sim, ref.assign_coords(x=[0, 1, 2]), hist.assign_coords(x=[5, 6, 7]))
    with pytest.raises(ValueError, match=r"the fitted state has dims \['x'\] that sim"):
        qdm(sim.isel(x=0), ref, hist)
    with pytest.raises(TypeError, match=r"sim must hold real numbers"):
        qdm(sim.astype(str), ref, hist)


def test_error_units_on_sim_only(trio):
    ref, hist, sim = trio
    r, h = ref.copy(), hist.copy()
    r.attrs, h.attrs = {}, {}
    with pytest.raises(ValueError, match=r"sim has units 'K' .* but ref/hist had none"):
        qdm(sim, r, h)
    out = qdm(sim.copy().drop_attrs(), r, h)  # no units anywhere: no conversion, no units attr
    assert "units" not in out.attrs


def test_error_doy_labels_missing(rng):
    hist = _series(rng.normal(size=(1, 3 * 360)), calendar="360_day")
    sim = _series(rng.normal(size=(1, 3 * 365)), calendar="noleap", start=2050)
    with pytest.raises(ValueError, match=r"sim has dayofyear labels \[361, 362"):
        qdm(sim, hist, hist, group="time.dayofyear")


def test_error_not_a_state():
    with pytest.raises(ValueError, match=r"not a fitted QuantileDeltaMapping state"):
        QuantileDeltaMapping.from_dataset(xr.Dataset())
    with pytest.raises(ValueError, match=r"not fitted yet; call .fit\(ref, hist\)"):
        QuantileDeltaMapping().apply(xr.DataArray([1.0], dims="time"))


# ----------------------------------------------------------------------------- xsdba parity


def _open_sdba(name):
    return xr.open_dataset(
        shared_file(f"sdba/{name}"), decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)
    )


@pytest.mark.slow
@pytest.mark.parametrize("obs_file", ["ahccd_1950-2013.nc", "nrcan_1950-2013.nc"])
@pytest.mark.parametrize(
    ("var", "kind", "group", "interp"),
    [
        ("tasmax", "additive", "time", "nearest"),
        ("tasmax", "additive", "time", "linear"),
        ("tasmax", "additive", "time.month", "nearest"),
        ("pr", "multiplicative", "time", "nearest"),
        ("pr", "multiplicative", "time", "linear"),
        ("pr", "multiplicative", "time.month", "nearest"),
    ],
)
def test_parity_with_xsdba_on_real_data(obs_file, var, kind, group, interp):
    """CanESM2 vs AHCCD / NRCan, calibration 1950-1980, adjusted 2041-2070, 50 quantiles.

    xsdba refuses flux vs rate units, so its hist and sim are first converted to ref's units
    (we take the raw ones). xsdba's nearest-node choice at an exact tie (tau on a midpoint
    between two nodes) follows the float32 rounding of its nodes; ours takes the lower node
    (scipy interp1d's rule): those values must equal xsdba's with the upper node.
    """
    xsdba = pytest.importorskip("xsdba")
    from xdownscale.units import convert_units

    model, obs = _open_sdba("CanESM2_1950-2100.nc"), _open_sdba(obs_file)
    cal = slice("1950", "1980")
    ref, hist = obs[var].sel(time=cal), model[var].sel(time=cal)
    sim = model[var].sel(time=slice("2041", "2070"))
    units = ref.attrs["units"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = xsdba.QuantileDeltaMapping.train(
            ref,
            convert_units(hist, units),
            nquantiles=50,
            kind={"additive": "+"}.get(kind, "*"),
            group=group,
        )
        with xsdba.set_options(extra_output=True):
            res = qm.adjust(convert_units(sim, units), interp=interp, extrapolation="constant")
        want = res.scen.transpose("location", "time").values
        tau = res.sim_q.transpose("location", "time").values
    m = QuantileDeltaMapping(kind=kind, n_quantiles=50, group=group).fit(ref, hist)
    got = m.apply(sim, interp=interp).transpose("location", "time")
    assert got.attrs["units"] == units
    got = got.values
    assert np.isfinite(got).all() and np.isfinite(want).all()
    # 1e-4 relative; atol covers float32 rounding where the adjusted value crosses 0 degC or
    # is a trace of precipitation (|diff| <= 1e-4 in the data's units)
    bad = ~np.isclose(got, want, rtol=1e-4, atol=1e-4)
    if bad.any():
        assert interp == "nearest"
        k = tau[bad] * 50  # on a midpoint between nodes k - 1/2 and k + 1/2: k is an integer
        assert np.allclose(k, np.round(k), atol=1e-6), "a mismatch that is not a tie"
        s = sim.transpose("location", "time")
        s = convert_units(s, units).values[bad]
        upper = np.round(k).astype(int)
        loc = np.nonzero(bad)[0]
        if group == "time.month":
            grp = s_month = sim.time.dt.month.values[np.nonzero(bad)[1]] - 1
            af = m.state_.af.transpose("location", "group", "quantiles").values[loc, grp, upper]
            del s_month
        else:
            af = m.state_.af.transpose("location", "group", "quantiles").values[loc, 0, upper]
        aligned = s + af if kind == "additive" else s * af
        np.testing.assert_allclose(aligned, want[bad], rtol=1e-4, atol=1e-4)
        assert bad.mean() < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("group", ["time.month", "time.season"])
def test_linear_interpolation_across_groups_matches_xsdba(group):
    """The issue's case: CanESM2 tasmax vs NRCan, 2041-2070 adjusted with 1981-2010, 50
    quantiles, interp="linear": xsdba interpolates the factors across neighbouring months
    (seasons) by the day's position; so do we (0.88 K apart on average before)."""
    xsdba = pytest.importorskip("xsdba")
    model, obs = _open_sdba("CanESM2_1950-2100.nc"), _open_sdba("nrcan_1950-2013.nc")
    cal = slice("1981", "2010")
    ref, hist = obs.tasmax.sel(time=cal), model.tasmax.sel(time=cal)
    sim = model.tasmax.sel(time=slice("2041", "2070"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = xsdba.QuantileDeltaMapping.train(ref, hist, nquantiles=50, kind="+", group=group)
        want = qm.adjust(sim, interp="linear").transpose("location", "time").values
    got = qdm(sim, ref, hist, n_quantiles=50, group=group, interp="linear")
    diff = np.abs(got.transpose("location", "time").values - want)
    assert np.isfinite(diff).all()
    assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.01
    # and the factors do change smoothly through the year: no jump at month boundaries
    nearest = qdm(sim, ref, hist, n_quantiles=50, group=group, interp="nearest")
    assert float(np.abs(got - nearest).mean()) > 0.1


def test_linear_across_groups_is_continuous_at_month_boundaries():
    """Factors that follow a seasonal cycle (10 K sin(2 pi month / 12)): the adjustment of a
    constant series then changes smoothly from day to day, not in steps at month boundaries."""
    n = 3 * 365
    base = _series(np.zeros((1, n)), calendar="noleap", start=2000)
    cycle = 10.0 * np.sin(2 * np.pi * base.time.dt.month.values / 12.0)
    ref = base + cycle  # ref - hist = the cycle, at every quantile
    sim = base.isel(time=slice(0, 365))
    smooth = qdm(sim, ref, base, n_quantiles=5, group="time.month", interp="linear")
    steps = np.abs(np.diff(smooth.isel(x=0).values))
    assert steps.max() < 0.25  # about 5.2 K over a month at most: 0.17 K a day
    jumpy = qdm(sim, ref, base, n_quantiles=5, group="time.month", interp="nearest")
    assert np.abs(np.diff(jumpy.isel(x=0).values)).max() > 2.5  # 10 sin(pi/6) between months


@pytest.mark.parametrize(
    ("group", "drop", "borrowed"),
    [
        ("time.month", [2], r"2 \(no data in hist\)"),
        ("time.season", [12, 1, 2, 3, 4, 5, 9, 10, 11], r"DJF \(no data in hist\)"),
    ],
)
def test_an_empty_group_borrows_the_nearest_one_with_a_warning(trio, group, drop, borrowed):
    ref, hist, sim = trio
    thin = hist.where(~hist.time.dt.month.isin(drop), drop=True)
    with pytest.warns(UserWarning, match=rf"group\(s\) are empty: {borrowed}.*nearest"):
        qm = QuantileDeltaMapping(group=group, n_quantiles=10).fit(ref, thin)
    out = qm.apply(sim)
    assert np.isfinite(out.values).all()
    af = qm.state_.af
    if group == "time.month":  # February takes January's factors (the earlier on a tie)
        np.testing.assert_array_equal(af.sel(group=2).values, af.sel(group=1).values)


def test_leap_days_in_ref_only_do_not_crash(rng):
    ref = _series(rng.normal(size=(2, 4 * 365 + 1)), calendar="standard", start=2000)
    hist = _series(rng.normal(size=(2, 4 * 365)), calendar="noleap", start=2000)
    with pytest.warns(
        UserWarning, match=r"1 day of year group\(s\) are empty: 366 \(no data in hist\)"
    ):
        out = qdm(ref, ref, hist, group="time.dayofyear")
    assert np.isfinite(out.values).all()


@pytest.mark.parametrize("chunked", [False, True])
def test_multiplicative_refuses_negative_values_and_offset_units(rng, chunked):
    pos = _series(rng.gamma(0.5, 2.0, (2, 800)), units="mm/day")
    neg = pos - 1.0
    neg = neg.chunk(time=400) if chunked else neg
    with pytest.raises(
        ValueError,
        match=r"kind='multiplicative' needs non-negative values, but .*ref holds \d+ negative value",
    ):
        qdm(pos, neg, pos, kind="multiplicative").compute()
    with pytest.raises(
        ValueError, match=r"needs non-negative values, but .*sim holds \d+ negative"
    ):
        qdm(neg, pos, pos, kind="multiplicative").compute()
    warm = _series(rng.uniform(5, 25, (2, 800)), units="degC")  # all positive, yet no ratios
    with pytest.raises(
        ValueError,
        match=r"but ref is in 'degC', a unit with an offset .*convert to 'K' first.*kind='additive'",
    ):
        qdm(warm, warm, warm, kind="multiplicative")
    kelvin = warm.copy(data=warm.values + 273.15).assign_attrs(units="K")
    out = qdm(warm, kelvin, kelvin, kind="multiplicative")  # sim is converted to ref's K
    assert out.attrs["units"] == "K" and float(out.min()) > 273
