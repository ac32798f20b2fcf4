"""Pure numpy cores of the grid operations: block-mean coarsening, interpolation, low-pass.

Arrays in, arrays out; the two spatial axes are always the last two ``(..., y, x)``.
No xarray, no dask: the wrappers in :mod:`xdownscale.grid` apply these per chunk.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.fft

InterpMethod = Literal["nearest", "bilinear", "bicubic"]


def _as_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def coarsen(a: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    """NaN-aware block mean over ``factor = (fy, fx)`` blocks of the last two axes.

    A block's value is the mean of its finite cells; a block with none is NaN. Without NaN
    this is the linear coarsening operator C' of Wan et al. (2023).
    """
    a = _as_float(a)
    fy, fx = factor
    *lead, ny, nx = a.shape
    blocks = a.reshape(*lead, ny // fy, fy, nx // fx, fx)
    valid = np.isfinite(blocks)
    if valid.all():
        return blocks.mean(axis=(-3, -1))
    total = np.where(valid, blocks, 0).sum(axis=(-3, -1))
    count = valid.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return np.where(count > 0, out, np.nan).astype(a.dtype, copy=False)


def _keys(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = -0.5 (Catmull-Rom)."""
    t = np.abs(t)
    out = np.zeros_like(t)
    near = t <= 1
    far = (t > 1) & (t < 2)
    out[near] = (a + 2) * t[near] ** 3 - (a + 3) * t[near] ** 2 + 1
    out[far] = a * t[far] ** 3 - 5 * a * t[far] ** 2 + 8 * a * t[far] - 4 * a
    return out


def interp_taps(
    n: int, factor: int, interpolation: InterpMethod, periodic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights ``(idx, w)``, each ``(n * factor, taps)``, of a fine axis.

    Fine cell ``j`` sits at coarse-index position ``p = (j + 0.5) / factor - 0.5`` (cell-centred
    grids) and is ``sum_t w[j, t] a[idx[j, t]]``: 1 tap for nearest, 2 for bilinear, 4 for
    bicubic (Keys kernel). Out-of-range neighbours wrap when ``periodic``, else are clamped to
    the edge cell (constant extrapolation over the outer half cell).

    Examples
    --------
    >>> idx, w = interp_taps(2, 2, "bilinear", periodic=False)
    >>> idx.tolist(), w.tolist()
    ([[0, 0], [0, 1], [0, 1], [1, 1]], [[0.25, 0.75], [0.75, 0.25], [0.25, 0.75], [0.75, 0.25]])
    """
    p = (np.arange(n * factor) + 0.5) / factor - 0.5
    if interpolation == "nearest":
        offsets = np.zeros((1,), dtype=int)
        base = np.floor(p + 0.5).astype(int)
        weights = np.ones((p.size, 1))
    else:
        base = np.floor(p).astype(int)
        t = p - base
        if interpolation == "bilinear":
            offsets = np.array([0, 1])
            weights = np.stack([1 - t, t], axis=1)
        elif interpolation == "bicubic":
            offsets = np.array([-1, 0, 1, 2])
            weights = _keys(t[:, None] - offsets[None, :])
        else:  # pragma: no cover - validated by the wrapper
            raise ValueError(interpolation)
    idx = base[:, None] + offsets[None, :]
    idx = np.mod(idx, n) if periodic else np.clip(idx, 0, n - 1)
    return idx, weights


def interp_matrix(n: int, factor: int, interpolation: InterpMethod, periodic: bool) -> np.ndarray:
    """The dense weights ``W`` (n * factor, n) of :func:`interp_taps` (fine = W @ coarse)."""
    idx, weights = interp_taps(n, factor, interpolation, periodic)
    w = np.zeros((idx.shape[0], n))
    np.add.at(w, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), weights.ravel())
    return w


def _along(a: np.ndarray, taps: tuple[np.ndarray, np.ndarray], axis: int) -> np.ndarray:
    """Interpolate ``a`` along ``axis`` with ``taps``: a fixed sum over the taps, in order.

    No BLAS: its results depend on the number of threads, these do not (so a dask worker
    with one thread and a laptop with many give the same fields, to the bit).
    """
    idx, w = taps
    shape = [1] * a.ndim
    shape[axis] = idx.shape[0]
    out = np.take(a, idx[:, 0], axis=axis) * w[:, 0].astype(a.dtype).reshape(shape)
    for t in range(1, idx.shape[1]):
        out = out + np.take(a, idx[:, t], axis=axis) * w[:, t].astype(a.dtype).reshape(shape)
    return out


def _apply(ty, tx, a: np.ndarray) -> np.ndarray:
    return _along(_along(a, ty, -2), tx, -1)


def upsample(
    a: np.ndarray,
    factor: tuple[int, int],
    interpolation: InterpMethod = "bilinear",
    periodic: tuple[bool, bool] = (False, False),
    conservative: bool = False,
) -> np.ndarray:
    """Interpolate the last two axes onto a grid ``factor = (fy, fx)`` times finer.

    NaN-aware: interpolation is normalised by the interpolated validity mask (so valid cells
    next to a gap are not contaminated), a bicubic stencil that touches a gap falls back to
    bilinear, and a fine cell is NaN exactly where its parent coarse cell is NaN.
    With ``conservative`` the block means of the result equal the input exactly
    (``coarsen(upsample(a)) == a``), by adding back the nearest-upsampled residual.
    """
    a = _as_float(a)
    ny, nx = a.shape[-2:]
    (fy, fx), (py, px) = factor, periodic
    dtype = a.dtype
    wy = interp_taps(ny, fy, interpolation, py)
    wx = interp_taps(nx, fx, interpolation, px)
    valid = np.isfinite(a)
    if valid.all():
        out = _apply(wy, wx, a)
    else:
        v = valid.astype(dtype)
        a0 = np.where(valid, a, 0).astype(dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = _apply(wy, wx, a0) / _apply(wy, wx, v)
            if interpolation == "bicubic":
                by = interp_taps(ny, fy, "bilinear", py)
                bx = interp_taps(nx, fx, "bilinear", px)
                absy, absx = (wy[0], np.abs(wy[1])), (wx[0], np.abs(wx[1]))
                touched = _apply(absy, absx, 1 - v) > 0
                linear = _apply(by, bx, a0) / _apply(by, bx, v)
                out = np.where(touched, linear, out)
        parent = np.repeat(np.repeat(valid, fy, axis=-2), fx, axis=-1)
        out = np.where(parent, out, np.nan).astype(dtype, copy=False)
    if conservative:
        residual = a - coarsen(out, (fy, fx))
        out = out + np.repeat(np.repeat(residual, fy, axis=-2), fx, axis=-1)
    return out


def lowpass_response(k: np.ndarray, cutoff: float, order: int | None) -> np.ndarray:
    """Transfer function of the radial low-pass: sharp (``order=None``) or Butterworth."""
    if order is None:
        return (k <= cutoff).astype(np.float64)
    return 1.0 / np.sqrt(1.0 + (k / cutoff) ** (2 * order))


def lowpass(
    a: np.ndarray,
    cutoff: float,
    order: int | None = None,
    periodic: tuple[bool, bool] = (False, False),
) -> np.ndarray:
    """Radial spectral low-pass of the last two axes; ``cutoff`` in cycles per grid cell.

    Non-periodic axes are mirrored (even extension, as a DCT does) before the FFT, so the filter
    causes no wrap-around artefacts at the edges. NaN cells are filled with the field's mean of
    valid cells for the transform and are NaN again in the result.
    """
    a = _as_float(a)
    ny, nx = a.shape[-2:]
    valid = np.isfinite(a)
    work = a
    if not valid.all():
        with np.errstate(invalid="ignore"):
            fill = np.nanmean(np.where(valid, a, np.nan), axis=(-2, -1), keepdims=True)
        work = np.where(valid, a, np.nan_to_num(fill))
    py, px = periodic
    if not py:
        work = np.concatenate([work, work[..., ::-1, :]], axis=-2)
    if not px:
        work = np.concatenate([work, work[..., ::-1]], axis=-1)
    my, mx = work.shape[-2:]
    spec = scipy.fft.rfft2(work, axes=(-2, -1), workers=-1)
    ky = np.fft.fftfreq(my)[:, None]
    kx = np.fft.rfftfreq(mx)[None, :]
    h = lowpass_response(np.sqrt(ky**2 + kx**2), cutoff, order).astype(spec.real.dtype)
    out = scipy.fft.irfft2(spec * h, s=(my, mx), axes=(-2, -1), workers=-1)[..., :ny, :nx]
    out = out.astype(a.dtype, copy=False)
    return np.where(valid, out, np.nan) if not valid.all() else out
