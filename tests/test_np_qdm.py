"""Tests of the numpy QDM core: estimators, ranks, factors, analytic oracles, invariants."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from xdownscale import np_qdm

G0 = np.array([0])


def _run(ref, hist, sim, kind, n=50, interp="nearest", extrapolation="constant", **kw):
    lab = lambda x: np.zeros(x.shape[-1], int)  # noqa: E731
    af, _, _ = np_qdm.fit(
        ref,
        hist,
        ref_labels=lab(ref),
        hist_labels=lab(hist),
        groups=G0,
        n_quantiles=n,
        kind=kind,
        **kw,
    )
    return np_qdm.adjust(
        sim,
        af,
        sim_labels=lab(sim),
        groups=G0,
        kind=kind,
        interp=interp,
        extrapolation=extrapolation,
        **kw,
    )


def test_nodes_match_xsdba_equally_spaced_nodes():
    xu = pytest.importorskip("xsdba.utils")
    for n in (1, 7, 50, 500):
        np.testing.assert_allclose(
            np_qdm.equally_spaced_nodes(n), xu.equally_spaced_nodes(n), rtol=1e-15
        )


def test_quantiles_sorted_is_numpy_type7_with_nan(rng):
    x = rng.normal(size=(5, 101))
    x[0, ::3] = np.nan
    x[1, :] = np.nan
    x[2, 1:] = np.nan  # a single valid value
    q = np.linspace(0, 1, 23)
    s = np.sort(x, axis=-1)
    got = np_qdm.quantiles_sorted(s, np.sum(~np.isnan(s), -1), q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.moveaxis(np.nanquantile(x, q, axis=-1), 0, -1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isnan(got[1]).all()


def test_rank_pct_matches_average_ranks(rng):
    x = rng.integers(0, 6, size=(4, 40)).astype(float)  # many ties
    x[0, :5] = np.nan
    got = np_qdm.rank_pct(x)
    for row, g in zip(x, got, strict=True):
        v = ~np.isnan(row)
        r = stats.rankdata(row[v])  # average ranks
        m = v.sum()
        want = (r.max() / m) * (r - r.min()) / (r.max() - r.min())
        np.testing.assert_allclose(g[v], want, rtol=1e-12)
        assert np.isnan(g[~v]).all()


def test_rank_pct_constant_row_is_half():
    assert np.all(np_qdm.rank_pct(np.full((1, 5), 3.0)) == 0.5)


def test_rank_pct_all_nan_row_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = np_qdm.rank_pct(np.full((2, 6), np.nan))
    assert np.isnan(out).all()


def test_group_members_window_pads_with_minus_one():
    labels = np.array([1, 2, 3, 1, 2, 3])
    ((idx, centres),) = np_qdm.group_members(labels, np.array([1]), window=3)
    assert idx.tolist() == [-1, 0, 1, 2, 3, 4]
    assert idx[centres].tolist() == [0, 3]


@pytest.mark.parametrize("interp", ["nearest", "linear"])
def test_analytic_additive_shift_is_exact(rng, interp):
    """ref = hist + c through the same uniforms: every factor is c, so out = sim + c."""
    hist = rng.normal(size=(3, 500))
    sim = rng.normal(1.0, 2.0, size=(3, 400))
    out = _run(hist + 2.5, hist, sim, "additive", interp=interp)
    np.testing.assert_allclose(out, sim + 2.5, rtol=1e-12)


@pytest.mark.parametrize("interp", ["nearest", "linear"])
def test_analytic_multiplicative_scale_is_exact(rng, interp):
    """ref = 3 hist (gamma, same uniforms): every factor is 3, so out = 3 sim."""
    hist = rng.gamma(0.7, 2.0, size=(3, 500))
    sim = rng.gamma(0.7, 3.0, size=(3, 400))
    out = _run(3.0 * hist, hist, sim, "multiplicative", interp=interp)
    np.testing.assert_allclose(out, 3.0 * sim, rtol=1e-12)


def test_analytic_normal_quantile_maps():
    """Known distributions through the same uniforms: ref = 2 + 3Z, hist = Z, sim = Z + 1.

    Additive QDM gives x + F_ref^-1(tau) - F_hist^-1(tau) = x + (2 + 3(x - 1)) - (x - 1) = 3x.
    """
    n = 20000
    u = (np.arange(n) + 0.5) / n
    z = stats.norm.ppf(np.random.default_rng(1).permutation(u))[None]
    out = _run(2 + 3 * z, z, z + 1, "additive", n=500, interp="linear")
    inner = np.abs(z) < 2.5  # beyond, the end nodes' constant extrapolation takes over
    np.testing.assert_allclose(out[inner], 3 * (z + 1)[inner] - 0.0, atol=0.02)


def test_nearest_ties_go_to_lower_node():
    # tau = 0.5 lies exactly between nodes 0.25 and 0.75 (n = 2), as scipy interp1d("nearest")
    af = np.array([[[10.0, 20.0]]])
    out = np_qdm.adjust(
        np.array([[0.0, 1.0, 2.0]]),
        af,
        sim_labels=np.zeros(3, int),
        groups=G0,
        kind="additive",
    )
    assert out.tolist() == [[10.0, 11.0, 22.0]]


def test_extrapolation_nan_and_constant():
    af = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    sim = np.arange(11.0)[None]
    lab = np.zeros(11, int)
    const = np_qdm.adjust(sim, af, sim_labels=lab, groups=G0, kind="additive", interp="linear")
    nan = np_qdm.adjust(
        sim,
        af,
        sim_labels=lab,
        groups=G0,
        kind="additive",
        interp="linear",
        extrapolation="nan",
    )
    assert const[0, 0] == 1.0 and const[0, -1] == 14.0
    assert np.isnan(nan[0, 0]) and np.isnan(nan[0, -1]) and not np.isnan(nan[0, 5])


def test_multiplicative_zeros_never_inf_or_nan(rng):
    ref = np.where(rng.random((4, 600)) < 0.5, 0.0, rng.gamma(0.8, 3.0, (4, 600)))
    hist = np.where(rng.random((4, 600)) < 0.7, 0.0, rng.gamma(0.8, 2.0, (4, 600)))
    sim = np.where(rng.random((4, 500)) < 0.6, 0.0, rng.gamma(0.8, 2.0, (4, 500)))
    hist[3] = 0.0  # a model cell that never rains
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for interp in ("nearest", "linear"):
            out = _run(ref, hist, sim, "multiplicative", interp=interp)
            assert np.isfinite(out).all()
            np.testing.assert_array_equal(out[3], sim[3])  # unadjusted where hist is all dry
            jit = _run(ref, hist, sim, "multiplicative", interp=interp, dry_threshold=0.05)
            assert np.isfinite(jit).all() and (jit >= 0).all()
            assert ((jit == 0) | (jit >= 0.05)).all()  # dry days come out exactly 0


def test_jitter_is_seeded_and_order_independent(rng):
    x = np.where(rng.random((6, 50)) < 0.5, 0.0, 1.0)
    ids = np.arange(6)
    a = np_qdm.jitter_under(x, 0.1, seed=3, stream=0, cell_ids=ids)
    b = np_qdm.jitter_under(x[::-1], 0.1, seed=3, stream=0, cell_ids=ids[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    c = np_qdm.jitter_under(x, 0.1, seed=4, stream=0, cell_ids=ids)
    assert not np.array_equal(a, c)
    dry = x < 0.1
    assert ((a[dry] > 0) & (a[dry] < 0.1)).all() and (a[~dry] == 1.0).all()
    assert len(np.unique(a[dry])) == dry.sum()
    x32 = x.astype(np.float32)
    j32 = np_qdm.jitter_under(x32, 1e-30, seed=0, stream=0)  # noise never rounds to 0
    assert j32.dtype == np.float32 and (j32 > 0).all()


def test_nan_in_sim_stays_nan_and_nan_in_ref_skipped(rng):
    ref = rng.normal(size=(2, 300))
    hist = rng.normal(size=(2, 300))
    sim = rng.normal(size=(2, 200))
    ref_nan = ref.copy()
    ref_nan[:, ::10] = np.nan
    sim[0, 5] = np.nan
    out = _run(ref_nan, hist, sim, "additive")
    assert np.isnan(out[0, 5]) and np.isfinite(np.delete(out[0], 5)).all()
    # equal to fitting on the valid values only
    out2 = _run(ref[:, np.arange(300) % 10 != 0], hist, sim, "additive")
    np.testing.assert_allclose(out, out2)


def test_doy_window_ranks_centres_within_window():
    n_t = 3 * 365
    labels = np.tile(np.arange(1, 366), 3)
    rng = np.random.default_rng(0)
    hist = rng.normal(size=(1, n_t))
    groups = np.arange(1, 366)
    af, _, _ = np_qdm.fit(
        hist + 1.0,
        hist,
        ref_labels=labels,
        hist_labels=labels,
        groups=groups,
        n_quantiles=20,
        kind="additive",
        window=31,
    )
    np.testing.assert_allclose(af, 1.0, rtol=1e-12)
    out = np_qdm.adjust(hist, af, sim_labels=labels, groups=groups, kind="additive", window=31)
    np.testing.assert_allclose(out, hist + 1.0, rtol=1e-12)


def test_dry_hist_nodes_with_tie_free_sim():
    """NaN lowest factors (dry hist) with a sim free of ties and NaN: the lowest defined node is
    used below it (this case used to raise a broadcasting error)."""
    sim = np.random.default_rng(0).gamma(2.0, 1.0, (3, 40))  # float64: no ties
    af = np.array([[[np.nan, np.nan, 2.0, 3.0, 4.0]]] * 3)
    out = np_qdm.adjust(sim, af, sim_labels=np.zeros(40, int), groups=G0, kind="multiplicative")
    tau = np_qdm.rank_pct(sim)
    k = np.maximum(np.clip(np.ceil(5 * tau) - 1, 0, 4), 2).astype(int)
    np.testing.assert_array_equal(out, sim * af[:, 0, :][np.arange(3)[:, None], k])


def test_sort_rows_float32_keys_match_numpy_sort(rng):
    x = rng.normal(size=(7, 301)).astype(np.float32)
    x[0, ::7] = np.nan
    x[1, ::5] = -np.float32(np.nan)  # NaN with the sign bit set sorts last too
    x[2] = np.round(x[2])  # ties
    x[3, ::2] = -0.0
    x[3, 1::4] = 0.0
    x[4, :3] = [np.inf, -np.inf, np.float32(1e-45)]
    x[5] = np.nan
    for a in (x, x.astype(np.float64)):
        s, pos = np_qdm._sort_rows(a)
        want = np.sort(a, axis=-1)
        np.testing.assert_array_equal(s, want)  # equal (NaN == NaN, -0 == 0) position by position
        np.testing.assert_array_equal(a.ravel()[pos], s)
        rows = pos // a.shape[1]
        assert (rows == np.arange(a.shape[0])[:, None]).all()  # positions stay in their row
        assert all(len(np.unique(p)) == a.shape[1] for p in pos)  # a permutation of each row


def test_sparse_tau_equals_dense_tau(rng):
    x = rng.integers(0, 40, size=(9, 60)).astype(float)  # many ties
    x[1, :3] = -1.0  # tied minimum
    x[2, -3:] = 99.0  # tied maximum
    x[3, ::4] = np.nan
    x[4] = 5.0
    x[5] = np.nan
    x[6] = np.arange(60.0)  # no ties
    s = np.sort(x, axis=-1)
    dense = np.broadcast_to(np_qdm._dense_tau(s), s.shape)
    tau = np_qdm._sorted_tau(s)
    got = np.broadcast_to(tau.shared, s.shape).copy()
    got[tau.tie_rows, tau.tie_cols] = tau.tie_tau
    got[tau.rows] = tau.dense
    np.testing.assert_array_equal(got, dense)
    # only rows with NaN or a tied smallest/largest value need dense rows
    need = [np.isnan(r).any() or r[0] == r[1] or r[-1] == r[-2] for r in s]
    assert tau.rows.tolist() == np.flatnonzero(need).tolist()
    assert {1, 2, 3, 4, 5} <= set(tau.rows.tolist()) and 6 not in tau.rows


# ----------------------------------------------------------------------------- hypothesis

sizes = st.integers(min_value=5, max_value=120)
kinds = st.sampled_from(["additive", "multiplicative"])
interps = st.sampled_from(["nearest", "linear"])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n=sizes, nq=st.integers(1, 60), kind=kinds, interp=interps, seed=st.integers(0, 2**16))
def test_identity_when_ref_hist_sim_equal(n, nq, kind, interp, seed):
    x = np.random.default_rng(seed).gamma(0.6, 2.0, size=(2, n))
    out = _run(x, x, x, kind, n=nq, interp=interp)
    np.testing.assert_allclose(out, x, rtol=1e-12, atol=0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    n=sizes,
    kind=kinds,
    interp=interps,
    seed=st.integers(0, 2**16),
    shift=st.floats(0.0, 5.0),
    scale=st.floats(1.0, 3.0),
)
def test_monotone_in_sim(n, kind, interp, seed, shift, scale):
    """Raising sim (keeping its order) never lowers the adjusted values, and sim = hist keeps
    the order of hist."""
    rng = np.random.default_rng(seed)
    ref, hist = rng.gamma(0.8, 2.0, (2, n)), rng.gamma(0.8, 1.0, (2, n))
    sim = rng.gamma(0.8, 1.5, (2, n))
    higher = sim * scale + shift  # an increasing map with g(x) >= x
    a = _run(ref, hist, sim, kind, n=20, interp=interp)
    b = _run(ref, hist, higher, kind, n=20, interp=interp)
    assert (b >= a - 1e-12).all()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    kind=kinds,
    seed=st.integers(0, 2**16),
    mu=st.floats(-1.0, 1.0),
    s_ref=st.floats(1.0, 2.0),
    s_sim=st.floats(0.5, 2.0),
)
def test_quantile_changes_preserved(kind, seed, mu, s_ref, s_sim):
    """Additive: Q_out - Q_ref = Q_sim - Q_hist at every probability; multiplicative: ratios.

    Scales are such that Q_sim + Q_ref - Q_hist increases with the probability (std >= 0.5):
    where it does not, no series has those quantiles and QDM cannot preserve the changes.
    """
    rng = np.random.default_rng(seed)
    n = 4000
    if kind == "additive":
        ref, hist = rng.normal(mu, s_ref, (1, n)), rng.normal(0, 1, (1, n))
        sim = rng.normal(mu + 0.5, s_sim, (1, n))
    else:
        ref, hist = rng.gamma(2.0, s_ref, (1, n)), rng.gamma(2.0, 1.0, (1, n))
        sim = rng.gamma(2.5, s_sim, (1, n))
    out = _run(ref, hist, sim, kind, n=200, interp="linear")
    # at the nodes, the factor is exactly Q_ref - Q_hist (or the ratio) of the samples
    p = np_qdm.equally_spaced_nodes(200)[10:190:10]
    # the adjusted value at sim's probability p: out in the order of sim, read like a quantile
    by_sim_rank = out[0][np.argsort(sim[0])]
    q_out = np.interp(p * (n - 1), np.arange(n), by_sim_rank)
    q = {k: np.quantile(v[0], p) for k, v in dict(ref=ref, sim=sim, hist=hist).items()}
    if kind == "additive":
        np.testing.assert_allclose(q_out - q["ref"], q["sim"] - q["hist"], atol=1e-3)
    else:
        np.testing.assert_allclose(q_out / q["ref"], q["sim"] / q["hist"], rtol=1e-3)
