"""Tests of the pint/cf-xarray unit helpers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xdownscale.units import convert_units, parse_quantity, unit_factors

from .conftest import raise_if_dask_computes


@pytest.mark.parametrize(
    ("src", "dst", "scale", "offset"),
    [
        ("K", "degC", 1.0, -273.15),
        ("degC", "K", 1.0, 273.15),
        ("kg m-2 s-1", "mm d-1", 86400.0, 0.0),
        ("kg m-2 s-1", "mm/s", 1.0, 0.0),
        ("mm h-1", "kg m-2 s-1", 1.0 / 3600.0, 0.0),
        ("mm/day", "mm s-1", 1.0 / 86400.0, 0.0),
        ("kg m-2", "mm", 1.0, 0.0),
        ("mm d-1", "mm/day", 1.0, 0.0),
    ],
)
def test_unit_factors(src, dst, scale, offset):
    s, o = unit_factors(src, dst)
    assert s == pytest.approx(scale, rel=1e-12)
    assert o == pytest.approx(offset, abs=1e-9)


@pytest.mark.parametrize("chunked", [False, True])
def test_convert_units_lazy_and_attrs(chunked):
    da = xr.DataArray(
        np.array([0.0, 1e-5]), dims="time", attrs={"units": "kg m-2 s-1", "long_name": "pr"}
    )
    if chunked:
        da = da.chunk()
        with raise_if_dask_computes():
            out = convert_units(da, "mm d-1")
    else:
        out = convert_units(da, "mm d-1")
    np.testing.assert_allclose(out.values, [0.0, 0.864])
    assert out.attrs == {"units": "mm d-1", "long_name": "pr"}
    assert da.attrs["units"] == "kg m-2 s-1"  # input untouched


def test_convert_units_keeps_float32():
    da = xr.DataArray(np.array([1.0], np.float32), attrs={"units": "K"})
    assert convert_units(da, "degC").dtype == np.float32


def test_parse_quantity():
    assert parse_quantity("1 mm/day", "mm s-1", "t") == pytest.approx(1 / 86400)
    assert parse_quantity(2, "K", "t") == 2.0
    with pytest.raises(TypeError, match=r"t must be a number .* got list"):
        parse_quantity([1], "K", "t")
    with pytest.raises(ValueError, match=r"t='1 bogus' is not a quantity pint understands"):
        parse_quantity("1 bogus", "K", "t")
    with pytest.raises(ValueError, match=r"has units but the data have no 'units' attribute"):
        parse_quantity("1 mm/day", None, "t")


def test_errors():
    with pytest.raises(ValueError, match=r"units 'K' of tas .* cannot be converted to 'mm d-1'"):
        unit_factors("K", "mm d-1", "tas")
    with pytest.raises(ValueError, match=r"units 'nonsense' of x are not understood"):
        unit_factors("nonsense", "K", "x")
    with pytest.raises(ValueError, match=r"da has no 'units' attribute"):
        convert_units(xr.DataArray([1.0]), "K")
