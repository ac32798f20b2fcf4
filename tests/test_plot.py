"""Pictures: each returns a figure with the expected axes and labelled units, never shows."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import xdownscale as xd  # noqa: E402
from xdownscale import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a plotting helper called plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


def _field(rng, shape=(2, 32, 32), spacing=1.0) -> xr.DataArray:
    ny, nx = shape[-2:]
    y = xr.DataArray(np.arange(ny) * spacing, dims="y", attrs={"long_name": "y", "units": "km"})
    x = xr.DataArray(np.arange(nx) * spacing, dims="x", attrs={"long_name": "x", "units": "km"})
    data = rng.gamma(0.8, 1.5, shape).astype("float32")
    dims = ("time", "y", "x")[-len(shape) :]
    return xr.DataArray(
        data,
        dims=dims,
        coords={"y": y, "x": x},
        name="pr",
        attrs={"standard_name": "lwe_precipitation_rate", "units": "mm h-1"},
    )


@pytest.mark.parametrize("chunked", [False, True])
def test_field_map_has_coordinates_and_units_in_the_labels(rng, chunked):
    da = _field(rng)
    da = da.chunk(time=1) if chunked else da
    fig = plot.field(da)
    assert isinstance(fig, matplotlib.figure.Figure)
    ax, cbar = fig.axes  # the map and its colour bar
    assert ax.get_xlabel() == "x (km)" and ax.get_ylabel() == "y (km)"
    assert cbar.get_ylabel() == "precipitation rate (mm h-1)"
    assert ax.get_title() == "pr, time = 0"
    fig2, ax2 = plt.subplots()
    assert plot.field(da.isel(time=1), ax=ax2, cmap="turbo") is fig2


def test_field_on_longitude_latitude(rng):
    da = _field(rng, (8, 8)).rename(y="lat", x="lon")
    da = da.assign_coords(
        lat=(
            "lat",
            np.linspace(40, 47, 8),
            {"standard_name": "latitude", "units": "degrees_north"},
        ),
        lon=("lon", np.linspace(5, 12, 8), {"standard_name": "longitude", "units": "degrees_east"}),
    )
    ax = plot.field(da).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("longitude (°E)", "latitude (°N)")


def test_spectra_compare_grids_in_physical_units(rng):
    fine = _field(rng, (4, 64, 64))
    coarse = fine.downscale.coarsen(4)
    choice_like = xd.ScaleChoice(0.1, 0.5, 8.0, "km", True, xr.DataArray(), xr.DataArray())
    fig = plot.spectra({"fine": fine, "coarse": coarse}, choice=choice_like)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "wavenumber (cycles per km)"
    assert ax.get_ylabel() == "PSD of precipitation rate (mm h-1) × km²"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["fine", "coarse", "coarse Nyquist (λ = 8 km)", "k* (λ = 8 km)"]
    nyquist, k_star = ax.get_lines()[2].get_xdata()[0], ax.get_lines()[3].get_xdata()[0]
    assert nyquist == pytest.approx(0.5 / 4.0) and k_star == pytest.approx(1 / 8.0)
    # the coarse spectrum agrees with the fine one at the largest scales (white noise: flat)
    f, c = (line.get_ydata() for line in ax.get_lines()[:2])
    assert c[0] == pytest.approx(f[0], rel=0.5)
    assert np.isfinite(f).all() and np.isfinite(c).all()


def test_spectra_of_a_lazy_field_and_of_ready_spectra(rng):
    da = _field(rng).chunk(time=1)
    fig = plot.spectra([da, xd.psd(da).rename("ready")], transform="log")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["pr", "ready"]
    assert fig.axes[0].get_ylabel() == "PSD of log precipitation rate × km²"  # no units


def test_spectra_errors(rng):
    a = _field(rng).drop_vars(["x", "y"])
    b = a.isel(x=slice(0, 16), y=slice(0, 16))
    with pytest.raises(ValueError, match="are on different grids but not all have"):
        plot.spectra({"a": a, "b": b})
    with pytest.raises(ValueError, match="fields is empty"):
        plot.spectra({})


def _members(rng, n=5):
    da = _field(rng, (2, 16, 16))
    return xr.concat([da * (1 + 0.1 * i) for i in range(n)], dim="realization")


@pytest.mark.parametrize("chunked", [False, True])
def test_ensemble_panel_shares_one_colour_scale(rng, chunked):
    members = _members(rng)
    members = members.chunk(realization=1) if chunked else members
    coarse = members.isel(realization=0).downscale.coarsen(4)
    fig = plot.ensemble(members, coarse, n=2)
    # coarse, 2 members, mean, spread + two colour bars
    assert len(fig.axes) == 7
    maps = fig.axes[:5]
    assert [a.get_title() for a in maps] == [
        "coarse input",
        "member 0",
        "member 1",
        "ensemble mean (5)",
        "spread (std of 5)",
    ]
    limits = {a.collections[0].get_clim() for a in maps[:4]}
    assert len(limits) == 1  # one colour scale for input, members and mean
    assert maps[4].collections[0].get_clim() != limits.pop()
    assert fig.axes[5].get_ylabel() == "precipitation rate (mm h-1)"
    assert fig.axes[6].get_ylabel() == "std of precipitation rate (mm h-1)"
    assert maps[0].get_xlabel() == "x (km)"
    assert fig.get_suptitle() == "time = 0"


def test_ensemble_exceedance_panel(rng):
    members = _members(rng)
    fig = plot.ensemble(members, n=1, statistic="exceedance", threshold=2.0)
    assert len(fig.axes) == 5  # member, mean, exceedance + two colour bars
    ax = fig.axes[2]
    assert ax.get_title() == "P(> 2 mm h-1)"
    values = ax.collections[0].get_array()
    assert values.min() >= 0 and values.max() <= 1
    expected = (members.isel(time=0) > 2.0).mean("realization")
    np.testing.assert_allclose(np.sort(np.ravel(values)), np.sort(np.ravel(expected.values)))


def test_ensemble_errors(rng):
    members = _members(rng)
    with pytest.raises(ValueError, match="no 'realization' dim; pass the members"):
        plot.ensemble(members.isel(realization=0))
    with pytest.raises(ValueError, match=r"needs threshold=, in the members' units \(mm h-1\)"):
        plot.ensemble(members, statistic="exceedance")
    with pytest.raises(ValueError, match="statistic='max' is not supported"):
        plot.ensemble(members, statistic="max")
    with pytest.raises(ValueError, match="n=0 must be a positive int"):
        plot.ensemble(members, n=0)


def test_importing_the_module_does_not_import_matplotlib():
    import subprocess
    import sys

    code = "import sys, xdownscale.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
