"""Unit conversion of DataArrays with pint through cf-xarray's CF-aware unit registry.

Compatible units are converted, never refused: K <-> degC, mm/day <-> mm/s <-> mm/h, and
precipitation flux (kg m-2 s-1) <-> rate (mm/day, ...) through the density of liquid water,
``rho_w = 1000 kg m-3`` (a flux ``F`` is a depth rate ``F / rho_w``). Amounts (kg m-2 <-> mm)
convert the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["convert_units", "parse_quantity", "unit_factors"]

WATER_DENSITY = "1000 kg m-3"  # density of liquid water used for flux <-> rate


def _registry():
    from cf_xarray.units import units  # pint registry with CF unit strings (mm d-1, ...)

    return units


def _unit(text: str, name: str):
    ureg = _registry()
    try:
        return ureg.Unit(str(text))
    except Exception as err:  # pint raises several error types for unparsable strings
        raise ValueError(
            f"units {text!r} of {name} are not understood by pint/cf-xarray ({err}); set a "
            f"CF/UDUNITS unit string, e.g. {name}.attrs['units'] = 'mm d-1'"
        ) from None


def unit_factors(src: str, dst: str, name: str = "the data") -> tuple[float, float]:
    """Return ``(scale, offset)`` such that ``value_in_dst = scale * value_in_src + offset``.

    Raises
    ------
    ValueError
        If a unit string is not understood, or the units are incompatible.

    Examples
    --------
    >>> unit_factors("degC", "K")
    (1.0, 273.15)
    >>> scale, _ = unit_factors("kg m-2 s-1", "mm/day")
    >>> round(scale, 6)
    86400.0
    """
    ureg = _registry()
    u_src, u_dst = _unit(src, name), _unit(dst, "the target")
    if u_src == u_dst:
        return 1.0, 0.0
    density = ureg.Quantity(WATER_DENSITY)
    candidates = [1.0]
    if u_src.dimensionality != u_dst.dimensionality:
        candidates = [1.0 / density, density]  # mass flux -> depth rate, or back
    for c in candidates:
        try:
            zero = (ureg.Quantity(0.0, u_src) * c).to(u_dst).magnitude
            one = (ureg.Quantity(1.0, u_src) * c).to(u_dst).magnitude
        except Exception:  # pint DimensionalityError / OffsetUnitCalculusError
            continue
        return float(one - zero), float(zero)
    raise ValueError(
        f"units {src!r} of {name} ({u_src.dimensionality}) cannot be converted to {dst!r} "
        f"({u_dst.dimensionality}); only compatible units (or precipitation flux <-> rate "
        "through the density of water) are converted — check that the variables match"
    )


def convert_units(da: xr.DataArray, units: str, name: str = "da") -> xr.DataArray:
    """Return ``da`` converted to ``units`` (lazy for dask input); ``units`` attr set.

    Raises
    ------
    ValueError
        If ``da`` has no ``units`` attribute or its units cannot be converted.

    Examples
    --------
    >>> da = xr.DataArray([0.0, 1.0], attrs={"units": "kg m-2 s-1"})
    >>> convert_units(da, "mm d-1").values
    array([    0., 86400.])
    """
    src = da.attrs.get("units")
    if src is None:
        raise ValueError(
            f"{name} has no 'units' attribute, so it cannot be converted to {units!r}; set it, "
            f"e.g. {name}.attrs['units'] = {units!r}"
        )
    scale, offset = unit_factors(src, units, name)
    if scale == 1.0 and offset == 0.0:
        out = da.copy()
    else:
        dtype = da.dtype if np.issubdtype(da.dtype, np.floating) else np.float64
        out = (da * np.asarray(scale, dtype) + np.asarray(offset, dtype)).astype(dtype)
        out.attrs = dict(da.attrs)
    out.attrs["units"] = units
    return out


def parse_quantity(value: Any, units: str | None, name: str) -> float:
    """A number, or a string with units such as ``"0.1 mm/day"``, expressed in ``units``.

    Examples
    --------
    >>> round(parse_quantity("1 mm/day", "kg m-2 s-1", "dry_threshold") * 86400, 6)
    1.0
    >>> parse_quantity(0.5, "mm/day", "dry_threshold")
    0.5
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a number (in the data's units) or a string with units such as "
            f"'0.1 mm/day', got {type(value).__name__} {value!r}"
        )
    ureg = _registry()
    try:
        q = ureg.Quantity(value)
    except Exception as err:
        raise ValueError(
            f"{name}={value!r} is not a quantity pint understands ({err}); write it like "
            "'0.1 mm/day'"
        ) from None
    if units is None:
        raise ValueError(
            f"{name}={value!r} has units but the data have no 'units' attribute; set "
            "ref.attrs['units'] or pass a plain number"
        )
    scale, offset = unit_factors(f"{q.units:~}" if str(q.units) else "1", units, name)
    return float(scale * q.magnitude + offset)
