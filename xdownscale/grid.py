"""Grid handling shared by every verb: find dims, spacing, coarsen, upsample, low-pass.

Dimension discovery uses CF metadata through cf-xarray (``axis``, ``standard_name`` such as
``latitude``/``longitude``, ``projection_x_coordinate``, ``grid_latitude``, ``time``), then falls
back to common names. Every verb takes an explicit override (``spatial_dims=(y, x)`` and, where a
time or sample dimension matters, ``dim=``).
"""

from __future__ import annotations

import datetime
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from . import np_grid
from ._version import __version__

__all__ = [
    "GridInfo",
    "coarsen",
    "find_spatial_dims",
    "find_time_dim",
    "grid_info",
    "lowpass",
    "upsample",
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
        Units of the spatial coordinates (``"m"``, ``"km"``, ``"degrees_east"``, ...).
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
            raise ValueError(f"dim={dim!r} is not a dim of the array; its dims are {tuple(da.dims)}")
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
    >>> info.dx, info.periodic_x
    (90.0, True)
    """
    y, x = find_spatial_dims(da, spatial_dims)
    sy, sx = coord_spacing(da, y), coord_spacing(da, x)
    units = None
    if x in da.coords:
        units = da.coords[x].attrs.get("units")
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


def check_floating(da: xr.DataArray, name: str) -> None:
    """Raise TypeError for non-numeric data."""
    if not (np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.bool_)):
        raise TypeError(f"{name} must hold numbers, got dtype {da.dtype}")


def add_history(attrs: dict, text: str) -> dict:
    """Return ``attrs`` with a timestamped xdownscale line prepended to ``history``."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} xdownscale {__version__}: {text}"
    out = dict(attrs)
    old = out.get("history")
    out["history"] = f"{line}\n{old}" if old else line
    return out


# ----------------------------------------------------------------------------- operations


def _apply_spatial(
    da: xr.DataArray,
    func,
    y: Hashable,
    x: Hashable,
    shape: tuple[int, int],
    kwargs: dict,
) -> xr.DataArray:
    """Apply a core ``(..., y, x) -> (..., ny', nx')`` lazily over the non-spatial dims."""
    dtype = da.dtype if np.issubdtype(da.dtype, np.floating) else np.float64
    out = xr.apply_ufunc(
        func,
        da,
        input_core_dims=[[y, x]],
        output_core_dims=[[y, x]],
        exclude_dims={y, x},
        dask="parallelized",
        output_dtypes=[dtype],
        dask_gufunc_kwargs={"output_sizes": {y: shape[0], x: shape[1]}},
        kwargs=kwargs,
        keep_attrs=True,
    )
    return out.transpose(*da.dims)


def _spatial_coords(da: xr.DataArray, y: Hashable, x: Hashable) -> dict[Hashable, xr.DataArray]:
    """Numeric coordinates that span a spatial dim (dim coords excluded)."""
    return {
        k: c
        for k, c in da.coords.items()
        if k not in (y, x) and (y in c.dims or x in c.dims) and np.issubdtype(c.dtype, np.number)
    }


def coarsen(
    da: xr.DataArray,
    factor: int | tuple[int, int],
    *,
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.DataArray:
    """Block-average a field by an integer factor (the linear coarsening map C').

    Parameters
    ----------
    da : xarray.DataArray
        Field(s) with two spatial dims; other dims may be dask-chunked.
    factor : int or (int, int)
        Block size along (y, x); must divide the grid.
    spatial_dims : (hashable, hashable), optional
        Override the discovered ``(y, x)`` dims.

    Returns
    -------
    xarray.DataArray
        The coarse field, with block-mean cell-centre coordinates.

    Raises
    ------
    ValueError
        If the factor does not divide the grid, or the spatial dims are split into chunks.

    Notes
    -----
    NaN-aware: each block is the mean of its finite cells, NaN where it has none. Without NaN
    this is linear, ``C'x = mean over each factor x factor block`` [Wan23].

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.arange(16.0).reshape(4, 4), dims=("y", "x"))
    >>> coarsen(da, 2).values
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    y, x = find_spatial_dims(da, spatial_dims)
    check_floating(da, "da")
    fy, fx = as_factor(factor)
    ny, nx = da.sizes[y], da.sizes[x]
    for d, n, f in ((y, ny, fy), (x, nx, fx)):
        if n % f:
            raise ValueError(
                f"factor {f} does not divide dim {d!r} of size {n}; crop first, e.g. "
                f"da.isel({d}=slice(0, {n - n % f})), or pick a factor that divides {n}"
            )
        coord_spacing(da, d)  # validates monotonic and regular coordinates
    require_whole(da, [y, x], "da", "coarsening needs whole fields")
    out = _apply_spatial(da, np_grid.coarsen, y, x, (ny // fy, nx // fx), {"factor": (fy, fx)})
    coords = {}
    for d, f in ((y, fy), (x, fx)):
        if d in da.coords:
            c = da.coords[d]
            coords[d] = (d, c.values.reshape(-1, f).mean(axis=1), c.attrs)
    for k, c in _spatial_coords(da, y, x).items():
        if c.dims[-2:] == (y, x):
            vals = np_grid.coarsen(np.asarray(c.values, dtype=float), (fy, fx))
        else:
            axis_f = fy if y in c.dims else fx
            vals = np.asarray(c.values, dtype=float).reshape(-1, axis_f).mean(axis=1)
        coords[k] = (c.dims, vals, c.attrs)
    return out.assign_coords(coords)


def _fine_coord(c: xr.DataArray, factor: int) -> np.ndarray:
    vals = np.asarray(c.values, dtype=np.float64)
    step = vals[1] - vals[0] if vals.size > 1 else 1.0
    p = (np.arange(vals.size * factor) + 0.5) / factor - 0.5
    return vals[0] + step * p


def upsample(
    da: xr.DataArray,
    factor: int | tuple[int, int],
    *,
    method: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
    conservative: bool = False,
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.DataArray:
    """Interpolate a field onto a grid ``factor`` times finer (cell-centred coordinates).

    Parameters
    ----------
    da : xarray.DataArray
        Coarse field(s); non-spatial dims may be dask-chunked.
    factor : int or (int, int)
        Refinement along (y, x).
    method : {"nearest", "bilinear", "bicubic"}
        Separable interpolation between coarse cell centres; bicubic uses the Keys kernel
        (a = -0.5).
    conservative : bool
        Add back the nearest-upsampled residual so that ``coarsen(upsample(da)) == da``.
    spatial_dims : (hashable, hashable), optional
        Override the discovered ``(y, x)`` dims.

    Returns
    -------
    xarray.DataArray
        Fine field; fine cell ``j`` of coarse cell ``i`` is centred at
        ``c_i + d ((j + 0.5)/factor - 0.5)``.

    Notes
    -----
    Periodic along a global longitude (detected by :func:`grid_info`), else the edge cell is
    extended over the outer half cell. NaN-aware: a fine cell is NaN exactly where its parent
    coarse cell is NaN, and valid cells are interpolated from valid neighbours only.
    The fine coordinates are rebuilt from the coarse ones, so after a ``coarsen`` round trip
    they equal the original fine coordinates only up to rounding: before combining the two
    in one Dataset, copy them over (``fine.assign_coords(y=truth.y, x=truth.x)``) or align
    with ``xr.align(..., join="override")``, else xarray outer-joins the grids.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray([[0.0, 1.0]], dims=("y", "x"), coords={"y": [0.0], "x": [0.0, 1.0]})
    >>> fine = upsample(da, 2)
    >>> fine.x.values, fine.values.round(2)
    (array([-0.25,  0.25,  0.75,  1.25]), array([[0.  , 0.25, 0.75, 1.  ],
           [0.  , 0.25, 0.75, 1.  ]]))
    """
    if method not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(
            f"method={method!r} is not supported; use 'nearest', 'bilinear' or 'bicubic'"
        )
    info = grid_info(da, spatial_dims)
    y, x = info.y, info.x
    check_floating(da, "da")
    fy, fx = as_factor(factor)
    require_whole(da, [y, x], "da", "interpolation needs whole fields")
    kw = {
        "factor": (fy, fx),
        "method": method,
        "periodic": (False, info.periodic_x),
        "conservative": conservative,
    }
    out = _apply_spatial(da, np_grid.upsample, y, x, (da.sizes[y] * fy, da.sizes[x] * fx), kw)
    coords = {}
    for d, f in ((y, fy), (x, fx)):
        if d in da.coords:
            coords[d] = (d, _fine_coord(da.coords[d], f), da.coords[d].attrs)
    for k, c in _spatial_coords(da, y, x).items():
        if c.dims[-2:] == (y, x):
            vals = np_grid.upsample(np.asarray(c.values, dtype=float), (fy, fx), "bilinear")
        else:
            vals = _fine_coord(c, fy if y in c.dims else fx)
        coords[k] = (c.dims, vals, c.attrs)
    return out.assign_coords(coords)


def lowpass(
    da: xr.DataArray,
    cutoff: float | None = None,
    *,
    wavelength: float | None = None,
    order: int | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.DataArray:
    """Remove scales smaller than a cutoff with a radial spectral filter.

    Parameters
    ----------
    da : xarray.DataArray
        Field(s); non-spatial dims may be dask-chunked.
    cutoff : float, optional
        Cutoff wavenumber in cycles per grid cell, in (0, 0.5]. Give this or ``wavelength``.
    wavelength : float, optional
        Cutoff wavelength in the units of the spatial coordinates (needs square cells).
    order : int, optional
        Butterworth order (smooth roll-off); None for a sharp cutoff.
    spatial_dims : (hashable, hashable), optional
        Override the discovered ``(y, x)`` dims.

    Returns
    -------
    xarray.DataArray

    Notes
    -----
    Used after interpolation to remove its artefacts, as in Hess et al. (2024): with a coarse
    grid ``factor`` times coarser, ``cutoff = 0.5 / factor`` keeps exactly the resolved scales.
    Non-periodic axes are mirrored before the FFT (no wrap-around at the edges); a global
    longitude is treated as periodic. NaN cells stay NaN.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> x = np.arange(32) + 0.5
    >>> large, small = np.cos(2 * np.pi * 2 * x / 32), np.cos(2 * np.pi * 12 * x / 32)
    >>> da = xr.DataArray(np.tile(large + small, (32, 1)), dims=("y", "x"))
    >>> smooth = lowpass(da, 0.25)
    >>> bool(np.allclose(smooth.isel(y=0), large))
    True
    """
    info = grid_info(da, spatial_dims)
    y, x = info.y, info.x
    check_floating(da, "da")
    if (cutoff is None) == (wavelength is None):
        raise ValueError("give exactly one of cutoff (cycles per grid cell) or wavelength")
    if wavelength is not None:
        if info.spacing is None:
            raise ValueError(
                "wavelength= needs a regular grid with square cells and coordinates; got "
                f"dx={info.dx}, dy={info.dy}: pass cutoff= in cycles per grid cell instead"
            )
        cutoff = info.spacing / float(wavelength)
    if not (0 < float(cutoff) <= 0.5):  # type: ignore[arg-type]
        raise ValueError(
            f"cutoff must be in (0, 0.5] cycles per grid cell, got {cutoff!r}"
            + (f" (from wavelength={wavelength!r})" if wavelength is not None else "")
        )
    if order is not None and (not isinstance(order, (int, np.integer)) or order < 1):
        raise ValueError(f"order must be a positive integer or None (sharp), got {order!r}")
    require_whole(da, [y, x], "da", "a spectral filter needs whole fields")
    kw = {"cutoff": float(cutoff), "order": order, "periodic": (False, info.periodic_x)}  # type: ignore[arg-type]
    out = _apply_spatial(da, np_grid.lowpass, y, x, (da.sizes[y], da.sizes[x]), kw)
    return out.assign_coords({k: da.coords[k] for k in da.coords if k not in out.coords})
