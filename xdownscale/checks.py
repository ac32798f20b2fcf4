"""Input checks shared by every verb: arrays, dims and grids, numbers, options, device, memory.

One home for what every wrapper checks before it builds a computation (pooch keeps the same
in one ``utils.py``): the argument is a DataArray of real numbers; its spatial and time dims
are found from CF metadata (through cf-xarray: ``axis``, ``standard_name`` such as
``latitude``/``longitude``, ``projection_x_coordinate``, ``grid_latitude``, ``time``) or common
names, with an explicit override (``spatial_dims=(y, x)``, ``dim=``); options are among the
allowed values; a device is available; a request fits in memory. Every error names the
argument, the value seen, what is allowed and the fix. Units are checked in
:mod:`xdownscale.units`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ._device import check_device, resolve_device
from ._memory import MemoryBudgetError, available_memory, check_memory, memory_budget

__all__ = [
    "GridInfo",
    "MemoryBudgetError",
    "available_memory",
    "check_choice",
    "check_dataarray",
    "check_device",
    "check_finite",
    "check_int",
    "check_memory",
    "find_spatial_dims",
    "find_time_dim",
    "grid_info",
    "memory_budget",
    "resolve_device",
]

_X_NAMES = ("x", "lon", "longitude", "rlon", "xc", "west_east", "grid_longitude", "nx", "i")
_Y_NAMES = ("y", "lat", "latitude", "rlat", "yc", "south_north", "grid_latitude", "ny", "j")
_T_NAMES = ("time", "t", "valid_time", "date", "Time")
_REL_TOL = 1e-3  # relative tolerance on the spacing of a "regular" coordinate


@dataclass(frozen=True)
class GridInfo:
    """What the library knows about a field's horizontal grid.

    Attributes
    ----------
    y, x : hashable
        Names of the spatial dimensions.
    dy, dx : float or None
        Absolute grid spacing along each dim, in ``units`` (None without a coordinate).
    units : str or None
        Units of the spatial coordinates (``"m"``, ``"km"``, ``"degrees_east"``, ...); a
        longitude without ``units`` is taken to be in ``"degrees_east"``.
    periodic_x : bool
        True for a global longitude that wraps around (n * dx == 360 degrees).
    """

    y: Hashable
    x: Hashable
    dy: float | None
    dx: float | None
    units: str | None
    periodic_x: bool

    @property
    def spacing(self) -> float | None:
        """A single spacing when the cells are square (dx == dy within 0.1 %), else None."""
        if self.dx is None or self.dy is None:
            return None
        if abs(self.dx - self.dy) > _REL_TOL * max(self.dx, self.dy):
            return None
        return self.dx


# ----------------------------------------------------------------------------- discovery


def _dims_of_coord(da: xr.DataArray, name: Hashable) -> Hashable | None:
    if name in da.dims:
        return name
    if name in da.coords and da.coords[name].ndim == 1:
        return da.coords[name].dims[0]
    return None


def _cf_candidates(da: xr.DataArray, axis: str, keys: Sequence[str]) -> list[Hashable]:
    import cf_xarray  # noqa: F401  (registers .cf)

    names: list[Hashable] = []
    found = dict(da.cf.axes)
    coords = dict(da.cf.coordinates)
    for n in list(found.get(axis, [])) + [n for k in keys for n in coords.get(k, [])]:
        d = _dims_of_coord(da, n)
        if d is not None and d not in names:
            names.append(d)
    return names


def _pick(
    da: xr.DataArray, axis: str, keys: Sequence[str], fallback: Sequence[str]
) -> Hashable | None:
    cands = _cf_candidates(da, axis, keys)
    if not cands:
        cands = [d for d in da.dims if str(d) in fallback]
        cands = sorted(cands, key=lambda d: fallback.index(str(d)))[:1]
    if len(cands) > 1:
        return ("ambiguous", tuple(cands))  # type: ignore[return-value]
    return cands[0] if cands else None


def find_spatial_dims(
    da: xr.DataArray, spatial_dims: Sequence[Hashable] | None = None
) -> tuple[Hashable, Hashable]:
    """Return the names ``(y, x)`` of the two spatial dimensions of ``da``.

    Parameters
    ----------
    da : xarray.DataArray
        Field with two horizontal dimensions.
    spatial_dims : (hashable, hashable), optional
        Explicit ``(y, x)`` names; skips discovery.

    Returns
    -------
    (y, x) : tuple of hashable

    Raises
    ------
    ValueError
        If the array is not at least 2-D, if no (or more than one) candidate is found for an
        axis, or if ``spatial_dims`` names dims that ``da`` does not have.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.zeros((2, 3, 4)), dims=("time", "lat", "lon"))
    >>> find_spatial_dims(da)
    ('lat', 'lon')
    """
    if da.ndim < 2:
        raise ValueError(
            f"expected a field with two spatial dims, got a {da.ndim}-D array with dims "
            f"{tuple(da.dims)}; xdownscale works on 2-D fields (y, x), optionally stacked "
            "along other dims such as time"
        )
    if spatial_dims is not None:
        dims = tuple(spatial_dims)
        if len(dims) != 2:
            raise ValueError(
                f"spatial_dims must name exactly two dims (y, x), got {spatial_dims!r}"
            )
        missing = [d for d in dims if d not in da.dims]
        if missing:
            raise ValueError(
                f"spatial_dims={spatial_dims!r} names {missing} which the array does not have; "
                f"its dims are {tuple(da.dims)}"
            )
        if dims[0] == dims[1]:
            raise ValueError(f"spatial_dims={spatial_dims!r} names the same dim twice")
        return dims[0], dims[1]
    y = _pick(da, "Y", ("latitude",), _Y_NAMES)
    x = _pick(da, "X", ("longitude",), _X_NAMES)
    for axis, got in (("Y", y), ("X", x)):
        if isinstance(got, tuple) and got and got[0] == "ambiguous":
            raise ValueError(
                f"several dims look like the {axis} axis: {list(got[1])}; pass "
                "spatial_dims=(y, x) to say which two dims are horizontal"
            )
    if y is None or x is None or y == x:
        raise ValueError(
            f"could not find the spatial dims of an array with dims {tuple(da.dims)}: "
            "no coordinate with CF attributes (axis='X'/'Y', standard_name latitude/longitude, "
            "projection_x/y_coordinate, grid_latitude/grid_longitude) and no dim named like "
            f"{_Y_NAMES[:3]} / {_X_NAMES[:3]}; pass spatial_dims=(y, x), e.g. "
            f"spatial_dims={tuple(da.dims[-2:])!r}"
        )
    return y, x


def find_time_dim(da: xr.DataArray, dim: Hashable | None = None) -> Hashable:
    """Return the name of the time (sample) dimension of ``da``.

    Uses ``dim`` when given, else the CF time axis (``axis='T'``, ``standard_name='time'``, a
    datetime or cftime coordinate), else a dim named like ``time``.

    Raises
    ------
    ValueError
        If ``dim`` is not a dim of ``da`` or none can be found.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> da = xr.DataArray(np.zeros(3), dims="t", coords={"t": pd.date_range("2000", periods=3)})
    >>> find_time_dim(da)
    't'
    """
    if dim is not None:
        if dim not in da.dims:
            raise ValueError(
                f"dim={dim!r} is not a dim of the array; its dims are {tuple(da.dims)}"
            )
        return dim
    import cf_xarray  # noqa: F401

    cands = [
        d
        for n in list(da.cf.axes.get("T", [])) + list(da.cf.coordinates.get("time", []))
        if (d := _dims_of_coord(da, n)) is not None
    ]
    if not cands:
        cands = [d for d in da.dims if d in da.coords and _is_datetime(da.coords[d])]
    if not cands:
        cands = [d for d in da.dims if str(d) in _T_NAMES]
    cands = list(dict.fromkeys(cands))
    if len(cands) != 1:
        raise ValueError(
            f"could not find a unique time dim among {tuple(da.dims)} (candidates: {cands}); "
            "pass dim='...' naming the dimension to work along"
        )
    return cands[0]


def _is_datetime(coord: xr.DataArray) -> bool:
    if np.issubdtype(coord.dtype, np.datetime64):
        return True
    if coord.dtype == object and coord.size:
        return type(coord.values.flat[0]).__module__.startswith("cftime")
    return False


def coord_spacing(da: xr.DataArray, dim: Hashable) -> float | None:
    """Signed regular spacing of the coordinate of ``dim``; None when there is no coordinate.

    Raises
    ------
    ValueError
        If the coordinate is not strictly monotonic or not regularly spaced.
    """
    if dim not in da.coords:
        return None
    c = np.asarray(da.coords[dim].values)
    if not np.issubdtype(c.dtype, np.number) or c.size < 2:
        return None
    c = c.astype(np.float64)
    d = np.diff(c)
    if not (np.all(d > 0) or np.all(d < 0)):
        bad = int(np.argmax(np.sign(d) != np.sign(d[0]))) + 1
        raise ValueError(
            f"coordinate {dim!r} is not strictly monotonic (at index {bad}: {c[bad]!r} follows "
            f"{c[bad - 1]!r}); sort it first with da.sortby({str(dim)!r})"
        )
    step = float(np.median(d))
    if np.max(np.abs(d - step)) > _REL_TOL * abs(step):
        raise ValueError(
            f"coordinate {dim!r} is not regularly spaced (steps from {d.min():.6g} to "
            f"{d.max():.6g}); xdownscale needs a regular grid: interpolate first, e.g. "
            f"da.interp({dim}=np.linspace(start, stop, n))"
        )
    return step


def _is_longitude(coord: xr.DataArray) -> bool:
    units = str(coord.attrs.get("units", "")).lower()
    return (
        coord.attrs.get("standard_name") == "longitude"
        or units in ("degrees_east", "degree_east", "degrees_e", "degreee")
        or str(coord.name).lower() in ("lon", "longitude")
    )


def grid_info(da: xr.DataArray, spatial_dims: Sequence[Hashable] | None = None) -> GridInfo:
    """Describe the horizontal grid of ``da`` (dims, spacing, units, periodic longitude).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> lon = np.arange(0, 360, 90.0)
    >>> da = xr.DataArray(np.zeros((2, 4)), dims=("lat", "lon"),
    ...                   coords={"lat": [-45.0, 45.0], "lon": lon})
    >>> info = grid_info(da)
    >>> info.dx, info.periodic_x, info.units
    (90.0, True, 'degrees_east')

    A longitude coordinate (by ``standard_name``, ``units`` or a name such as ``lon``)
    without ``units`` is taken to be in degrees east; other coordinates without units have
    ``units=None``.
    """
    y, x = find_spatial_dims(da, spatial_dims)
    sy, sx = coord_spacing(da, y), coord_spacing(da, x)
    units = None
    if x in da.coords:
        units = da.coords[x].attrs.get("units")
        if units is None and _is_longitude(da.coords[x]):
            units = "degrees_east"  # a longitude by its name or standard_name: degrees
    periodic = False
    if sx is not None and _is_longitude(da.coords[x]):
        periodic = abs(abs(sx) * da.sizes[x] - 360.0) < 0.5 * abs(sx)
    return GridInfo(
        y=y,
        x=x,
        dy=None if sy is None else abs(sy),
        dx=None if sx is None else abs(sx),
        units=units,
        periodic_x=periodic,
    )


# ----------------------------------------------------------------------------- validation


def require_whole(da: xr.DataArray, dims: Sequence[Hashable], name: str, why: str) -> None:
    """Raise if ``da`` is a dask array split into several chunks along any of ``dims``."""
    if da.chunks is None:
        return
    split = {d: len(da.chunksizes[d]) for d in dims if len(da.chunksizes[d]) > 1}
    if split:
        fix = ", ".join(f"{d}=-1" for d in split)
        parts = ", ".join(f"dim {d!r} of {name} has {n} chunks" for d, n in split.items())
        raise ValueError(f"{parts}; {why} — call {name}.chunk({fix})")


def as_factor(factor: Any, name: str = "factor") -> tuple[int, int]:
    """Validate an integer factor (or a ``(fy, fx)`` pair) >= 1."""
    vals = tuple(factor) if isinstance(factor, (tuple, list)) else (factor, factor)
    ok = len(vals) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in vals
    )
    if not ok:
        raise ValueError(
            f"{name} must be a positive integer or a pair (fy, fx) of them, got {factor!r}"
        )
    return int(vals[0]), int(vals[1])


def check_real(da: xr.DataArray, name: str) -> None:
    """Raise TypeError unless ``da`` holds real numbers (integers, floats or booleans).

    Complex values are refused: every verb works on real fields, and converting silently would
    drop the imaginary part.

    Examples
    --------
    >>> check_real(xr.DataArray([1j]), "da")
    Traceback (most recent call last):
    ...
    TypeError: da holds complex numbers (dtype complex128); xdownscale works on real fields: ...
    """
    dtype = da.dtype
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{name} holds complex numbers (dtype {dtype}); xdownscale works on real fields: "
            f"pass the part you mean explicitly, e.g. {name}.real or abs({name})"
        )
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise TypeError(
            f"{name} must hold real numbers, got dtype {dtype}; convert it first, e.g. "
            f"{name}.astype('float32')"
        )


def check_dataarray(obj: Any, name: str) -> xr.DataArray:
    """Return ``obj`` if it is a DataArray of real numbers, else raise TypeError saying what to do.

    Examples
    --------
    >>> check_dataarray(np.zeros(3), "ref")
    Traceback (most recent call last):
    ...
    TypeError: ref must be an xarray.DataArray, got ndarray; wrap it with xr.DataArray(...)...
    """
    if isinstance(obj, xr.Dataset):
        names = list(obj.data_vars)
        example = repr(str(names[0])) if names else "'<variable>'"
        raise TypeError(
            f"{name} is an xarray.Dataset (variables {names}); pass one of its variables, e.g. "
            f"{name}[{example}], or call the verb on the Dataset (ds.downscale....)"
        )
    if not isinstance(obj, xr.DataArray):
        raise TypeError(
            f"{name} must be an xarray.DataArray, got {type(obj).__name__}; wrap it with "
            "xr.DataArray(values, dims=(...), coords=...)"
        )
    check_real(obj, name)
    return obj


def _raise_if_inf(block: np.ndarray, label: str) -> np.ndarray:
    n = int(np.isinf(block).sum()) if np.issubdtype(block.dtype, np.floating) else 0
    if n:
        raise ValueError(_inf_message(label, n, block.size, "a chunk of "))
    return block


def _inf_message(name: str, n: int, size: int, where: str = "") -> str:
    return (
        f"{where}{name} holds {n} infinite value(s) of {size}; xdownscale treats +-inf as an "
        f"error, never as data or as a mask: mask them as missing with "
        f"{name}.where(np.isfinite({name})) (NaN is a mask every verb keeps), or replace them "
        "with finite values"
    )


def check_finite(da: xr.DataArray, name: str) -> xr.DataArray:
    """Refuse +-inf in ``da`` (NaN is allowed: it is a mask): the one policy of every verb.

    Eager data are checked now and the error gives the count; dask data are checked chunk by
    chunk when computed (the returned array carries the check), so laziness is kept.

    Examples
    --------
    >>> check_finite(xr.DataArray([1.0, np.nan]), "da").values.tolist()
    [1.0, nan]
    >>> check_finite(xr.DataArray([1.0, np.inf]), "da")
    Traceback (most recent call last):
    ...
    ValueError: da holds 1 infinite value(s) of 2; ... da.where(np.isfinite(da)) ...
    """
    if not np.issubdtype(da.dtype, np.floating):
        return da
    if da.chunks is None:
        n = int(np.isinf(da.values).sum())
        if n:
            raise ValueError(_inf_message(name, n, da.size))
        return da
    data = da.data.map_blocks(_raise_if_inf, label=name, dtype=da.dtype)
    return da.copy(data=data)


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[low, high]``, else raise.

    Raises
    ------
    TypeError
        For a non-integer (floats such as 2.0 and booleans included).
    ValueError
        For an integer out of range.

    Examples
    --------
    >>> check_int(3, "steps", 1)
    3
    >>> check_int(0, "steps", 1)
    Traceback (most recent call last):
    ...
    ValueError: steps must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name} must be an integer"
            + (f" >= {low}" if low is not None else "")
            + f", got {type(value).__name__} {value!r}"
        )
    if (low is not None and value < low) or (high is not None and value > high):
        rng = (
            f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
        )
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def check_choice(value: Any, name: str, allowed: Iterable[Any], hint: str = "") -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError listing them.

    Examples
    --------
    >>> check_choice("hann", "taper", (None, "hann"))
    'hann'
    >>> check_choice("bartlett", "taper", (None, "hann"))
    Traceback (most recent call last):
    ...
    ValueError: taper='bartlett' is not supported; use one of [None, 'hann']
    """
    options = list(allowed)
    try:
        ok = value in options
    except TypeError:  # unhashable or odd objects
        ok = False
    if not ok:
        raise ValueError(
            f"{name}={value!r} is not supported; use one of {options}"
            + (f" {hint}" if hint else "")
        )
    return value


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    hint: str = "",
) -> float:
    """Return ``value`` as a finite float in the given range, else raise.

    Examples
    --------
    >>> check_number(0.5, "q", low=0, high=1)
    0.5
    >>> check_number(float("nan"), "threshold")
    Traceback (most recent call last):
    ...
    ValueError: threshold must be a finite number, got nan
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(
            f"{name} must be a finite number, got {value!r}" + (f"; {hint}" if hint else "")
        )
    if low is not None and (v <= low if low_open else v < low):
        raise ValueError(
            f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}"
            + (f"; {hint}" if hint else "")
        )
    if high is not None and v > high:
        raise ValueError(
            f"{name} must be <= {high:g}, got {value!r}" + (f"; {hint}" if hint else "")
        )
    return v
