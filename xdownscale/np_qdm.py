"""Pure numpy core of quantile delta mapping (QDM); arrays in, arrays out, time on the last axis.

The xarray/dask wrapper is :mod:`xdownscale.qdm`. Nothing here imports xarray or dask.

Conventions (chosen to match ``xsdba.QuantileDeltaMapping``, see docs/tasks/bias-adjust-qdm.rst):

- quantile nodes ``tau_k = (k + 1/2) / n`` for ``k = 0 .. n-1`` (xsdba ``equally_spaced_nodes``);
- quantiles of ref and hist with Hyndman & Fan type 7 (linear, ``numpy.quantile``'s default),
  NaN skipped;
- the non-exceedance probability of each sim value is its average rank ``r`` within its group,
  rescaled as ``tau = (r_max / m) (r - r_min) / (r_max - r_min)`` over the ``m`` valid values
  (``(r - 1) / (m - 1)`` without ties), as xsdba's ``rank(pct=True)``;
- adjustment factors are interpolated at ``tau`` ("nearest": scipy ``interp1d`` rule, a value on
  a midpoint takes the lower node; "linear"); beyond the end nodes the end factor is kept
  ("constant") or the result is NaN ("nan").
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from . import np_qdm_groups

__all__ = [
    "adjust",
    "equally_spaced_nodes",
    "fill_empty_groups",
    "fit",
    "group_members",
    "jitter_under",
    "move_axis_last",
    "quantiles_sorted",
    "rank_pct",
]

Kind = Literal["additive", "multiplicative"]
Interp = Literal["nearest", "linear"]
Extrapolation = Literal["constant", "nan"]

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_BATCH = 2**18  # values per batch in adjust (about 8 MB of temporaries)


def move_axis_last(x: np.ndarray, axis: int) -> np.ndarray:
    """C-contiguous copy of ``x`` with ``axis`` moved last, transposed in slabs of 32 steps.

    numpy's plain copy of a transposed view reads with a large stride for every element; here
    each slab of 32 steps is first copied as it lies (``x`` may be a strided view, e.g. a dask
    chunk sliced out of a larger array) into a small buffer, then transposed within the cache
    (about 5x faster than the plain copy on 30-year series).
    """
    x = np.asarray(x)
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        return np.ascontiguousarray(x)
    before, n, after = x.shape[:axis], x.shape[axis], x.shape[axis + 1 :]
    nb, na = int(np.prod(before)), int(np.prod(after))
    out = np.empty((nb, na, n), dtype=x.dtype)
    slab = max(1, min(32, n))
    buf = np.empty((*before, slab, *after), dtype=x.dtype)
    buf3 = buf.reshape(nb, slab, na)
    lead = (slice(None),) * axis
    for t0 in range(0, n, slab):
        k = min(slab, n - t0)
        dst, src = (*lead, slice(0, k)), (*lead, slice(t0, t0 + k))
        buf[dst] = x[src]
        out[:, :, t0 : t0 + k] = buf3[:, :k].transpose(0, 2, 1)
    return out.reshape(*before, *after, n)


def equally_spaced_nodes(n: int) -> np.ndarray:
    """Return ``n`` quantile nodes ``(k + 1/2) / n``, the centres of ``n`` equal bins of [0, 1].

    Examples
    --------
    >>> equally_spaced_nodes(4)
    array([0.125, 0.375, 0.625, 0.875])
    """
    return (np.arange(n, dtype=np.float64) + 0.5) / n


def group_members(
    labels: np.ndarray, groups: np.ndarray, window: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Indices along time of the members of each group, with an optional centred window.

    Parameters
    ----------
    labels : (n_t,) int array
        Group label of each time step (e.g. month 1..12, day of year 1..366).
    groups : (G,) int array
        The labels to collect, in the order of the output.
    window : int
        Odd window length in time steps: group ``g`` holds every step within ``window // 2`` steps
        of a step labelled ``g`` (xsdba's ``Grouper(window=...)``). Steps beyond the series are -1.

    Returns
    -------
    list of (members, centres)
        For each group, ``members`` (int array, -1 for padding) and ``centres``, the positions in
        ``members`` of the steps labelled ``g`` themselves (the values that group ranks).

    Examples
    --------
    >>> m, c = group_members(np.array([1, 2, 1, 2]), np.array([1]), window=3)[0]
    >>> m.tolist(), c.tolist()
    ([-1, 0, 1, 1, 2, 3], [1, 4])
    """
    labels = np.asarray(labels)
    n_t = labels.size
    half = window // 2
    offsets = np.arange(-half, half + 1)
    out = []
    for g in groups:
        centres = np.flatnonzero(labels == g)
        if window == 1:
            out.append((centres, np.arange(centres.size)))
            continue
        idx = centres[:, None] + offsets[None, :]
        idx = np.where((idx >= 0) & (idx < n_t), idx, -1).reshape(-1)
        out.append((idx, np.arange(centres.size) * window + half))
    return out


def _gather(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x[..., idx]`` with NaN where ``idx == -1``; no copy for the whole series."""
    if idx.size == x.shape[-1] and idx[0] == 0 and np.array_equal(idx, np.arange(idx.size)):
        return x
    out = np.take(x, np.maximum(idx, 0), axis=-1)
    if (idx < 0).any():
        out[..., idx < 0] = np.nan
    return out


def quantiles_sorted(s: np.ndarray, count: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Type-7 quantiles of rows already sorted with NaN last.

    Parameters
    ----------
    s : (..., n) float array
        Rows sorted ascending, NaN at the end.
    count : (...,) int array
        Number of valid (non-NaN) values in each row.
    q : (nq,) float array
        Probabilities in [0, 1].

    Returns
    -------
    (..., nq) float64 array
        ``s[lo] + (h - lo) (s[lo + 1] - s[lo])`` with ``h = (m - 1) q``; NaN for empty rows.

    Examples
    --------
    >>> x = np.sort(np.array([[3.0, 1.0, np.nan, 2.0]]))
    >>> quantiles_sorted(x, np.array([3]), np.array([0.0, 0.25, 1.0]))
    array([[1. , 1.5, 3. ]])
    """
    m = np.asarray(count)[..., None].astype(np.float64)
    h = (m - 1.0) * q
    lo = np.floor(h)
    frac = h - lo
    lo_i = np.clip(lo, 0, None).astype(np.intp)
    hi_i = np.minimum(lo_i + 1, np.maximum(m - 1, 0).astype(np.intp))
    a = np.take_along_axis(s, lo_i, axis=-1).astype(np.float64)
    b = np.take_along_axis(s, hi_i, axis=-1).astype(np.float64)
    out = a + frac * (b - a)
    out[np.broadcast_to(m < 1, out.shape)] = np.nan
    return out


def _dense_tau(s: np.ndarray) -> np.ndarray:
    """Probabilities ``tau`` of rows ``s`` (C, N) sorted ascending with NaN last.

    Returns (1, N) when every row is complete and free of ties (then all rows share
    ``tau_j = j / (N - 1)``), else (C, N), NaN past each row's valid values. Only the rows with
    NaN or ties, and only the tied values, are visited beyond the shared formula. Each row's
    result depends on that row alone.
    """
    n_c, n = s.shape
    j = np.arange(n)
    m = np.full(n_c, n)
    if np.issubdtype(s.dtype, np.floating):
        short = np.flatnonzero(np.isnan(s[:, -1]))  # NaN sort last: only these rows have any
        if short.size:
            m[short] = n - np.count_nonzero(np.isnan(s[short]), axis=-1)
    run_row, first_col, end_col = _tie_runs(s)
    if run_row.size == 0 and bool(np.all(m == n)):
        return (j / max(n - 1, 1))[None, :] if n > 1 else np.full((1, n), 0.5)
    tau = np.empty((n_c, n), dtype=np.float64)
    np.divide(j, np.maximum(m - 1, 1)[:, None], out=tau)
    tau[m <= 1] = 0.5
    if run_row.size:
        # average ranks of the runs of ties: tau = (r_max/m)(r - r_min)/(r_max - r_min),
        # which reduces to (r - 1)/(m - 1) unless the smallest or largest value is tied
        length = end_col - first_col + 1
        avg = 0.5 * (first_col + end_col) + 1.0
        mr = m[run_row]
        extreme = np.unique(run_row[(first_col == 0) | (end_col == mr - 1)])
        offs = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
        rr = np.repeat(run_row, length)
        cc = np.repeat(first_col, length) + offs
        tau[rr, cc] = (np.repeat(avg, length) - 1.0) / np.maximum(np.repeat(mr, length) - 1, 1)
        if extreme.size:  # rows whose smallest or largest value is tied: full formula
            r = np.tile(j + 1.0, (extreme.size, 1))
            sel = np.isin(rr, extreme)
            r[np.searchsorted(extreme, rr[sel]), cc[sel]] = np.repeat(avg, length)[sel]
            mm = m[extreme][:, None]
            r_min = r[:, :1]
            r_max = np.take_along_axis(r, np.maximum(mm - 1, 0), axis=-1)
            span = r_max - r_min
            with np.errstate(invalid="ignore", divide="ignore"):
                tau[extreme] = np.where(
                    span > 0, (r_max / np.maximum(mm, 1)) * (r - r_min) / span, 0.5
                )
    short = np.flatnonzero(m < n)
    if short.size:
        tau[short] = np.where(j[None, :] >= m[short][:, None], np.nan, tau[short])
    return tau


def _tie_runs(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of tied neighbours in rows ``s`` (C, N) sorted ascending: ``(row, first, end)``.

    Each run is the columns ``first .. end`` (inclusive) of one row holding the same value;
    NaN never ties (NaN == NaN is False).
    """
    n = s.shape[1]
    p = np.flatnonzero(s[:, 1:] == s[:, :-1])
    rows, cols = np.divmod(p, max(n - 1, 1))
    brk = np.ones(p.size, dtype=bool)  # first pair of each run
    brk[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1] + 1)
    last = np.ones(p.size, dtype=bool)
    last[:-1] = brk[1:]
    return rows[brk], cols[brk], cols[last] + 1


class _Tau(NamedTuple):
    """``tau`` of sorted rows (C, N), stored sparsely (see :func:`_sorted_tau`)."""

    shared: np.ndarray  # (N,) j / (N - 1): every complete row's tau except at its ties
    tie_rows: np.ndarray  # (P,) row, column and tau of the tied values of those rows
    tie_cols: np.ndarray
    tie_tau: np.ndarray
    rows: np.ndarray  # (K,) rows with NaN, or whose smallest or largest value is tied,
    dense: np.ndarray  # (K, N) and their whole tau (from _dense_tau)


def _sorted_tau(s: np.ndarray) -> _Tau:
    """Probabilities ``tau`` of rows ``s`` (C, N) sorted ascending with NaN last, sparsely.

    The same values as :func:`_dense_tau`, without writing a (C, N) float64 array: a complete
    row has ``tau_j = j / (N - 1)`` (shared by all rows) except at its tied values, which take
    ``(r - 1) / (N - 1)`` with ``r`` their average rank; only rows with NaN, or whose smallest
    or largest value is tied (the rescaling then moves every value), get a dense row.
    """
    n = s.shape[1]
    j = np.arange(n)
    shared = j / max(n - 1, 1) if n > 1 else np.full(n, 0.5)
    short = np.zeros(0, dtype=np.intp)
    if n and np.issubdtype(s.dtype, np.floating):
        short = np.flatnonzero(np.isnan(s[:, -1]))  # NaN sort last: only these rows have any
    run_row, first_col, end_col = _tie_runs(s)
    special = np.union1d(short, run_row[(first_col == 0) | (end_col == n - 1)])
    keep = ~np.isin(run_row, special)
    first_col, end_col, run_row = first_col[keep], end_col[keep], run_row[keep]
    length = end_col - first_col + 1
    avg = 0.5 * (first_col + end_col) + 1.0  # average 1-based rank of the run
    offs = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    dense = _dense_tau(s[special]) if special.size else np.zeros((0, n))
    return _Tau(
        shared=shared,
        tie_rows=np.repeat(run_row, length),
        tie_cols=np.repeat(first_col, length) + offs,
        tie_tau=(np.repeat(avg, length) - 1.0) / max(n - 1, 1),
        rows=special,
        dense=np.broadcast_to(dense, (special.size, n)),
    )


def _sort_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (R, N) sorted ascending with NaN last, and their flat positions in ``x``.

    Returns ``s`` and ``pos`` (R, N) intp with ``s == x.ravel()[pos]``. For float32, one sort of
    the 64-bit integers ``(key << 32) | (r N + j)`` gives ``pos``, ``key`` being the value's bits
    mapped to an unsigned integer of the same order (NaN last), and ``s`` is gathered: about
    twice as fast as ``argsort`` followed by a gather. Tied values may come in any order.
    """
    n_r, n = x.shape
    if x.dtype != np.float32 or x.size >= 2**32:
        order = np.argsort(x, axis=-1)
        s = np.take_along_axis(x, order, axis=-1)
        order += np.arange(n_r)[:, None] * n
        return s, order
    # negative floats: flip every bit; positive ones: flip the sign bit (NaN: all bits set)
    key = x.view(np.int32) >> 31
    key |= np.int32(-(2**31))
    key ^= x.view(np.int32)
    if np.isnan(np.max(x)):
        key[np.isnan(x)] = -1
    packed = np.left_shift(key.view(np.uint32), 32, dtype=np.uint64)
    del key
    packed += np.arange(x.size, dtype=np.uint64).reshape(n_r, n)  # < 2**32: no carry
    packed.sort(axis=-1)
    packed &= np.uint64(0xFFFFFFFF)
    pos = packed.view(np.intp)
    return np.take(x, pos), pos


def rank_pct(x: np.ndarray) -> np.ndarray:
    """Non-exceedance probability of each value within its row, from average ranks.

    ``tau = (r_max / m) (r - r_min) / (r_max - r_min)`` with ``r`` the average rank (ties share
    it), ``m`` the number of valid values, ``r_min``/``r_max`` the ranks of the smallest/largest
    value: ``(r - 1) / (m - 1)`` without ties, as xsdba's ``rank(pct=True)``. Rows whose valid
    values are all equal get 0.5 (xsdba: NaN); NaN stays NaN.

    Examples
    --------
    >>> rank_pct(np.array([[30.0, 10.0, np.nan, 20.0, 10.0]])).round(3)
    array([[1. , 0. , nan, 0.6, 0. ]])
    """
    x = np.asarray(x)
    x2 = x.reshape(-1, x.shape[-1])
    order = np.argsort(x2, axis=-1)
    tau = _dense_tau(np.take_along_axis(x2, order, axis=-1))
    out = np.empty(x2.shape, dtype=np.float64)
    np.put_along_axis(out, order, np.broadcast_to(tau, x2.shape), axis=-1)
    return out.reshape(x.shape)


def _factors(
    t: np.ndarray,
    af: np.ndarray,
    interp: Interp,
    extrapolation: Extrapolation,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Adjustment factors ``af`` (C, nq) at probabilities ``t``.

    ``t`` is (1, N), shared by every row of ``af`` -> (C, N); or (R, N) with ``rows`` (R,)
    naming the row of ``af`` of each row of ``t`` (default: ``af``'s rows in order) -> (R, N).

    Nodes ``(k + 1/2) / nq`` are equally spaced, so the node positions are arithmetic:
    nearest ``k = ceil(nq tau) - 1`` (a tau exactly halfway takes the lower node, as scipy's
    ``interp1d(kind="nearest")``), linear between ``floor(nq tau - 1/2)`` and the next node.
    NaN nodes form a prefix (undefined ratios below the first wet quantile of hist): the nodes
    used by each row are ``k >= k0``, as xsdba drops NaN nodes before interpolating.
    """
    n_c, nq = af.shape
    nan_t = np.isnan(t)
    any_nan = bool(nan_t.any())
    if any_nan:
        t = np.where(nan_t, 0.0, t)
    row_ids = np.arange(n_c) if rows is None else rows
    k0 = np.argmax(~np.isnan(af), axis=-1)[row_ids][:, None]
    clamp = bool(k0.any())

    def gather(i: np.ndarray) -> np.ndarray:
        if i.shape[0] == 1 and rows is None:  # the same nodes for every row
            return np.take(af, i[0], axis=1)  # C order (af[:, i[0]] would be F order)
        return af.ravel().take(i + row_ids[:, None] * nq)  # flat indices into af

    if nq == 1:
        f = np.broadcast_to(af[row_ids], (row_ids.size, t.shape[-1])).copy()
    elif interp == "nearest":
        v = t * nq
        np.ceil(v, out=v)
        i = v.astype(np.intp)
        del v
        i -= 1
        np.clip(i, 0, nq - 1, out=i)
        if clamp:
            i = np.maximum(i, k0)
        f = gather(i)
    else:
        pos = t * nq - 0.5
        i = np.clip(np.floor(pos).astype(np.intp), 0, nq - 2)
        if clamp:
            i = np.minimum(np.maximum(i, k0), nq - 2)
        w = pos - i
        np.clip(w, 0.0, 1.0, out=w)
        w = w.astype(af.dtype, copy=False)
        a, b = gather(i), gather(i + 1)
        b -= a
        b *= w
        f = a + b
        single = k0[:, 0] == nq - 1  # one defined node: constant
        if single.any():
            f[single] = af[row_ids[single], -1:]
    if extrapolation == "nan":
        lo = (np.minimum(k0, nq - 1) + 0.5) / nq
        outside = (t < lo) | (t > (nq - 0.5) / nq)
        f = np.where(outside, np.nan, f)
    if any_nan:
        f = np.where(nan_t, np.nan, f)
    return f


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return z ^ (z >> np.uint64(31))


def jitter_under(
    x: np.ndarray,
    threshold: float,
    *,
    seed: int,
    stream: int,
    cell_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Replace values below ``threshold`` by uniform noise in (0, threshold), reproducibly.

    The noise of value ``x[..., t]`` is a counter-based hash (splitmix64) of
    ``(seed, stream, cell_id, t)``: it does not depend on chunking, order or workers.

    Parameters
    ----------
    x : (..., n_t) float array
    threshold : float
        Values ``< threshold`` (zeros included) are replaced; NaN stays NaN.
    seed : int
        Seed of the noise.
    stream : int
        Independent stream per role (0 = ref, 1 = hist, 2 = sim in :func:`fit`/:func:`adjust`).
    cell_ids : (...,) int array, optional
        Global index of each series (default: its flat position in ``x``).

    Examples
    --------
    >>> out = jitter_under(np.array([[0.0, 0.0, 5.0]]), 0.1, seed=0, stream=0)
    >>> bool(np.all((out[0, :2] > 0) & (out[0, :2] < 0.1))), float(out[0, 2])
    (True, 5.0)
    """
    x = np.asarray(x)
    lead = x.shape[:-1]
    if cell_ids is None:
        cell_ids = np.arange(int(np.prod(lead)), dtype=np.int64).reshape(lead)
    with np.errstate(invalid="ignore"):
        dry = x < threshold
    if not dry.any():
        return x
    base = np.asarray([np.uint64(seed % 2**63) * np.uint64(4) + np.uint64(stream)], dtype=np.uint64)
    key = _splitmix64(_splitmix64(base) ^ np.asarray(cell_ids, dtype=np.uint64))[..., None]
    t = np.arange(x.shape[-1], dtype=np.uint64)
    bits = _splitmix64(key ^ _splitmix64(t + np.uint64(0x632BE59BD9B4E019)))
    u = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53  # in (0, 1)
    noise = (u * threshold).astype(x.dtype)
    noise = np.minimum(noise, np.nextafter(np.asarray(threshold, x.dtype), np.asarray(0, x.dtype)))
    noise = np.maximum(noise, np.nextafter(np.asarray(0, x.dtype), np.asarray(1, x.dtype)))
    return np.where(dry, noise, x)


def _group_quantiles(x: np.ndarray, members: list, nodes: np.ndarray) -> np.ndarray:
    """(..., G, nq) quantiles of ``x`` (..., n_t) over each group's members."""
    out = np.empty((*x.shape[:-1], len(members), nodes.size), dtype=np.float64)
    for g, (idx, _) in enumerate(members):
        if idx.size == 0:  # no time step of this group: no quantiles (see fill_empty_groups)
            out[..., g, :] = np.nan
            continue
        v = np.sort(_gather(x, idx), axis=-1)
        count = np.full(v.shape[:-1], v.shape[-1])
        if v.shape[-1] and np.issubdtype(v.dtype, np.floating):
            short = np.isnan(v[..., -1])  # NaN sort last: only these rows have any
            if short.any():
                count[short] = np.sum(~np.isnan(v[short]), axis=-1)
        out[..., g, :] = quantiles_sorted(v, count, nodes)
    return out


def fill_empty_groups(
    af: np.ndarray, groups: np.ndarray, period: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Give each all-NaN group row of ``af`` (..., G, nq) the row of the nearest group with data.

    A group with no data in ref or hist (a month missing from the calibration period, day 366
    in one calendar only, the seasons outside a JJA-only calibration) has no factors. It
    borrows those of the nearest group that has some, by the distance between labels,
    cyclic with ``period`` (12 months, 4 seasons, 366 days); a tie goes to the earlier group
    (xsdba's nearest-neighbour convention: an empty February takes January's factors).

    Returns
    -------
    af : (..., G, nq) array
        A copy with the empty rows filled (rows with no group to borrow from stay NaN).
    borrowed : (G,) int array
        For each group, the index of the group whose factors it took in some cell, or -1.

    Examples
    --------
    >>> af = np.array([[[1.0], [np.nan], [3.0]]])
    >>> out, borrowed = fill_empty_groups(af, np.array([1, 2, 3]), period=12)
    >>> out[0, :, 0].tolist(), borrowed.tolist()
    ([1.0, 1.0, 3.0], [-1, 0, -1])
    """
    groups = np.asarray(groups)
    empty = np.isnan(af).all(axis=-1)  # (..., G)
    borrowed = np.full(groups.size, -1, dtype=np.intp)
    if not empty.any():
        return af, borrowed
    dist = np.abs(groups[:, None].astype(float) - groups[None, :].astype(float))
    if period is not None:
        dist = np.minimum(dist, period - dist)
    order = np.lexsort((np.arange(groups.size)[None, :].repeat(groups.size, 0), dist), axis=-1)
    out = af.copy()
    lead = empty.shape[:-1]
    flat_e = empty.reshape(-1, groups.size)
    flat = out.reshape(-1, groups.size, af.shape[-1])
    for c in np.flatnonzero(flat_e.any(axis=-1)):
        for g in np.flatnonzero(flat_e[c]):
            donors = [d for d in order[g] if not flat_e[c, d]]
            if donors:
                flat[c, g] = flat[c, donors[0]]
                borrowed[g] = donors[0]
    return flat.reshape(*lead, groups.size, af.shape[-1]), borrowed


def fit(
    ref: np.ndarray,
    hist: np.ndarray,
    cell_ids: np.ndarray | None = None,
    *,
    ref_labels: np.ndarray,
    hist_labels: np.ndarray,
    groups: np.ndarray,
    n_quantiles: int,
    kind: Kind,
    window: int = 1,
    dry_threshold: float | None = None,
    seed: int = 0,
    period: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train QDM: quantiles of ref and hist per group and their adjustment factors.

    Parameters
    ----------
    ref, hist : (..., n_t) float arrays
        Observations and model over the calibration period (time last, lengths may differ).
        NaN is skipped.
    ref_labels, hist_labels : (n_t,) int arrays
        Group label of each time step.
    groups : (G,) int array
        Group labels to fit.
    n_quantiles : int
        Number of nodes (:func:`equally_spaced_nodes`).
    kind : {"additive", "multiplicative"}
        ``af = ref_q - hist_q`` or ``af = ref_q / hist_q``; NaN (undefined, skipped by
        :func:`adjust`) at nodes where ``hist_q <= 0``, 1 at every node of a series whose
        ``hist_q`` is never positive.
    window : int
        Odd moving window in time steps (day-of-year groups).
    dry_threshold : float, optional
        Multiplicative only: values below it are first replaced by seeded uniform noise in
        (0, dry_threshold) (:func:`jitter_under`, streams 0 and 1).
    seed : int
        Seed of that noise.
    cell_ids : (...,) int array, optional
        Global index of each series, so the noise does not depend on chunking.
    period : int, optional
        Groups are cyclic with this period (12 months, 4 seasons, 366 days): a group with no
        data borrows the factors of the nearest one with data (:func:`fill_empty_groups`).

    Returns
    -------
    af, hist_q, ref_q : (..., G, n_quantiles) float64 arrays
        ``af`` of an empty group is borrowed; its quantiles are NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref, hist = rng.normal(1, 1, (1, 1000)), rng.normal(0, 1, (1, 1000))
    >>> lab = np.zeros(1000, int)
    >>> af, hq, rq = fit(ref, hist, ref_labels=lab, hist_labels=lab, groups=np.array([0]),
    ...                  n_quantiles=5, kind="additive")
    >>> af.shape, round(float(af.mean()), 1)
    ((1, 1, 5), 1.0)
    """
    nodes = equally_spaced_nodes(n_quantiles)
    if dry_threshold is not None:
        ref = jitter_under(ref, dry_threshold, seed=seed, stream=0, cell_ids=cell_ids)
        hist = jitter_under(hist, dry_threshold, seed=seed, stream=1, cell_ids=cell_ids)
    ref_q = _group_quantiles(ref, group_members(ref_labels, groups, window), nodes)
    hist_q = _group_quantiles(hist, group_members(hist_labels, groups, window), nodes)
    if kind == "additive":
        af = ref_q - hist_q
    else:
        # A ratio is undefined where hist's quantile is 0 (dry): those nodes (always the lowest
        # ones, quantiles being sorted) get NaN and are skipped by adjust, as xsdba skips its
        # 0/0 nodes. A series dry at every node is left unadjusted (factor 1).
        with np.errstate(invalid="ignore"):
            pos = hist_q > 0
        af = np.divide(ref_q, hist_q, out=np.full_like(ref_q, np.nan), where=pos)
        all_dry = ~pos.any(axis=-1, keepdims=True) & ~np.isnan(hist_q) & ~np.isnan(ref_q)
        af[np.broadcast_to(all_dry, af.shape)] = 1.0
        af[np.isnan(ref_q)] = np.nan
    af, _ = fill_empty_groups(af, groups, period)
    return af, hist_q, ref_q


def adjust(
    sim: np.ndarray,
    af: np.ndarray,
    cell_ids: np.ndarray | None = None,
    *,
    sim_labels: np.ndarray,
    groups: np.ndarray,
    kind: Kind,
    interp: Interp = "nearest",
    extrapolation: Extrapolation = "constant",
    window: int = 1,
    dry_threshold: float | None = None,
    seed: int = 0,
    time_first: bool = False,
    group_coord: np.ndarray | None = None,
    nodes: np.ndarray | None = None,
) -> np.ndarray:
    """Apply QDM factors: ``sim + af(tau)`` or ``sim * af(tau)``, tau the rank of sim in its group.

    Parameters
    ----------
    sim : (..., n_t) float array
        Model series to adjust; NaN stays NaN.
    af : (..., G, nq) float array
        Factors from :func:`fit` (broadcast against ``sim``'s leading dims).
    sim_labels : (n_t,) int array
        Group label of each step of ``sim``; every label must be in ``groups``.
    groups : (G,) int array
        The labels of ``af``'s group axis.
    kind, interp, extrapolation
        See :mod:`xdownscale.np_qdm`.
    window : int
        Odd window: each value is ranked among the values within ``window // 2`` steps of any
        step of its group (xsdba ``rank_window=True``).
    dry_threshold : float, optional
        Multiplicative only: sim values below it are replaced by seeded noise (stream 2) before
        ranking, and adjusted values below it are set to 0 (Cannon et al. 2015).
    seed, cell_ids
        As in :func:`fit`.
    time_first : bool
        Lay the result out in memory with time first (as a time-first ``sim`` array), so
        that transposing it back to ``sim``'s dim order is cheap; the values are the same.
    group_coord : (n_t,) float array, optional
        With ``interp="linear"``: the fractional group coordinate of each step
        (:func:`xdownscale.np_qdm_groups.group_coord`); the factors are then interpolated
        across neighbouring groups as well as between nodes (xsdba's convention for month
        and season groups, :func:`xdownscale.np_qdm_groups.factors_at`).
    nodes : (nq,) float array, optional
        The quantile nodes in the precision of ref (they decide the triangulation of
        :func:`~xdownscale.np_qdm_groups.factors_at`); default float32 nodes.

    Returns
    -------
    (..., n_t) array of sim's floating dtype (float64 for integer input)

    Examples
    --------
    >>> sim = np.array([[0.0, 1.0, 2.0, 3.0]])
    >>> af = np.array([[[10.0, 20.0]]])
    >>> adjust(sim, af, sim_labels=np.zeros(4, int), groups=np.array([0]), kind="additive")
    array([[10., 11., 22., 23.]])
    """
    sim = np.asarray(sim)
    dtype = sim.dtype if np.issubdtype(sim.dtype, np.floating) else np.dtype(np.float64)
    sim = sim.astype(dtype, copy=False)
    if dry_threshold is not None:
        sim = jitter_under(sim, dry_threshold, seed=seed, stream=2, cell_ids=cell_ids)
    lead = np.broadcast_shapes(sim.shape[:-1], af.shape[:-2])
    n_t = sim.shape[-1]
    sim2 = np.broadcast_to(sim, (*lead, n_t)).reshape(-1, n_t)
    af2 = np.broadcast_to(af, (*lead, *af.shape[-2:])).reshape(-1, *af.shape[-2:])
    out = np.full(sim2.shape, np.nan, dtype=dtype)
    members = group_members(sim_labels, groups, window)
    for g, (idx, centres) in enumerate(members):
        if idx.size == 0:
            continue
        step = max(1, _BATCH // idx.size)  # rows per batch: bounded, cache-sized temporaries
        for r0 in range(0, sim2.shape[0], step):
            rows = slice(r0, r0 + step)
            x = _gather(sim2[rows], idx)
            s, pos = _sort_rows(x)
            if interp == "linear" and group_coord is not None:
                dense = np.empty(x.shape, dtype=np.float64)
                dense.reshape(-1)[pos] = np.broadcast_to(_dense_tau(s), s.shape)
                fg = np_qdm_groups.factors_at(
                    af2[rows], group_coord[idx], dense, groups, extrapolation, nodes
                ).astype(dtype)
                out[rows, idx] = x + fg if kind == "additive" else x * fg
                continue
            afg = af2[rows, g, :].astype(dtype)
            tau = _sorted_tau(s)
            f = _factors(tau.shared[None, :], afg, interp, extrapolation)
            if tau.tie_rows.size:
                t = tau.tie_tau[:, None]
                f[tau.tie_rows, tau.tie_cols] = _factors(
                    t, afg, interp, extrapolation, rows=tau.tie_rows
                )[:, 0]
            if tau.rows.size:
                f[tau.rows] = _factors(tau.dense, afg, interp, extrapolation, rows=tau.rows)
            del tau
            if kind == "additive":
                f += s
            else:
                f *= s
            del s
            if window == 1 and idx.size == n_t:  # the whole series: write in place
                out[rows].reshape(-1)[pos] = f
            else:
                res = np.empty(x.shape, dtype=dtype)
                res.reshape(-1)[pos] = f
                if window == 1:
                    out[rows, idx] = res
                else:
                    out[rows, idx[centres]] = res[:, centres]
                del res
            del x, pos, f
    if dry_threshold is not None:
        with np.errstate(invalid="ignore"):
            out[out < dry_threshold] = 0.0
    out = out.reshape(*lead, n_t).astype(dtype, copy=False)
    if not time_first:
        return out
    # transpose in cache-sized time slabs into a time-first buffer, returned as a view with
    # time last: the caller's transpose back to time-first is then free
    buf = np.empty((n_t, *out.shape[:-1]), dtype=out.dtype)
    for t0 in range(0, n_t, 512):
        buf[t0 : t0 + 512] = np.moveaxis(out[..., t0 : t0 + 512], -1, 0)
    return np.moveaxis(buf, 0, -1)
