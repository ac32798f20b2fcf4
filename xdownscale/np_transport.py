"""Pure core of entropic optimal-transport debiasing: Sinkhorn potentials and the entropic map.

Arrays in, arrays out (rows are samples, columns features); never imports xarray or dask. numpy
float64 on the CPU. The algorithm is written against a small array backend: the same code runs
in float64 through torch on a CUDA device with the backend of
:mod:`xdownscale.nn.ot_backend` (``device="cuda"``, ``"cuda:1"``; ``"torch:cpu"`` runs it on
the CPU, for testing).

Notation (Wan et al. 2023, section 3; Pooladian & Niles-Weed 2021 [PNW21]): source samples
``y_i`` (i = 1..n), target samples
``z_j`` (j = 1..m), weights ``a``, ``b``, cost ``C_ij = ||y_i - z_j||^2``, regularisation
``eps``. The plan is ``P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps)`` and the entropic map is
``T(y) = sum_j w_j(y) z_j`` with ``w_j(y) ∝ b_j exp((g_j - ||y - z_j||^2) / eps)``.

Solver: Sinkhorn in scaling form with log-domain stabilisation ("absorption", Schmitzer 2019)
and epsilon-scaling. The potentials ``f, g`` are kept in the log domain; the kernel
``K_ij = exp((f_i + g_j - C_ij) / eps)`` is materialised once per absorption and the iterations
in between are two matrix-vector products, ``u = 1 / K (b v)``, ``v = 1 / K^T (a u)``. Whenever
``|log u|`` or ``|log v|`` exceeds ``ABSORB`` (or eps changes) they are absorbed into the
potentials, ``f += eps log u``, ``g += eps log v``, and ``K`` is rebuilt, so that nothing
overflows or underflows however small eps is. The fixed point is the one of the log-domain
iterations ``f_i = -eps LSE_j((g_j - C_ij)/eps + log b_j)``,
``g_j = -eps LSE_i((f_i - C_ij)/eps + log a_i)``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._memory import MemoryBudgetError, available_memory, format_bytes, memory_budget

__all__ = [
    "ABSORB",
    "SinkhornResult",
    "dense_memory",
    "entropic_map",
    "epsilon_schedule",
    "map_fields",
    "median_cost",
    "plan_memory",
    "sinkhorn",
    "sqdist",
    "standardization",
]

ABSORB = 50.0  # absorb the scalings into the potentials when |log u| or |log v| exceeds this
BLOCK_ELEMS = 1 << 22  # elements of one row block of an n x m work array (32 MiB in float64)
MEDIAN_MAX = 2000  # median cost on at most MEDIAN_MAX x MEDIAN_MAX pairs
STAGE_TOL = 1e-3  # marginal error at which an intermediate epsilon-scaling stage stops
STAGE_MAX_ITER = 100  # iterations at most per intermediate stage
RATE_WINDOW = 30  # plain iterations over which the convergence rate is measured
OMEGA_MAX = 1.9  # largest over-relaxation factor


# ----------------------------------------------------------------------------- backends


class _NumpyBackend:
    name = "numpy"

    def asarray(self, x: Any) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float64)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def empty(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.empty(shape, dtype=np.float64)

    def full(self, n: int, value: float) -> np.ndarray:
        return np.full(n, value, dtype=np.float64)

    def sqnorm(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", x, x)

    def sqdist_(
        self, out: np.ndarray, x: np.ndarray, xx: np.ndarray, z: np.ndarray, zz: np.ndarray
    ) -> np.ndarray:
        np.matmul(x, z.T, out=out)
        out *= -2.0
        out += xx[:, None]
        out += zz[None, :]
        np.maximum(out, 0.0, out=out)
        return out

    def kernel_(
        self, out: np.ndarray, c: np.ndarray, f: np.ndarray, g: np.ndarray, eps: float
    ) -> np.ndarray:
        np.subtract(g[None, :], c, out=out)
        out += f[:, None]
        out *= 1.0 / eps
        np.exp(out, out=out)
        return out

    def softmax_rows_(self, w: np.ndarray) -> np.ndarray:
        w -= w.max(axis=1, keepdims=True)
        np.exp(w, out=w)
        w /= w.sum(axis=1, keepdims=True)
        return w

    def mv(self, k: np.ndarray, x: np.ndarray) -> np.ndarray:
        return k @ x

    def mtv(self, k: np.ndarray, x: np.ndarray) -> np.ndarray:
        return x @ k

    def log(self, x: np.ndarray) -> np.ndarray:
        return np.log(x)

    def maxabs(self, x: np.ndarray) -> float:
        return float(np.max(np.abs(x)))

    def l1dev(self, a: np.ndarray, us: np.ndarray) -> float:
        """sum_i a_i |us_i - 1|."""
        return float(np.dot(a, np.abs(us - 1.0)))

    def isfinite(self, x: np.ndarray) -> bool:
        return bool(np.isfinite(x).all())

    def free_memory(self) -> int | None:
        return available_memory()


def backend(device: str = "cpu") -> Any:
    """The array backend for ``device``: numpy for ``"cpu"``, else the torch backend of
    :mod:`xdownscale.nn.ot_backend` (``"cuda"``, ``"cuda:N"``; ``"torch:cpu"`` for testing)."""
    if device != "torch:cpu":
        from ._device import resolve_device

        device = resolve_device(device)  # "auto": CUDA when this process has a GPU
    if device == "cpu":
        return _NumpyBackend()
    from .nn.ot_backend import TorchBackend

    return TorchBackend("cpu" if device == "torch:cpu" else device)


# ----------------------------------------------------------------------------- helpers


def standardization(
    y: np.ndarray, z: np.ndarray, mode: Literal["global", "cell"] = "global"
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale shared by both sample sets, so that features are ``(x - center) / scale``.

    Parameters
    ----------
    y, z : ndarray, shape (n, d) and (m, d)
        Source and target samples.
    mode : {"global", "cell"}
        ``"global"``: one scale for all features, the root mean (over features) of the average
        of the two within-set variances; the squared Euclidean geometry of the fields is kept,
        so the map is the Euclidean optimal-transport map. ``"cell"``: one scale per feature
        (a weighted cost in which every feature counts alike; features without spread get 1).

    Returns
    -------
    center, scale : ndarray, shape (d,)
        ``center`` is the mean of the two set means.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> c, s = standardization(rng.normal(1, 2, (500, 3)), rng.normal(3, 2, (500, 3)))
    >>> c.round(1), s.round(1)
    (array([2., 2., 2.]), array([2., 2., 2.]))
    """
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    center = 0.5 * (y.mean(axis=0) + z.mean(axis=0))
    var = 0.5 * (y.var(axis=0) + z.var(axis=0))
    if mode == "global":
        s = math.sqrt(float(var.mean()))
        scale = np.full(y.shape[1], s if s > 0 else 1.0)
    elif mode == "cell":
        scale = np.sqrt(var)
        scale[~(scale > 0)] = 1.0
    else:
        raise ValueError(f"standardize={mode!r} is not supported; use 'global' or 'cell'")
    return center, scale


def sqdist(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``||x_i - z_j||^2`` (float64, clipped at 0).

    Examples
    --------
    >>> sqdist(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]]))
    array([[25.,  1.]])
    """
    bk = _NumpyBackend()
    x, z = bk.asarray(x), bk.asarray(z)
    out = bk.empty((x.shape[0], z.shape[0]))
    return bk.sqdist_(out, x, bk.sqnorm(x), z, bk.sqnorm(z))


def median_cost(
    y: np.ndarray, z: np.ndarray, seed: int | None = 0, max_n: int = MEDIAN_MAX
) -> float:
    """Median of ``||y_i - z_j||^2`` over all pairs, or over a seeded subset of rows and columns.

    With more than ``max_n`` rows (columns), ``max_n`` of them are drawn without replacement
    with ``numpy.random.default_rng(seed)``; the median of the ``max_n^2`` pairs estimates the
    full one to a fraction of a percent.

    Examples
    --------
    >>> median_cost(np.zeros((3, 1)), np.array([[1.0], [2.0], [3.0]]))
    4.0
    """
    rng = np.random.default_rng(seed)
    if y.shape[0] > max_n:
        y = y[np.sort(rng.choice(y.shape[0], max_n, replace=False))]
    if z.shape[0] > max_n:
        z = z[np.sort(rng.choice(z.shape[0], max_n, replace=False))]
    return float(np.median(sqdist(y, z)))


def epsilon_schedule(eps: float, eps_start: float | None, decay: float = 0.5) -> list[float]:
    """Geometric epsilon-scaling schedule from ``eps_start`` down to ``eps`` (inclusive).

    Examples
    --------
    >>> epsilon_schedule(0.1, 1.0, 0.5)
    [1.0, 0.5, 0.25, 0.125, 0.1]
    """
    if eps_start is None or eps_start <= eps:
        return [float(eps)]
    if not 0.0 < decay < 1.0:
        raise ValueError(f"eps_decay must be in (0, 1), got {decay!r}")
    out = [float(eps_start)]
    while out[-1] * decay > eps * (1.0 + 1e-9):
        out.append(out[-1] * decay)
    out.append(float(eps))
    return out


def dense_memory(n: int, m: int, d: int, store_cost: bool = True) -> int:
    """Bytes the dense solver allocates for ``n`` x ``m`` samples of ``d`` features.

    The ``n x m`` kernel (and the cost, with ``store_cost``) in float64, both sample sets, the
    potentials and one row block of work space.

    Examples
    --------
    >>> round(dense_memory(20_000, 20_000, 1024) / 2**30, 2)
    6.3
    """
    mats = (2 if store_cost else 1) * n * m
    return 8 * (mats + (n + m) * (d + 8) + min(n * m, BLOCK_ELEMS))


def plan_memory(
    n: int, m: int, d: int, max_memory: int | None, free: int | None, store_cost: bool | None = None
) -> bool:
    """Whether the solver keeps the cost matrix; raises if even the kernel alone does not fit.

    Raises
    ------
    MemoryBudgetError
        Naming the number of samples that fits (``n_samples=`` of the wrapper).

    Examples
    --------
    >>> plan_memory(1000, 1000, 10, max_memory=2**30, free=None)
    True
    >>> plan_memory(10**5, 10**5, 10, max_memory=2**30, free=None)
    Traceback (most recent call last):
    ...
    xdownscale.MemoryBudgetError: the dense Sinkhorn solver ... about n_samples=11384 ...
    """
    budget = memory_budget(max_memory, free)
    if store_cost is None:
        store_cost = dense_memory(n, m, d, store_cost=True) <= budget
    need = dense_memory(n, m, d, store_cost=store_cost)
    if need > budget:
        lo, hi = 0, max(n, m)  # the largest s with dense_memory(s, s) within the budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if dense_memory(mid, mid, d, store_cost) <= budget else (lo, mid - 1)
        side = lo
        fix = (
            f"fit on a seeded subsample of about n_samples={side} snapshots of each, or raise "
            "max_memory"
            if side >= 2
            else "raise max_memory: not even 2 snapshots fit"
        )
        raise MemoryBudgetError(
            f"the dense Sinkhorn solver for {n} x {m} samples "
            f"({'cost and ' if store_cost else ''}kernel in float64) needs about "
            f"{format_bytes(need)}, more than the {format_bytes(budget)} available; {fix}"
        )
    return store_cost


# ----------------------------------------------------------------------------- solver


@dataclass
class SinkhornResult:
    """Dual potentials and convergence report of :func:`sinkhorn`.

    Attributes
    ----------
    f, g : ndarray, shape (n,) and (m,)
        Potentials, defined up to ``f + c``, ``g - c``.
    eps : float
        Regularisation the potentials belong to (the last of the schedule).
    n_iter : int
        Sinkhorn iterations over all epsilon-scaling stages.
    n_iter_final : int
        Iterations at the final ``eps``.
    marginal_error : float
        ``sum_i |sum_j P_ij - a_i|`` with the columns of the plan exact (L1, between 0 and 2).
    converged : bool
        ``marginal_error <= tol`` at the final ``eps``.
    n_absorb : int
        Times the kernel was rebuilt (epsilon-scaling stages included).
    history : list of (eps, iteration, marginal error)
        The error after each stage and every 50 iterations of the last.
    """

    f: np.ndarray
    g: np.ndarray
    eps: float
    n_iter: int
    n_iter_final: int
    marginal_error: float
    converged: bool
    n_absorb: int
    history: list[tuple[float, int, float]] = field(default_factory=list)


def _fill_blocks(bk, out, n: int, m: int, fill: Callable[[Any, int, int], None]) -> None:
    rows = max(1, BLOCK_ELEMS // max(m, 1))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        fill(out[r0:r1], r0, r1)


def sinkhorn(
    y: np.ndarray,
    z: np.ndarray,
    eps: float,
    *,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
    max_iter: int = 10_000,
    tol: float = 1e-6,
    eps_start: float | None = None,
    eps_decay: float = 0.5,
    relax: bool = True,
    store_cost: bool | None = None,
    max_memory: int | None = None,
    device: str = "cpu",
    callback: Callable[[int], Any] | None = None,
) -> SinkhornResult:
    """Entropic optimal-transport potentials between two sample sets (log-stabilised Sinkhorn).

    Parameters
    ----------
    y, z : ndarray, shape (n, d) and (m, d)
        Source and target samples (standardise them first, see :func:`standardization`).
    eps : float
        Entropic regularisation, in the units of the squared distances.
    a, b : ndarray, optional
        Weights summing to 1 (default uniform).
    max_iter : int
        Iterations at most, over all stages.
    tol : float
        Stop when the L1 marginal error ``sum_i |sum_j P_ij - a_i|`` (columns exact) is below.
    eps_start, eps_decay : float
        Epsilon-scaling: solve for ``eps_start, eps_start * eps_decay, ...`` down to ``eps``,
        each stage warm-started from the last (intermediate stages stop at ``STAGE_TOL`` or
        after ``STAGE_MAX_ITER``). None: no scaling.
    relax : bool
        Over-relaxation: after ``2 * RATE_WINDOW`` plain iterations of a stage, measure their
        convergence rate ``r`` and continue with ``u <- u^(1-w) (1 / K b v)^w`` (same for
        ``v``), ``w = min(OMEGA_MAX, 2 / (1 + sqrt(1 - r)))``, falling back to plain Sinkhorn if
        the error grows tenfold. Same fixed point, far fewer iterations at small eps.
    store_cost : bool, optional
        Keep the ``n x m`` cost matrix (fast rebuilds of the kernel, twice the memory) or
        recompute it from the samples at each rebuild. Default: store it when it fits.
    max_memory : int, optional
        Bytes the solver may allocate; default 80 % of the available memory of the device.
    device : str
        ``"cpu"`` (numpy) or a torch device (``"cuda"``, ``"cuda:1"``, ``"torch:cpu"``).
    callback : callable, optional
        ``callback(n_iter)`` after every iteration, with the iterations done so far over all
        stages (for a progress bar).

    Returns
    -------
    SinkhornResult

    Raises
    ------
    MemoryBudgetError
        If even the kernel alone does not fit in ``max_memory`` (the message gives the largest
        number of samples that does; :func:`plan_memory`).
    FloatingPointError
        If a row or column of the kernel underflows entirely (eps far too small for the data).

    Notes
    -----
    Scaling form with absorption into log-domain potentials (module docstring); each iteration
    costs two matrix-vector products with the ``n x m`` kernel, each rebuild one ``exp`` over
    it. The marginal errors are measured from the same products, for free. Schmitzer, B.
    (2019) Stabilized sparse scaling algorithms for entropy regularized transport problems,
    SIAM J. Sci. Comput. 41(3). Over-relaxation: Thibault, Chizat, Dossal, Papadakis (2021)
    Overrelaxed Sinkhorn-Knopp algorithm for regularized optimal transport, Algorithms 14(5);
    ``w`` from the successive over-relaxation rule with the measured plain rate.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y, z = rng.normal(size=(200, 2)), rng.normal(2.0, 1.0, size=(300, 2))
    >>> res = sinkhorn(y, z, eps=0.1, eps_start=4.0)
    >>> res.converged, res.f.shape, res.g.shape
    (True, (200,), (300,))
    """
    bk = backend(device)
    n, d = y.shape
    m = z.shape[0]
    store_cost = plan_memory(n, m, d, max_memory, bk.free_memory(), store_cost)
    Y, Z = bk.asarray(y), bk.asarray(z)
    yy, zz = bk.sqnorm(Y), bk.sqnorm(Z)
    av = bk.asarray(np.full(n, 1.0 / n) if a is None else a)
    bv = bk.asarray(np.full(m, 1.0 / m) if b is None else b)

    C = None
    if store_cost:
        C = bk.empty((n, m))
        _fill_blocks(bk, C, n, m, lambda o, r0, r1: bk.sqdist_(o, Y[r0:r1], yy[r0:r1], Z, zz))
    K = bk.empty((n, m))
    cblk = None if store_cost else bk.empty((max(1, BLOCK_ELEMS // m), m))

    def rebuild(f, g, e):
        def fill(o, r0, r1):
            if C is not None:
                c = C[r0:r1]
            else:
                c = bk.sqdist_(cblk[: r1 - r0], Y[r0:r1], yy[r0:r1], Z, zz)
            bk.kernel_(o, c, f[r0:r1], g, e)

        _fill_blocks(bk, K, n, m, fill)

    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return _solve(
            bk, K, rebuild, av, bv, n, m, eps, eps_start, eps_decay, max_iter, tol, relax, callback
        )


def _solve(
    bk, K, rebuild, av, bv, n, m, eps, eps_start, eps_decay, max_iter, tol, relax, callback=None
) -> SinkhornResult:
    f = bk.full(n, 0.0)
    g = bk.full(m, 0.0)
    schedule = epsilon_schedule(eps, eps_start, eps_decay)
    total, n_absorb, err, it = 0, 0, math.inf, 0
    history: list[tuple[float, int, float]] = []
    for stage, e in enumerate(schedule):
        final = stage == len(schedule) - 1
        stage_tol = tol if final else max(tol, STAGE_TOL)
        budget = max_iter - total if final else min(STAGE_MAX_ITER, max_iter - total)
        rebuild(f, g, e)
        n_absorb += 1
        u = bk.full(n, 1.0)
        v = bk.full(m, 1.0)
        omega, plain, best, col = 1.0, [], math.inf, math.inf
        err = math.inf
        it = 0
        while True:
            s = bk.mv(K, bv * v)
            row = bk.l1dev(av, u * s)  # row error of the plan (u, v)
            if it > 0:
                # with omega = 1 the columns are exact and `row` is the marginal error
                err = row if omega == 1.0 else max(row, col)
                if final and it % 50 == 0:
                    history.append((e, it, err))
                if err <= stage_tol:
                    break
                if omega == 1.0 and relax:
                    plain.append(row)
                    if len(plain) == 2 * RATE_WINDOW and plain[-1] < plain[RATE_WINDOW - 1]:
                        rate = (plain[-1] / plain[RATE_WINDOW - 1]) ** (1.0 / RATE_WINDOW)
                        omega = min(OMEGA_MAX, 2.0 / (1.0 + math.sqrt(1.0 - rate)))
                        best = err
                elif omega != 1.0:
                    if err > 10.0 * best:  # safeguard: fall back to plain Sinkhorn for good
                        omega, relax = 1.0, False
                    best = min(best, err)
            if it >= budget:
                break
            u = 1.0 / s if omega == 1.0 else u ** (1.0 - omega) * s ** (-omega)
            t = bk.mtv(K, av * u)
            col = bk.l1dev(bv, v * t)  # column error of the plan (new u, v)
            v = 1.0 / t if omega == 1.0 else v ** (1.0 - omega) * t ** (-omega)
            it += 1
            if callback is not None:
                callback(total + it)
            if not (bk.isfinite(u) and bk.isfinite(v)):
                raise FloatingPointError(
                    f"Sinkhorn kernel underflowed at eps={e:.3g} (a row or column of "
                    "exp(-C/eps) is zero); increase reg, or use eps-scaling with a decay closer "
                    "to 1"
                )
            if bk.maxabs(bk.log(u)) > ABSORB or bk.maxabs(bk.log(v)) > ABSORB:
                f = f + e * bk.log(u)
                g = g + e * bk.log(v)
                u = bk.full(n, 1.0)
                v = bk.full(m, 1.0)
                rebuild(f, g, e)
                n_absorb += 1
        total += it
        if omega != 1.0:  # one plain column update, then the error with exact columns
            v = 1.0 / bk.mtv(K, av * u)
            s = bk.mv(K, bv * v)
            err = bk.l1dev(av, u * s)
        # last row update: f consistent with g (the columns are then off by `err`)
        f = f - e * bk.log(s)
        g = g + e * bk.log(v)
        if not final:
            history.append((e, it, err))
    history.append((schedule[-1], it, err))
    return SinkhornResult(
        f=bk.to_numpy(f),
        g=bk.to_numpy(g),
        eps=float(schedule[-1]),
        n_iter=total,
        n_iter_final=it,
        marginal_error=float(err),
        converged=bool(err <= tol),
        n_absorb=n_absorb,
        history=history,
    )


# ----------------------------------------------------------------------------- entropic map


def entropic_map(
    x: np.ndarray,
    z: np.ndarray,
    g: np.ndarray,
    eps: float,
    *,
    b: np.ndarray | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Out-of-sample entropic map ``T(x) = sum_j w_j(x) z_j`` [PNW21].

    Parameters
    ----------
    x : ndarray, shape (k, d)
        Points to map (standardised like the training samples).
    z : ndarray, shape (m, d)
        Target training samples.
    g : ndarray, shape (m,)
        Target potential from :func:`sinkhorn`.
    eps : float
        The regularisation ``g`` belongs to.
    b : ndarray, shape (m,), optional
        Target weights (default uniform).
    batch_size : int, optional
        Points per batch; default ``BLOCK_ELEMS // m`` (a 32 MiB ``k x m`` work block). The
        result does not depend on it.
    device : str
        ``"cpu"`` (numpy) or a torch device.

    Returns
    -------
    ndarray, shape (k, d)

    Notes
    -----
    ``w_j(x) = softmax_j((g_j - ||x - z_j||^2) / eps + log b_j)``, evaluated with the row
    maximum subtracted (a log-sum-exp), so it never under- or overflows. On a training point
    ``y_i`` it is the barycentric projection ``sum_j P_ij z_j / a_i`` of the plan.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y, z = rng.normal(size=(300, 1)), rng.normal(5.0, 2.0, size=(300, 1))
    >>> res = sinkhorn(y, z, eps=0.01, eps_start=10.0)
    >>> entropic_map(np.array([[0.0], [1.0]]), z, res.g, res.eps).round(1)
    array([[5.1],
           [7.1]])
    """
    bk = backend(device)
    X, Z = bk.asarray(x), bk.asarray(z)
    k, m = X.shape[0], Z.shape[0]
    gv = bk.asarray(g)
    if b is not None:
        gv = gv + eps * bk.asarray(np.log(b))
    zz = bk.sqnorm(Z)
    rows = int(batch_size) if batch_size else max(1, BLOCK_ELEMS // max(m, 1))
    rows = max(1, min(rows, k))
    work = bk.empty((rows, m))
    out = bk.empty((k, Z.shape[1]))
    with _one_blas_thread(bk):
        for r0 in range(0, k, rows):
            r1 = min(k, r0 + rows)
            xb = X[r0:r1]
            w = bk.sqdist_(work[: r1 - r0], xb, bk.sqnorm(xb), Z, zz)
            # logits (g_j - C_ij) / eps, in place
            w *= -1.0 / eps
            w += gv[None, :] / eps
            bk.softmax_rows_(w)
            out[r0:r1] = w @ Z
    return bk.to_numpy(out)


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMITER: Any = None


@contextlib.contextmanager
def _one_blas_thread(bk: Any) -> Iterator[None]:
    """One BLAS thread for the map on the CPU: BLAS results depend on its number of threads,
    and the map must give the same bits in a dask worker (one thread) as on a laptop (many).
    Blocks of snapshots run in parallel anyway (one dask task each). The limit is process-wide,
    so it is counted: it is lifted when the last block running in this process is done."""
    global _BLAS_USERS, _BLAS_LIMITER
    if bk.name != "numpy":
        yield
        return
    import threadpoolctl

    # threadpoolctl lets only one "controlling" thread change a process-wide OpenBLAS pool;
    # the count below makes the first block in set the limit and the last one out lift it,
    # whichever threads they run in, so each hand-over is forced
    release = getattr(
        getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None
    )
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            if release is not None:
                release(force=True)
            _BLAS_LIMITER = threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0 and _BLAS_LIMITER is not None:
                if release is not None:
                    release(force=True)
                _BLAS_LIMITER.restore_original_limits()
                if release is not None:
                    release(force=True)
                _BLAS_LIMITER = None


def map_fields(
    block: np.ndarray,
    mask: np.ndarray,
    z: np.ndarray,
    g: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    *,
    eps: float,
    device: str,
    batch_size: int | None,
) -> np.ndarray:
    """The entropic map applied to whole fields: one block ``(..., ny, nx)`` of snapshots.

    Each snapshot's cells inside ``mask`` are standardised with ``center``/``scale``, mapped
    with :func:`entropic_map` and scaled back; cells outside ``mask``, and snapshots with a NaN
    in a mask cell, are NaN. The result has ``block``'s floating dtype.

    Examples
    --------
    >>> z, g = np.array([[0.0], [2.0]]), np.zeros(2)
    >>> out = map_fields(np.full((1, 1, 1), 1.0), np.ones((1, 1), bool), z, g, np.zeros(1),
    ...                  np.ones(1), eps=1.0, device="cpu", batch_size=None)
    >>> out.round(3).tolist()
    [[[1.0]]]
    """
    lead = block.shape[:-2]
    flat = np.asarray(block, dtype=np.float64).reshape(-1, block.shape[-2] * block.shape[-1])
    m = mask.reshape(-1).astype(bool)
    X = flat[:, m]
    ok = np.isfinite(X).all(axis=1)
    out = np.full(flat.shape, np.nan)
    if ok.any():
        Xs = (X[ok] - center) / scale
        T = entropic_map(Xs, z, g, eps, batch_size=batch_size, device=device)
        sub = np.full((int(ok.sum()), flat.shape[1]), np.nan)
        sub[:, m] = T * scale + center
        out[ok] = sub
    dtype = block.dtype if np.issubdtype(block.dtype, np.floating) else np.float64
    return out.reshape(*lead, block.shape[-2], block.shape[-1]).astype(dtype, copy=False)
