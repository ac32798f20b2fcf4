"""Pure numpy core: QDM factors interpolated across neighbouring groups (month, season).

With ``group="time.month"`` (or season) and ``interp="linear"``, xsdba (0.7) does not take
each month's own factors: it interpolates the factor surface ``af(tau, g)`` in two dims, the
quantile ``tau`` and a fractional group coordinate ``g`` of the day (mid-month at the month's
node), so that the factors change smoothly through the year. This module reproduces that
convention exactly (Cannon et al. 2015 leave it open):

* every time step gets a fractional group coordinate (:func:`group_coord`):
  month ``g = month - 0.5 + day / days_in_month`` (in (0.5, 12.5]); season
  ``g = dayofyear / days_in_year * 4 - 1/6`` (in (-1/6, 23/6]);
* the factor table ``af (G, nq)`` is padded cyclically along the group axis: month rows
  ``[Dec, Jan..Dec, Jan]`` at ``g = 0..13``, season rows ``[SON, DJF, MAM, JJA, SON, DJF]``
  at ``g = -1..4``;
* the surface is piecewise linear on the triangles of the Delaunay triangulation of the node
  grid ``(tau_k, g_j)`` (what ``scipy.interpolate.griddata(method="linear")`` does). The
  cells are rectangles, so each is split along a diagonal that Qhull chooses; the choices
  are recovered once per (nodes, group axis) with the same Qhull call, and the triangles are
  evaluated in closed form, vectorised;
* ``extrapolation="constant"``: below the first node (above the last) the first (last)
  non-NaN factor of each padded row, interpolated linearly in ``g``; ``"nan"``: NaN outside
  the hull.

Cells with NaN nodes (undefined multiplicative factors) use the Delaunay triangulation of
their remaining nodes (cached per NaN pattern), as griddata does. Arrays in, arrays out; no
xarray.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.spatial import Delaunay

__all__ = ["factors_at", "group_coord", "padded_group_axis", "xsdba_nodes"]

_BATCH = 2**18  # values per batch (a few MB of temporaries)


# ------------------------------------------------------------------ group coordinate


def group_coord(
    prop: str,
    *,
    month: np.ndarray | None = None,
    day: np.ndarray | None = None,
    days_in_month: np.ndarray | None = None,
    dayofyear: np.ndarray | None = None,
    days_in_year: np.ndarray | None = None,
) -> np.ndarray:
    """Fractional group coordinate of each time step (xsdba ``Grouper.get_index(interp=True)``).

    month:  ``month - 0.5 + day / days_in_month`` (day 1 of January = 0.532, 31 Jan = 1.5,
            1 Feb = 1.536 in noleap; the integer ``m`` is reached on day ``days_in_month / 2``).
    season: ``dayofyear / days_in_year * 4 - 1/6`` with ``days_in_year`` 360 (360_day),
            365 (noleap / 365_day), 366 (all_leap), 365 + is_leap (standard, gregorian,
            proleptic_gregorian, julian, numpy datetime64).  Integers 0..3 = DJF, MAM, JJA, SON.

    Examples
    --------
    >>> group_coord("month", month=np.array([1, 2]), day=np.array([31, 14]),
    ...             days_in_month=np.array([31, 28])).tolist()
    [1.5, 2.0]
    """
    if prop == "month" and month is not None and day is not None and days_in_month is not None:
        return np.asarray(month) - 0.5 + np.asarray(day) / np.asarray(days_in_month)
    if prop == "season" and dayofyear is not None and days_in_year is not None:
        return np.asarray(dayofyear) / np.asarray(days_in_year) * 4 - 1.0 / 6.0
    if prop == "dayofyear" and dayofyear is not None:
        return np.asarray(dayofyear, dtype=np.float64)
    raise ValueError(f"no fractional coordinate for group {prop!r} from the arguments given")


def padded_group_axis(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the cyclically padded group axis and the row of ``af`` on each.

    ``groups`` are the coordinates of af's group axis (month 1..12, season 0..3 in the order
    DJF MAM JJA SON).  As xsdba ``add_cyclic_bounds(cyclic_coords=False)``: the last row is
    prepended at ``groups[0] - (groups[1] - groups[0])`` and the first appended at
    ``groups[-1] + (groups[-1] - groups[-2])``.
    """
    g = np.asarray(groups, dtype=np.float64)
    n = g.size
    if n == 1:
        return g, np.zeros(1, dtype=np.intp)
    gp = np.concatenate([[g[0] - (g[1] - g[0])], g, [g[-1] + (g[-1] - g[-2])]])
    rows = np.concatenate([[n - 1], np.arange(n), [0]]).astype(np.intp)
    return gp, rows


def xsdba_nodes(nq: int, dtype=np.float32) -> np.ndarray:
    """xsdba's quantile nodes: ``linspace(1/2n, 1 - 1/2n, n)`` cast to the dtype of ref (float32
    for the test data), returned as float64 (what griddata / Qhull see)."""
    dq = 1 / nq / 2
    return np.linspace(dq, 1 - dq, nq).astype(dtype).astype(np.float64)


# ------------------------------------------------------------------ triangulation


@lru_cache(maxsize=64)
def _diagonals(nodes_b: bytes, gp_b: bytes) -> np.ndarray:
    """(Gp - 1, nq - 1) int8: +1 where Qhull splits cell (j, k) along (k, j)-(k+1, j+1),
    -1 along (k+1, j)-(k, j+1).  Points are passed in xsdba's order (group-major)."""
    x = np.frombuffer(nodes_b, dtype=np.float64)
    gp = np.frombuffer(gp_b, dtype=np.float64)
    nq, ng = x.size, gp.size
    pts = np.column_stack([np.tile(x, ng), np.repeat(gp, nq)])
    tri = Delaunay(pts)
    s = tri.simplices
    k = s % nq
    j = s // nq
    k0, j0 = k.min(1), j.min(1)
    if not (np.all(k.max(1) - k0 == 1) and np.all(j.max(1) - j0 == 1)):
        raise RuntimeError("Delaunay triangles are not halves of grid cells")  # pragma: no cover
    # the triangle's vertex missing from its cell tells the diagonal: missing (k0,j0) or
    # (k0+1,j0+1) -> diagonal (k0+1,j0)-(k0,j0+1) = -1; otherwise +1
    code = (k - k0[:, None]) + 2 * (j - j0[:, None])  # 0:(0,0) 1:(1,0) 2:(0,1) 3:(1,1)
    has00 = (code == 0).any(1)
    has11 = (code == 3).any(1)
    diag = np.where(has00 & has11, 1, -1).astype(np.int8)
    out = np.zeros((ng - 1, nq - 1), dtype=np.int8)
    out[j0, k0] = diag
    if (out == 0).any():
        raise RuntimeError("some grid cells are not covered")  # pragma: no cover
    # both triangles of a cell must agree
    chk = np.zeros_like(out)
    np.add.at(chk, (j0, k0), diag)
    if np.any(np.abs(chk) != 2):
        raise RuntimeError("inconsistent diagonals")  # pragma: no cover
    return out


@lru_cache(maxsize=256)
def _delaunay_masked(nodes_b: bytes, gp_b: bytes, valid_b: bytes) -> tuple[Delaunay, np.ndarray]:
    x = np.frombuffer(nodes_b, dtype=np.float64)
    gp = np.frombuffer(gp_b, dtype=np.float64)
    valid = np.frombuffer(valid_b, dtype=bool)
    pts = np.column_stack([np.tile(x, gp.size), np.repeat(gp, x.size)])
    idx = np.flatnonzero(valid)
    return Delaunay(pts[idx]), idx


def _first_last(afp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last non-NaN value of each row of ``afp`` (..., nq); NaN for all-NaN rows."""
    ok = ~np.isnan(afp)
    nq = afp.shape[-1]
    i0 = np.argmax(ok, axis=-1)
    i1 = nq - 1 - np.argmax(ok[..., ::-1], axis=-1)
    lo = np.take_along_axis(afp, i0[..., None], -1)[..., 0]
    hi = np.take_along_axis(afp, i1[..., None], -1)[..., 0]
    none = ~ok.any(-1)
    lo[none] = np.nan
    hi[none] = np.nan
    return lo, hi


def _interp_rows(g: np.ndarray, gp: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``np.interp(g, gp, vals[c])`` for every row c of ``vals`` (C, Gp) -> (C, T), vectorised
    (np.interp semantics: clamped beyond the ends; NaN neighbours give NaN)."""
    j = np.clip(np.searchsorted(gp, g, side="right") - 1, 0, gp.size - 2)
    w = np.clip((g - gp[j]) / (gp[j + 1] - gp[j]), 0.0, 1.0)
    a, b = vals[:, j], vals[:, j + 1]
    out = a + w * (b - a)
    # np.interp returns exactly the node value at a node (w == 0 -> a, w == 1 -> b)
    out = np.where(w == 1.0, b, out)
    out = np.where(w == 0.0, a, out)
    return out


# ------------------------------------------------------------------ main entry


def factors_at(
    af: np.ndarray,
    group_coord: np.ndarray,
    tau: np.ndarray,
    groups: np.ndarray,
    extrapolation: str = "constant",
    nodes: np.ndarray | None = None,
) -> np.ndarray:
    """Adjustment factors at (tau, group coordinate), linear across neighbouring groups.

    Parameters
    ----------
    af : (C, G, nq) float array
        Factors from ``np_qdm.fit`` (NaN nodes allowed).
    group_coord : (T,) float array
        Fractional group coordinate of each time step (:func:`group_coord`).
    tau : (C, T) float array
        Non-exceedance probability of each sim value within its group (NaN -> NaN).
    groups : (G,) array
        Coordinates of af's group axis (months 1..12, seasons 0..3), padded cyclically.
    extrapolation : {"constant", "nan"}
    nodes : (nq,) float array, optional
        Quantile nodes as xsdba has them (default :func:`xsdba_nodes` in float32): they decide
        Qhull's choice of diagonals, so use the same dtype as xsdba (that of ref).

    Returns
    -------
    (C, T) float64 array

    Examples
    --------
    >>> af = np.stack([np.full(4, v) for v in (0.0, 1.0, 2.0, 3.0)])[None]  # 4 seasons
    >>> g = np.array([0.0, 0.5, 1.0])  # mid-DJF, between DJF and MAM, mid-MAM
    >>> factors_at(af, g, np.full((1, 3), 0.5), np.arange(4)).tolist()
    [[0.0, 0.5, 1.0]]
    """
    af = np.asarray(af, dtype=np.float64)
    nq = af.shape[-1]
    tau = np.asarray(tau, dtype=np.float64)
    g = np.asarray(group_coord, dtype=np.float64)
    if nodes is None:
        nodes = xsdba_nodes(nq)
    nodes = np.ascontiguousarray(nodes, dtype=np.float64)
    gp, rows = padded_group_axis(groups)
    afp = af[:, rows, :]  # (C, Gp, nq): small
    out = np.full(tau.shape, np.nan)
    if nq == 1 or gp.size == 1:
        raise ValueError(
            "linear interpolation across groups needs at least 2 quantiles and 2 groups; "
            "use interp='nearest' or more n_quantiles"
        )

    has_nan = np.isnan(afp).any(axis=(1, 2))
    clean = np.flatnonzero(~has_nan)
    if clean.size:
        diag = _diagonals(nodes.tobytes(), gp.tobytes())
        step = max(1, _BATCH // max(1, g.size))
        for c0 in range(0, clean.size, step):
            cs = clean[c0 : c0 + step]
            out[cs] = _linear_grid(afp[cs], gp, g, tau[cs], nodes, diag, extrapolation)
    dirty = np.flatnonzero(has_nan)
    if dirty.size:
        # exact fallback: Delaunay of the non-NaN nodes, cached per NaN pattern
        masks = ~np.isnan(afp[dirty]).reshape(dirty.size, -1)
        pats, inv = np.unique(masks, axis=0, return_inverse=True)
        for p in range(pats.shape[0]):
            cs = dirty[inv.ravel() == p]
            tri, idx = _delaunay_masked(nodes.tobytes(), gp.tobytes(), pats[p].tobytes())
            for c in cs:
                out[c] = _linear_scattered(afp[c], gp, g, tau[c], nodes, tri, idx, extrapolation)
    return out


def _linear_grid(afp, gp, g, tau, nodes, diag, extrapolation):
    """Closed-form evaluation on the grid triangulation; afp (C, Gp, nq) without NaN."""
    n_c, n_gp, nq = afp.shape
    nan_t = np.isnan(tau)
    lo, hi = nodes[0], nodes[-1]
    if extrapolation == "constant":
        t = np.clip(np.where(nan_t, lo, tau), lo, hi)  # the hull's edge = np.interp of end nodes
    else:
        t = np.where(nan_t, lo, tau)
    # cell along quantiles (nodes nearly equally spaced: arithmetic guess, then fix by one)
    k = np.clip(np.floor((t - lo) * (nq - 1) / (hi - lo)).astype(np.intp), 0, nq - 2)
    k = np.where((t < nodes[k]) & (k > 0), k - 1, k)
    k = np.where((t > nodes[np.minimum(k + 1, nq - 1)]) & (k < nq - 2), k + 1, k)
    u = (t - nodes[k]) / (nodes[k + 1] - nodes[k])
    # cell along groups (per time step, shared by all cells)
    j = np.clip(np.searchsorted(gp, g, side="right") - 1, 0, n_gp - 2)
    v = (g - gp[j]) / (gp[j + 1] - gp[j])
    outside_g = (v < 0) | (v > 1)
    d = diag[j[None, :], k]  # (C, T) int8
    base = (np.arange(n_c)[:, None] * n_gp + j[None, :]) * nq + k
    flat = afp.reshape(-1)
    a00 = flat[base]
    a10 = flat[base + 1]
    a01 = flat[base + nq]
    a11 = flat[base + nq + 1]
    vv = np.broadcast_to(v, u.shape)
    # diagonal +1: (k,j)-(k+1,j+1)
    f_p = np.where(
        u >= vv,
        a00 + u * (a10 - a00) + vv * (a11 - a10),
        a00 + vv * (a01 - a00) + u * (a11 - a01),
    )
    # diagonal -1: (k+1,j)-(k,j+1)
    f_m = np.where(
        u + vv <= 1.0,
        a00 + u * (a10 - a00) + vv * (a01 - a00),
        a11 + (1.0 - u) * (a01 - a11) + (1.0 - vv) * (a10 - a11),
    )
    f = np.where(d > 0, f_p, f_m)
    if extrapolation == "nan":
        f = np.where((tau < lo) | (tau > hi), np.nan, f)
    f = np.where(outside_g[None, :] | nan_t, np.nan, f)
    return f


def _linear_scattered(afp_c, gp, g, tau_c, nodes, tri, idx, extrapolation):
    """One cell with NaN nodes: griddata's linear interpolation + xsdba's extrapolation."""
    vals = afp_c.reshape(-1)[idx]
    out = np.full(tau_c.shape, np.nan)
    ok = ~np.isnan(tau_c)
    xi = np.column_stack([tau_c[ok], g[ok]])
    s = tri.find_simplex(xi)
    inside = s >= 0
    T = tri.transform[s[inside]]  # (n, 3, 2)
    b = np.einsum("nij,nj->ni", T[:, :2, :], xi[inside] - T[:, 2, :])
    bary = np.column_stack([b, 1 - b.sum(1)])
    res = np.full(xi.shape[0], np.nan)
    res[inside] = (vals[tri.simplices[s[inside]]] * bary).sum(1)
    out[ok] = res
    if extrapolation == "constant":
        first, last = _first_last(afp_c[None])
        lo_b, hi_b = nodes[0], nodes[-1]  # bounds come from the node coordinate (never NaN)
        too_low = tau_c < lo_b
        too_high = tau_c > hi_b
        cl = _interp_rows(g, gp, first)[0]
        ch = _interp_rows(g, gp, last)[0]
        out = np.where(too_low, cl, out)
        out = np.where(too_high, ch, out)
    return out
