"""Grid operations shared by every verb: block-mean coarsening, interpolation, low-pass.

xarray/dask wrappers of :mod:`xdownscale.np_grid`; dims and grids are found by
:mod:`xdownscale.checks`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import xarray as xr

from . import np_grid
from .checks import (
    as_factor,
    check_choice,
    check_dataarray,
    check_finite,
    check_memory,
    coord_spacing,
    find_spatial_dims,
    grid_info,
    require_whole,
)

__all__ = ["coarsen", "lowpass", "upsample"]


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
    da = check_finite(check_dataarray(da, "da"), "da")
    y, x = find_spatial_dims(da, spatial_dims)
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


def _check_upsample_memory(da: xr.DataArray, y: Hashable, x: Hashable, fy: int, fx: int) -> None:
    """Refuse an upsampling whose result (per block, for dask) cannot fit in memory."""
    itemsize = np.dtype(da.dtype if np.issubdtype(da.dtype, np.floating) else np.float64).itemsize
    ny, nx = da.sizes[y], da.sizes[x]
    if da.chunks is None:
        fields = da.size // (ny * nx)
    else:
        fields = int(np.prod([max(c) for d, c in da.chunksizes.items() if d not in (y, x)]))
    out = fields * ny * fy * nx * fx * itemsize
    weights = (ny * fy * ny + nx * fx * nx) * itemsize
    check_memory(
        3 * out + weights,  # the result and two temporaries of its size, and the weights
        f"upsample by {fy} x {fx} ({ny} x {nx} -> {ny * fy} x {nx * fx} cells, {fields} "
        f"field(s) per {'block' if da.chunks is not None else 'call'})",
        "use a smaller factor, or chunk the non-spatial dims (e.g. da.chunk(time=1)) so that "
        "each block fits",
    )


def upsample(
    da: xr.DataArray,
    factor: int | tuple[int, int],
    *,
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
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
    interpolation : {"nearest", "bilinear", "bicubic"}
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
    check_choice(interpolation, "interpolation", ("nearest", "bilinear", "bicubic"))
    da = check_finite(check_dataarray(da, "da"), "da")
    info = grid_info(da, spatial_dims)
    y, x = info.y, info.x
    fy, fx = as_factor(factor)
    require_whole(da, [y, x], "da", "interpolation needs whole fields")
    _check_upsample_memory(da, y, x, fy, fx)
    kw = {
        "factor": (fy, fx),
        "interpolation": interpolation,
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
    da = check_finite(check_dataarray(da, "da"), "da")
    info = grid_info(da, spatial_dims)
    y, x = info.y, info.x
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
