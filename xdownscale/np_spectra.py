"""Pure numpy core of the radially averaged power spectral density.

Normalisation: ``P(k) = mean over a ring of |FFT(u)(kappa)|^2 / (Nx Ny)``,
so white noise of variance s^2 has the flat spectrum ``P(k) = s^2``, and Parseval reads
``sum over all kappa of |FFT(u)|^2 / (Nx Ny) = Nx Ny mean(u^2)``.

Rings: ``kappa = (ky, kx)`` in cycles per grid cell (``ky = iy / Ny``, ``kx = ix / Nx``), with
ring index ``r = round(|kappa| L)``, ``L = max(Nx, Ny)``, i.e. ring ``r`` holds the modes with
``|kappa| L`` in ``[r - 1/2, r + 1/2)`` and is labelled ``k = r / L``. On square grids this is
exactly pysteps' ``rapsd`` (which rounds the radius in index units); on non-square grids rings are
in physical wavenumber, so a sinusoid peaks at its own wavenumber whatever the aspect ratio.
``rings="index"`` reproduces pysteps on non-square grids too (radius in FFT index units, which
mixes wavenumbers ``iy/Ny`` and ``ix/Nx`` of different physical size).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, NamedTuple

import numpy as np
import scipy.fft
import scipy.sparse

Window = Literal["hann"] | None
Detrend = Literal["constant", "linear"] | None
Rings = Literal["wavenumber", "index"]


@lru_cache(maxsize=32)
def ring_operator(
    ny: int,
    nx: int,
    truncate: bool = True,
    rings: Rings = "wavenumber",
    edges: tuple[float, ...] | None = None,
) -> tuple[scipy.sparse.csr_matrix, np.ndarray, np.ndarray]:
    """Sparse averaging operator from the rfft2 half-plane power to rings.

    With ``edges`` (increasing, cycles per grid cell), bin ``i`` holds the modes with
    ``edges[i] < |kappa| <= edges[i+1]`` and is labelled by their mean ``|kappa|``; ``truncate``
    and ``rings`` are then ignored.

    Returns
    -------
    op : scipy.sparse.csr_matrix, shape (ny * (nx // 2 + 1), n_rings)
        ``power.reshape(B, -1) @ op`` gives the ring means; each rfft column stands for one or
        two full-plane modes (weight 2 for columns whose mirror -kx is not stored).
    k : ndarray, shape (n_rings,)
        Ring wavenumbers in cycles per grid cell.
    count : ndarray, shape (n_rings,)
        Number of full-plane modes in each ring.
    """
    big = max(nx, ny)
    nxr = nx // 2 + 1
    if edges is not None:
        return _binned_operator(ny, nx, np.asarray(edges, dtype=np.float64))
    if rings == "index":  # pysteps: radius in FFT index units, whatever the aspect ratio
        ky = np.fft.fftfreq(ny, 1.0 / ny)[:, None]
        kx = np.fft.rfftfreq(nx, 1.0 / nx)[None, :]
        r = np.rint(np.sqrt(ky**2 + kx**2)).astype(np.int64)
    else:
        ky = np.fft.fftfreq(ny)[:, None]
        kx = np.fft.rfftfreq(nx)[None, :]
        r = np.rint(np.sqrt(ky**2 + kx**2) * big).astype(np.int64)
    mult = _multiplicity(ny, nx)
    n_rings = (big - 1) // 2 + 1 if truncate else int(r.max()) + 1
    keep = r < n_rings
    count = np.bincount(r[keep], weights=mult[keep], minlength=n_rings)
    rows = np.flatnonzero(keep.ravel())
    cols = r.ravel()[rows]
    vals = mult.ravel()[rows] / count[cols]
    op = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(ny * nxr, n_rings))
    return op, np.arange(n_rings) / big, count


def _multiplicity(ny: int, nx: int) -> np.ndarray:
    """How many full-plane modes each rfft2 coefficient stands for (1 or 2)."""
    mult = np.full((1, nx // 2 + 1), 2.0)
    mult[0, 0] = 1.0
    if nx % 2 == 0:
        mult[0, -1] = 1.0
    return np.broadcast_to(mult, (ny, nx // 2 + 1))


def _binned_operator(ny: int, nx: int, edges: np.ndarray):
    kmag = np.sqrt(np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.rfftfreq(nx)[None, :] ** 2)
    nb = edges.size - 1
    r = np.digitize(kmag, edges, right=True) - 1
    mult = _multiplicity(ny, nx)
    keep = (r >= 0) & (r < nb)
    count = np.bincount(r[keep], weights=mult[keep], minlength=nb)
    ksum = np.bincount(r[keep], weights=(mult * kmag)[keep], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = ksum / count
        rows = np.flatnonzero(keep.ravel())
        cols = r.ravel()[rows]
        vals = mult.ravel()[rows] / count[cols]
    op = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(ny * (nx // 2 + 1), nb))
    return op, k, count


def _detrend(a: np.ndarray, detrend: Detrend) -> np.ndarray:
    if detrend is None:
        return a
    a = a - a.mean(axis=(-2, -1), keepdims=True)
    if detrend == "constant":
        return a
    ny, nx = a.shape[-2:]
    yc = np.arange(ny, dtype=a.dtype) - (ny - 1) / 2
    xc = np.arange(nx, dtype=a.dtype) - (nx - 1) / 2
    # centred coordinates are orthogonal to each other and to the constant: closed-form plane fit
    by = np.einsum("...ij,i->...", a, yc) / (nx * (yc**2).sum())
    bx = np.einsum("...ij,j->...", a, xc) / (ny * (xc**2).sum())
    return a - by[..., None, None] * yc[:, None] - bx[..., None, None] * xc[None, :]


def window_2d(ny: int, nx: int, taper: Window, dtype=np.float64) -> np.ndarray | None:
    """2-D window scaled so that ``mean(w^2) == 1`` (white noise keeps its level)."""
    if taper is None:
        return None

    def hann(n: int) -> np.ndarray:  # periodic Hann, as scipy.signal.windows.hann(n, sym=False)
        return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)

    w = np.outer(hann(ny), hann(nx))
    return (w / np.sqrt(np.mean(w**2))).astype(dtype)


def psd(
    a: np.ndarray,
    *,
    taper: Window = None,
    detrend: Detrend = None,
    fill_nan: bool = False,
    truncate: bool = True,
    rings: Rings = "wavenumber",
    edges: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Radially averaged PSD of each field in ``a`` (last two axes), shape ``(..., n_rings)``.

    With ``fill_nan`` a NaN cell takes the mean of its field's finite cells, and the spectrum is
    divided by the finite fraction (so white noise keeps its level); an all-NaN field gives NaN.
    Without it, NaN propagates.
    """
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    *lead, ny, nx = a.shape
    scale = None
    if fill_nan:
        valid = np.isfinite(a)
        if not valid.all():
            frac = valid.mean(axis=(-2, -1))
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.nanmean(np.where(valid, a, np.nan), axis=(-2, -1), keepdims=True)
                scale = np.where(frac > 0, 1.0 / frac, np.nan)
            a = np.where(valid, a, mean)
    a = _detrend(a, detrend)
    w = window_2d(ny, nx, taper, a.dtype)
    if w is not None:
        a = a * w
    op, _, _ = ring_operator(ny, nx, truncate, rings, edges)
    op_t = op.T.tocsr().astype(a.dtype)
    flat = a.reshape(-1, ny, nx)
    out = np.empty((flat.shape[0], op.shape[1]), dtype=a.dtype)
    # blocks of about 2 MB of spectrum keep the FFT output in cache (1.5x faster than one call)
    step = max(1, (2 << 20) // (ny * (nx // 2 + 1) * 2 * a.itemsize))
    for i in range(0, flat.shape[0], step):
        spec = scipy.fft.rfft2(flat[i : i + step], axes=(-2, -1), workers=-1)
        power = spec.real**2 + spec.imag**2
        out[i : i + step] = (op_t @ power.reshape(power.shape[0], -1).T).T
    out = (out / (nx * ny)).reshape(*lead, op.shape[1])
    if scale is not None:
        out = out * scale[..., None]
    return out


# ----------------------------------------------------------------------------- preserved scale


class Crossing(NamedTuple):
    """Result of :func:`find_crossing`.

    ``case`` is ``"crossed"`` (the source drops below the target for good), ``"half"``
    (never crosses, below everywhere: the half-power point), ``"smooth"`` (below half the
    target's power everywhere: the lowest wavenumber) or ``"rough"`` (at or above the target
    everywhere: the highest wavenumber). ``p_target`` is the target spectrum on the source's
    wavenumbers, ``gain`` the factor the source spectrum was scaled by (``match_below``).
    """

    k_star: float
    p_star: float
    case: str
    capped: bool
    gain: float | None
    p_target: np.ndarray


def interp_spectrum(k_from: np.ndarray, p_from: np.ndarray, k_to: np.ndarray) -> np.ndarray:
    """A spectrum interpolated log-log onto other wavenumbers (NaN outside its range).

    Examples
    --------
    >>> interp_spectrum(np.array([0.1, 0.4]), np.array([1.0, 1e-2]), np.array([0.2, 0.5]))
    array([0.1, nan])
    """
    m = (k_from > 0) & (p_from > 0)
    vals = np.full(k_to.shape, np.nan)
    inside = (k_to >= k_from[m].min()) & (k_to <= k_from[m].max())
    vals[inside] = np.exp(np.interp(np.log(k_to[inside]), np.log(k_from[m]), np.log(p_from[m])))
    return vals


def find_crossing(
    k: np.ndarray,
    p_src: np.ndarray,
    p_target: np.ndarray,
    *,
    k_target: np.ndarray | None = None,
    smooth: int = 3,
    tolerance: float = 0.0,
    match_below: float | None = None,
    k_max: float | None = None,
) -> Crossing:
    """The wavenumber k* from which on ``p_src`` stays below ``p_target``, and ``P_target(k*)``.

    Parameters
    ----------
    k : ndarray
        Wavenumbers of ``p_src`` (cycles per grid cell).
    p_src, p_target : ndarray
        Radially averaged spectra; ``p_target`` on ``k_target`` when given (then interpolated
        log-log onto ``k``, :func:`interp_spectrum`), else on ``k``.
    smooth : int
        Width (bins) of the running mean of the log ratio.
    tolerance : float
        The source counts as below where ``P_src < (1 - tolerance) P_target``.
    match_below : float, optional
        Scale ``p_src`` first so that its mean over ``0 < k <= match_below`` equals the target's
        (compare shapes, not levels).
    k_max : float, optional
        Cap k* at this wavenumber.

    Returns
    -------
    Crossing

    Raises
    ------
    ValueError
        If fewer than 2 wavenumbers have both spectra positive and finite.

    Notes
    -----
    With ``R(k) = log P_src(k) - log P_target(k)`` (k > 0, smoothed), k* is where R falls
    through ``log(1 - tolerance)`` after the last ring where it is above, interpolated
    linearly in log k between that ring and the next; ``P_target(k*)`` is interpolated
    log-log between the same rings (Hess et al. 2024, section 4.5).

    Examples
    --------
    >>> k = np.arange(1, 33) / 64
    >>> c = find_crossing(k, 0.01 * k**-4.0, k**-2.0)  # crossing at k = 0.1
    >>> c.case, round(c.k_star, 2)
    ('crossed', 0.1)
    """
    ps = np.asarray(p_src).astype(np.float64)
    pt = np.asarray(p_target)
    if k_target is not None and (len(k_target) != len(k) or not np.allclose(k_target, k)):
        pt = interp_spectrum(np.asarray(k_target), pt, np.asarray(k))
    pt = pt.astype(np.float64)
    gain = None
    if match_below is not None:
        valid = (k > 0) & np.isfinite(ps) & np.isfinite(pt) & (ps > 0) & (pt > 0)
        big = valid & (k <= match_below)
        if not big.any() and valid.any():  # no valid ring that large: use the largest valid one
            big = valid & (k == k[valid].min())
        if big.any():  # else no valid ring at all: reported below
            gain = float(np.mean(pt[big]) / np.mean(ps[big]))
            ps = ps * gain
    use = np.flatnonzero((k > 0) & np.isfinite(ps) & np.isfinite(pt) & (ps > 0) & (pt > 0))
    if use.size < 2:
        raise ValueError("fewer than 2 wavenumbers where both spectra are positive and finite")
    ratio = np.log(ps[use]) - np.log(pt[use])
    if smooth > 1 and ratio.size >= smooth:
        kernel = np.ones(smooth) / smooth
        padded = np.pad(ratio, smooth // 2, mode="edge")
        ratio = np.convolve(padded, kernel, mode="valid")[: use.size]

    def crossing(thr: float):
        """Interpolated k where the ratio falls through thr for good, or the count above."""
        above = np.flatnonzero(ratio >= thr)
        if above.size == 0 or above[-1] == use.size - 1:
            return above.size
        j = above[-1]
        i0, i1 = use[j], use[j + 1]
        t = (ratio[j] - thr) / (ratio[j] - ratio[j + 1])
        log_k = np.log(k[i0]) + t * (np.log(k[i1]) - np.log(k[i0]))
        log_p = np.interp(log_k, np.log(k[[i0, i1]]), np.log(pt[[i0, i1]]))
        return float(np.exp(log_k)), float(np.exp(log_p))

    found = crossing(np.log1p(-tolerance))
    if isinstance(found, tuple):
        (k_star, p_star), case = found, "crossed"
    elif found == 0:
        half = crossing(np.log(0.5))
        if isinstance(half, tuple):
            (k_star, p_star), case = half, "half"
        else:
            k_star, p_star, case = float(k[use[0]]), float(pt[use[0]]), "smooth"
    else:
        k_star, p_star, case = float(k[use[-1]]), float(pt[use[-1]]), "rough"
    capped = k_max is not None and k_star > k_max
    if k_max is not None and capped:
        k_star = float(k_max)
        p_star = float(np.exp(np.interp(np.log(k_max), np.log(k[use]), np.log(pt[use]))))
    return Crossing(k_star, p_star, case, capped, gain, pt)
