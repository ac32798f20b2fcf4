"""Pure numpy cores of the evaluation metrics (twins of :mod:`xdownscale.metrics`).

Arrays in, arrays out, explicit axes; no xarray, no dask. Conventions:

- per-point (marginal) metrics take samples along the **last** axis, ``(..., n)`` and
  ``(..., m)``, and return ``(...)``: one value per grid point;
- field metrics (:func:`cov_rmse`, :func:`mmd`) take ``(..., n, d)`` and ``(..., m, d)``
  (samples, flattened features) and return ``(...)``;
- :func:`melr` takes two energy spectra ``(..., K)``.

NaN propagates: a point (or field set) with a NaN in either sample gives NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "cov_rmse",
    "crps_ensemble",
    "kde_scott",
    "kld",
    "median_bandwidth",
    "melr",
    "mmd",
    "scott_bandwidth",
    "wasserstein",
]

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _trapezoid(f: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Trapezoidal rule along the last axis (np.trapezoid needs numpy >= 2)."""
    return ((f[..., 1:] + f[..., :-1]) * np.diff(t, axis=-1)).sum(axis=-1) / 2.0


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# ----------------------------------------------------------------------------- wasserstein


def wasserstein(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Wasserstein-1 distance between the empirical distributions along the last axis.

    ``W1 = integral_0^1 |F_a^{-1}(u) - F_b^{-1}(u)| du``, evaluated exactly from the sorted
    samples: the quantile functions are step functions that jump at ``i/n`` and ``j/m``; the
    union of those levels is the same for every point, so all points are done at once.
    Equals :func:`scipy.stats.wasserstein_distance` with uniform weights.

    Parameters
    ----------
    a : ndarray, shape (..., n)
    b : ndarray, shape (..., m)

    Returns
    -------
    ndarray, shape (...)
    """
    a = np.sort(_f64(a), axis=-1)
    b = np.sort(_f64(b), axis=-1)
    n, m = a.shape[-1], b.shape[-1]
    if n == 0 or m == 0:
        raise ValueError(f"need at least one sample on each side, got n={n}, m={m}")
    if n == m:
        return np.abs(a - b).mean(axis=-1)
    # breakpoints u = i/n and j/m as exact integers over n*m
    cuts = np.union1d(np.arange(n + 1) * m, np.arange(m + 1) * n)
    width = np.diff(cuts) / (n * m)
    mid2 = cuts[:-1] + cuts[1:]  # twice the interval midpoint, times n*m
    ia = mid2 // (2 * m)  # floor(u_mid * n)
    ib = mid2 // (2 * n)  # floor(u_mid * m)
    return (np.abs(a[..., ia] - b[..., ib]) * width).sum(axis=-1)


# ----------------------------------------------------------------------------- kld (KDE)


def scott_bandwidth(x: np.ndarray) -> np.ndarray:
    """Scott's rule for 1-D Gaussian KDE, ``h = std(x, ddof=1) * n ** (-1/5)`` (last axis).

    The same bandwidth as :class:`scipy.stats.gaussian_kde` with ``bw_method="scott"``.
    """
    x = _f64(x)
    n = x.shape[-1]
    return x.std(axis=-1, ddof=1) * n ** (-0.2)


def kde_scott(x: np.ndarray, grid: np.ndarray, *, max_elements: int = 2**22) -> np.ndarray:
    """Gaussian KDE with Scott bandwidth of each point's samples, on each point's grid.

    Parameters
    ----------
    x : ndarray, shape (P, n)
        Samples of P points.
    grid : ndarray, shape (P, G)
        Evaluation grid of each point.
    max_elements : int
        Size of the ``(points, G, n)`` work array per block (memory bound, 8 bytes each).

    Returns
    -------
    ndarray, shape (P, G)
        Density values; ``scipy.stats.gaussian_kde(x[p])(grid[p])`` for every ``p``.
    """
    x = _f64(x)
    grid = _f64(grid)
    p_total, n = x.shape
    h = scott_bandwidth(x)
    out = np.empty(grid.shape)
    g = grid.shape[-1]
    block = max(1, max_elements // max(1, g * n))
    for s in range(0, p_total, block):
        sl = slice(s, s + block)
        hs = h[sl, None, None]
        z = (grid[sl, :, None] - x[sl, None, :]) / hs
        out[sl] = np.exp(-0.5 * z * z).sum(axis=-1) / (n * hs[..., 0] * _SQRT_2PI)
    return out


def kld(
    generated: np.ndarray,
    reference: np.ndarray,
    *,
    n_grid: int = 256,
    eps: float = 1e-10,
    max_elements: int = 2**22,
) -> np.ndarray:
    """KL divergence ``KL(p_ref || p_gen)`` between Gaussian KDEs, per point (last axis).

    Parameters
    ----------
    generated : ndarray, shape (..., n)
    reference : ndarray, shape (..., m)
    n_grid : int
        Points of the common evaluation grid of each point: from the smallest to the largest
        sample of both sets, widened by three bandwidths on each side.
    eps : float
        Relative density floor: the reference density is integrated only where it exceeds
        ``eps * max(p_ref)``, and the generated density is floored at that value (so a
        generated KDE that misses the reference's support gives a large, finite value).
    max_elements : int
        Memory bound of the vectorised KDE (see :func:`kde_scott`).

    Returns
    -------
    ndarray, shape (...)
        ``integral p_ref log(p_ref / p_gen)`` by the trapezoidal rule. NaN where a sample holds
        NaN, and where one sample is constant (no KDE) unless both are the same constant (0).
    """
    g = _f64(generated)
    r = _f64(reference)
    lead = np.broadcast_shapes(g.shape[:-1], r.shape[:-1])
    g = np.broadcast_to(g, (*lead, g.shape[-1])).reshape(-1, g.shape[-1])
    r = np.broadcast_to(r, (*lead, r.shape[-1])).reshape(-1, r.shape[-1])
    if g.shape[-1] < 2 or r.shape[-1] < 2:
        raise ValueError(
            f"KDE needs at least 2 samples per point, got {g.shape[-1]} generated and "
            f"{r.shape[-1]} reference"
        )
    out = np.full(g.shape[0], np.nan)
    finite = np.isfinite(g).all(axis=-1) & np.isfinite(r).all(axis=-1)
    hg, hr = scott_bandwidth(g), scott_bandwidth(r)
    const = finite & ((hg == 0) | (hr == 0))
    same_const = const & (hg == 0) & (hr == 0) & (g[:, 0] == r[:, 0])
    out[same_const] = 0.0
    ok = finite & ~const
    if ok.any():
        g_ok, r_ok = g[ok], r[ok]
        pad = 3.0 * np.maximum(hg[ok], hr[ok])
        lo = np.minimum(g_ok.min(axis=-1), r_ok.min(axis=-1)) - pad
        hi = np.maximum(g_ok.max(axis=-1), r_ok.max(axis=-1)) + pad
        t = np.linspace(0.0, 1.0, n_grid)
        grid = lo[:, None] + (hi - lo)[:, None] * t[None, :]
        p = kde_scott(r_ok, grid, max_elements=max_elements)
        q = kde_scott(g_ok, grid, max_elements=max_elements)
        floor = eps * p.max(axis=-1, keepdims=True)
        use = p > floor
        with np.errstate(divide="ignore", invalid="ignore"):
            integrand = np.where(use, p * (np.log(p) - np.log(np.maximum(q, floor))), 0.0)
        out[ok] = _trapezoid(integrand, grid)
    return out.reshape(lead)


# ----------------------------------------------------------------------------- crps


def crps_ensemble(ensemble: np.ndarray, obs: np.ndarray, *, fair: bool = False) -> np.ndarray:
    """CRPS of an ensemble (last axis) against observations, per point.

    ``CRPS = mean_i |x_i - y| - 1/(2 m^2) sum_ij |x_i - x_j|`` (standard, the CRPS of the
    empirical distribution), or with ``1/(2 m (m-1))`` for the fair (unbiased) form of
    Ferro (2014). The double sum uses the sorted members:
    ``sum_ij |x_i - x_j| = 2 sum_i (2i - m - 1) x_(i)``, O(m log m).

    Parameters
    ----------
    ensemble : ndarray, shape (..., m)
    obs : ndarray, shape (...)
    fair : bool

    Returns
    -------
    ndarray, shape (...)
    """
    x = np.sort(_f64(ensemble), axis=-1)
    y = _f64(obs)
    m = x.shape[-1]
    if m < 1 or (fair and m < 2):
        raise ValueError(
            f"the {'fair ' if fair else ''}CRPS needs at least {2 if fair else 1} members, got {m}"
        )
    skill = np.abs(x - y[..., None]).mean(axis=-1)
    rank = 2.0 * np.arange(1, m + 1) - m - 1
    pair_sum = 2.0 * (x * rank).sum(axis=-1)  # sum_ij |x_i - x_j|
    spread = pair_sum / (2.0 * m * (m - 1)) if fair else pair_sum / (2.0 * m * m)
    return skill - spread


# ----------------------------------------------------------------------------- spectra


def melr(e_gen: np.ndarray, e_ref: np.ndarray, *, weighted: bool = False) -> np.ndarray:
    """Mean energy log ratio of two energy spectra (last axis), Wan et al. (2023).

    Unweighted: ``mean_k |log(E_gen(k) / E_ref(k))|``; weighted:
    ``sum_k w_k |log(E_gen(k) / E_ref(k))|`` with ``w_k = E_ref(k) / sum_k E_ref(k)``.
    """
    e_gen, e_ref = _f64(e_gen), _f64(e_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.abs(np.log(e_gen) - np.log(e_ref))
    if not weighted:
        return lr.mean(axis=-1)
    w = e_ref / e_ref.sum(axis=-1, keepdims=True)
    return (w * lr).sum(axis=-1)


# ----------------------------------------------------------------------------- field metrics


def _centre(a: np.ndarray) -> np.ndarray:
    return a - a.mean(axis=-2, keepdims=True)


def cov_rmse(generated: np.ndarray, reference: np.ndarray, *, relative: bool = True) -> np.ndarray:
    """RMSE between the sample covariance matrices of two sets of flattened fields.

    Parameters
    ----------
    generated : ndarray, shape (..., n, d)
    reference : ndarray, shape (..., m, d)
    relative : bool
        Divide by the RMS of the reference covariance entries, i.e. return the relative
        Frobenius error ``||C_gen - C_ref||_F / ||C_ref||_F``; False returns
        ``||C_gen - C_ref||_F / d`` (RMS over the ``d^2`` entries, in squared data units).

    Returns
    -------
    ndarray, shape (...)

    Notes
    -----
    Covariances use ``ddof=1``. When ``n + m < d`` the ``d x d`` matrices are never formed:
    with centred data ``X`` (n x d), ``||C||_F^2 = ||X X^T||_F^2/(n-1)^2`` and
    ``<C_g, C_r>_F = ||X_g X_r^T||_F^2/((n-1)(m-1))``.
    """
    g, r = _f64(generated), _f64(reference)
    n, d = g.shape[-2:]
    m = r.shape[-2]
    if r.shape[-1] != d:
        raise ValueError(f"generated has {d} features per sample but reference has {r.shape[-1]}")
    if n < 2 or m < 2:
        raise ValueError(f"covariances need at least 2 samples, got n={n}, m={m}")
    xg, xr = _centre(g), _centre(r)
    if d <= n + m:
        cg = np.swapaxes(xg, -1, -2) @ xg / (n - 1)
        cr = np.swapaxes(xr, -1, -2) @ xr / (m - 1)
        diff2 = ((cg - cr) ** 2).sum(axis=(-2, -1))
        ref2 = (cr**2).sum(axis=(-2, -1))
    else:
        gg = ((xg @ np.swapaxes(xg, -1, -2)) ** 2).sum(axis=(-2, -1)) / (n - 1) ** 2
        rr = ((xr @ np.swapaxes(xr, -1, -2)) ** 2).sum(axis=(-2, -1)) / (m - 1) ** 2
        gr = ((xg @ np.swapaxes(xr, -1, -2)) ** 2).sum(axis=(-2, -1)) / ((n - 1) * (m - 1))
        diff2 = np.maximum(gg + rr - 2.0 * gr, 0.0)
        ref2 = rr
    if relative:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(diff2 / ref2)
    return np.sqrt(diff2) / d


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = (a * a).sum(axis=-1)[..., :, None]
    bb = (b * b).sum(axis=-1)[..., None, :]
    return np.maximum(aa + bb - 2.0 * (a @ np.swapaxes(b, -1, -2)), 0.0)


def median_bandwidth(generated: np.ndarray, reference: np.ndarray) -> float:
    """Median heuristic: the median Euclidean distance between distinct pooled samples."""
    z = np.concatenate([_f64(generated), _f64(reference)], axis=-2)
    d2 = _sqdist(z, z)
    iu = np.triu_indices(z.shape[-2], k=1)
    return float(np.sqrt(np.median(d2[iu])))


def mmd(
    generated: np.ndarray,
    reference: np.ndarray,
    *,
    bandwidth: float | None = None,
    squared: bool = False,
) -> np.ndarray | float:
    """Maximum mean discrepancy with the RBF kernel between two sets of fields.

    Parameters
    ----------
    generated : ndarray, shape (n, d)
    reference : ndarray, shape (m, d)
    bandwidth : float, optional
        Kernel length scale ``sigma`` in ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``.
        Default: the median heuristic (:func:`median_bandwidth`) on the pooled samples.
    squared : bool
        Return MMD^2 instead of MMD.

    Returns
    -------
    float
        The biased (V-statistic) estimate
        ``MMD^2 = mean K_gg + mean K_rr - 2 mean K_gr`` (>= 0, exactly 0 for identical sets).
    """
    g, r = _f64(generated), _f64(reference)
    if g.ndim != 2 or r.ndim != 2 or g.shape[1] != r.shape[1]:
        raise ValueError(
            f"mmd needs two (samples, features) arrays with the same features, got shapes "
            f"{g.shape} and {r.shape}"
        )
    if not (np.isfinite(g).all() and np.isfinite(r).all()):
        return np.nan
    sigma = median_bandwidth(g, r) if bandwidth is None else float(bandwidth)
    if not sigma > 0:
        raise ValueError(f"the RBF bandwidth must be > 0, got {sigma!r} (are all fields equal?)")
    c = -0.5 / sigma**2
    kgg = np.exp(c * _sqdist(g, g)).mean()
    krr = np.exp(c * _sqdist(r, r)).mean()
    kgr = np.exp(c * _sqdist(g, r)).mean()
    m2 = max(kgg + krr - 2.0 * kgr, 0.0)
    return float(m2 if squared else np.sqrt(m2))
