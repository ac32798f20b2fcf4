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

__all__ = ["convert_units", "expect_units", "like_units", "parse_quantity", "unit_factors"]

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


def expect_units(
    have: str | None, want: str | None, name: str, owner: str
) -> tuple[float, float] | None:
    """How to bring data in units ``have`` into the units ``want`` that ``owner`` expects.

    Returns ``(scale, offset)`` (``value_in_want = scale * value + offset``), or None when no
    conversion is needed (same units, or ``owner`` declares none).

    Raises
    ------
    ValueError
        If the data have no units but ``owner`` expects some (the data could be anything: an
        unlabelled temperature in K fed to a precipitation model would come out labelled
        mm h-1), or if the units are incompatible.

    Examples
    --------
    >>> expect_units("mm/day", "mm h-1", "da", "model 'radar-8x'")[0] == 1 / 24
    True
    >>> expect_units(None, "mm h-1", "da", "model 'radar-8x'")
    Traceback (most recent call last):
    ...
    ValueError: da has no 'units' attribute, but model 'radar-8x' expects 'mm h-1'; ...
    """
    if not want:
        return None
    if have is None or not str(have).strip():
        if _unit(str(want), owner).dimensionless:
            return None  # a dimensionless model takes data without units as they are
        raise ValueError(
            f"{name} has no 'units' attribute, but {owner} expects {want!r}; if the data are "
            f"in those units, say so: {name}.attrs['units'] = {want!r} (or "
            f"{name}.assign_attrs(units={want!r})); if not, set their real units and they are "
            "converted"
        )
    if str(have).strip() == str(want).strip():
        return None
    try:
        scale, offset = unit_factors(str(have), str(want), name)
    except ValueError as err:
        raise ValueError(
            f"{name} has units {have!r} but {owner} expects {want!r} (not convertible: "
            f"{err}); pass a field of the variable {owner} was made for, or fix "
            f"{name}.attrs['units'] if it is wrong"
        ) from None
    if scale == 1.0 and offset == 0.0:
        return None
    return scale, offset


def like_units(
    da: xr.DataArray, units: str | None, name: str, like: str, *, missing_ok: bool = False
) -> xr.DataArray:
    """``da`` in ``units`` (the units of the array ``like`` names), converted when compatible.

    Both without units: returned as is. One with and one without: refused (they cannot be
    compared), unless ``missing_ok`` and only ``da`` lacks them — then it is taken to be in
    ``units``.

    Raises
    ------
    ValueError
        Incompatible units, or units on one side only.

    Examples
    --------
    >>> da = xr.DataArray([0.0], attrs={"units": "degC"})
    >>> like_units(da, "K", "sim", "ref").values.tolist()
    [273.15]
    """
    have = da.attrs.get("units")
    if have is None and units is None:
        return da
    if have is None or units is None:
        if have is None and missing_ok:
            return da.assign_attrs(units=units)
        has, lacks, value = (like, name, units) if have is None else (name, like, have)
        raise ValueError(
            f"{has} has units {value!r} but {lacks} has no 'units' attribute, so they cannot be "
            f"compared; set it, e.g. {lacks}.attrs['units'] = {value!r}"
        )
    return convert_units(da, str(units), name)
