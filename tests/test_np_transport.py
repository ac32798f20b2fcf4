"""Tests of the pure optimal-transport core against closed forms, POT and itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg

from xdownscale import np_transport as nt


def _gaussians(rng, d, n):
    a1 = rng.normal(size=(d, d)) / np.sqrt(d)
    a2 = rng.normal(size=(d, d)) / np.sqrt(d)
    s1, s2 = a1 @ a1.T + 0.3 * np.eye(d), a2 @ a2.T + 0.3 * np.eye(d)
    m1, m2 = rng.normal(size=d), 2.0 * rng.normal(size=d)
    y = rng.multivariate_normal(m1, s1, n)
    z = rng.multivariate_normal(m2, s2, n)
    r1 = scipy.linalg.sqrtm(s1).real
    r1i = np.linalg.inv(r1)
    a = r1i @ scipy.linalg.sqrtm(r1 @ s2 @ r1).real @ r1i  # closed-form Monge map matrix
    return y, z, (m1, s1, m2, s2, a)


def _fit(y, z, reg, **kw):
    c, s = nt.standardization(y, z)
    ys, zs = (y - c) / s, (z - c) / s
    med = nt.median_cost(ys, zs)
    res = nt.sinkhorn(ys, zs, reg * med, eps_start=med, **kw)

    def tmap(x):
        return nt.entropic_map((x - c) / s, zs, res.g, res.eps) * s + c

    return res, tmap


@pytest.fixture(scope="module")
def gauss16():
    return _gaussians(np.random.default_rng(7), 16, 4000)


@pytest.mark.slow
def test_gaussian_moments_at_default_reg(gauss16):
    y, z, (_, _, _, s2, _) = gauss16
    res, tmap = _fit(y, z, 0.002, tol=1e-4)
    assert res.converged and res.marginal_error <= 1e-4
    t = tmap(y)
    scale = np.sqrt(np.trace(s2) / 16)
    assert np.abs(t.mean(0) - z.mean(0)).max() < 0.05 * scale
    cov, covz = np.cov(t.T), np.cov(z.T)
    assert np.linalg.norm(cov - covz) / np.linalg.norm(covz) < 0.2
    assert 0.85 < np.trace(cov) / np.trace(covz) <= 1.0 + 1e-9
    # a large reg shrinks the map toward the mean: the trade-off the default avoids
    _, tmap_big = _fit(y, z, 0.02, tol=1e-4)
    assert np.trace(np.cov(tmap_big(y).T)) / np.trace(covz) < 0.65


@pytest.mark.slow
def test_gaussian_map_approaches_closed_form(gauss16):
    y, z, (m1, s1, m2, s2, a) = gauss16
    x = np.random.default_rng(1).multivariate_normal(m1, s1, 1000)  # out of sample
    exact = m2 + (x - m1) @ a.T
    errs = []
    # down to reg = 0.02; below, the sampling error of n = 4000 points in 16-d dominates
    for reg in (0.1, 0.05, 0.02):
        _, tmap = _fit(y, z, reg, tol=1e-5)
        errs.append(np.sqrt(((tmap(x) - exact) ** 2).sum(1).mean() / np.trace(s2)))
    assert all(e1 < e0 for e0, e1 in itertools.pairwise(errs)), errs
    assert errs[-1] < 0.7 * errs[0]


def test_equals_pot_sinkhorn_transport(rng):
    ot = pytest.importorskip("ot")
    y = rng.normal(size=(300, 5))
    z = rng.gamma(2.0, 1.0, size=(250, 5)) @ rng.normal(size=(5, 5))
    c, s = nt.standardization(y, z)
    ys, zs = (y - c) / s, (z - c) / s
    eps = 0.05 * nt.median_cost(ys, zs)
    res = nt.sinkhorn(ys, zs, eps, eps_start=10 * eps, tol=1e-12, max_iter=100_000)
    pot = ot.da.SinkhornTransport(reg_e=eps, max_iter=100_000, tol=1e-13)
    pot.fit(Xs=ys, Xt=zs)
    xnew = rng.normal(size=(50, 5))
    for pts in (ys, xnew):
        ours = nt.entropic_map(pts, zs, res.g, res.eps)
        theirs = pot.transform(Xs=pts)
        assert np.abs(ours - theirs).max() <= 1e-7 * np.abs(theirs).max()


def test_entropic_map_is_barycentric_projection(rng):
    y, z = rng.normal(size=(120, 3)), rng.normal(1.0, 2.0, size=(90, 3))
    eps = 0.5
    res = nt.sinkhorn(y, z, eps, tol=1e-10, eps_start=8.0)
    plan = np.exp((res.f[:, None] + res.g[None, :] - nt.sqdist(y, z)) / eps) / (120 * 90)
    np.testing.assert_allclose(plan.sum(1), 1 / 120, rtol=1e-12)  # f was updated last
    np.testing.assert_allclose(plan.sum(0), 1 / 90, atol=1e-9)
    bary = plan @ z * 120
    np.testing.assert_allclose(nt.entropic_map(y, z, res.g, eps), bary, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_one_dimension_agrees_with_quantile_mapping(rng):
    y = rng.normal(size=(1000, 1))
    z = rng.gamma(3.0, 1.0, size=(1000, 1))
    res, tmap = _fit(y, z, 0.001, tol=1e-4)
    assert res.converged
    x = np.linspace(-1.8, 1.8, 25)[:, None]  # the central 93 % of hist
    ranks = np.searchsorted(np.sort(y[:, 0]), x[:, 0]) / 1000.0
    qm = np.quantile(z[:, 0], ranks)
    np.testing.assert_allclose(tmap(x)[:, 0], qm, atol=0.06 * z.std())
    assert np.all(np.diff(tmap(x)[:, 0]) > 0)  # monotone, like every 1-D OT map


def test_out_of_sample_points_map_like_nearby_training_points(rng):
    y, z = rng.normal(size=(400, 4)), rng.normal(2.0, 0.5, size=(400, 4))
    _, tmap = _fit(y, z, 0.01, tol=1e-8)
    near = y[:20] + 1e-4 * rng.normal(size=(20, 4))
    far = y[:20] + 1.0
    d_near = np.linalg.norm(tmap(near) - tmap(y[:20]), axis=1)
    d_far = np.linalg.norm(tmap(far) - tmap(y[:20]), axis=1)
    assert d_near.max() < 1e-2 * d_far.min()


def test_relaxation_backends_and_batches_reach_the_same_map(rng):
    y, z = rng.normal(size=(200, 3)), rng.standard_t(5, size=(150, 3)) * 2
    eps = 0.02 * nt.median_cost(y, z)
    ref = nt.sinkhorn(y, z, eps, eps_start=20 * eps, tol=1e-11, max_iter=50_000)
    plain = nt.sinkhorn(y, z, eps, eps_start=20 * eps, tol=1e-11, max_iter=50_000, relax=False)
    recompute = nt.sinkhorn(
        y, z, eps, eps_start=20 * eps, tol=1e-11, max_iter=50_000, store_cost=False
    )
    x = rng.normal(size=(37, 3))
    t_ref = nt.entropic_map(x, z, ref.g, eps)
    for res in (plain, recompute):
        np.testing.assert_allclose(nt.entropic_map(x, z, res.g, eps), t_ref, atol=1e-8)
    assert plain.n_iter > ref.n_iter  # over-relaxation pays
    np.testing.assert_allclose(
        nt.entropic_map(x, z, ref.g, eps, batch_size=5), t_ref, rtol=1e-12, atol=1e-13
    )
    pytest.importorskip("torch")
    tres = nt.sinkhorn(
        y, z, eps, eps_start=20 * eps, tol=1e-11, max_iter=50_000, device="torch:cpu"
    )
    np.testing.assert_allclose(tres.g - tres.g.mean(), ref.g - ref.g.mean(), atol=1e-8)
    np.testing.assert_allclose(
        nt.entropic_map(x, z, ref.g, eps, device="torch:cpu"), t_ref, rtol=1e-12, atol=1e-12
    )


def test_not_converged_is_reported(rng):
    y, z = rng.normal(size=(100, 2)), rng.normal(3.0, 1.0, size=(100, 2))
    res = nt.sinkhorn(y, z, 0.01, eps_start=20.0, max_iter=3, tol=1e-9)
    assert not res.converged and res.n_iter == 3 and res.marginal_error > 1e-9


def test_underflow_without_epsilon_scaling_raises(rng):
    y, z = rng.normal(size=(100, 2)), rng.normal(30.0, 1.0, size=(100, 2))
    with pytest.raises(FloatingPointError, match="increase reg, or use eps-scaling"):
        nt.sinkhorn(y, z, 0.001)


def test_memory_guard_raises_before_allocating(rng):
    y = rng.normal(size=(50, 2))
    with pytest.raises(MemoryError, match=r"about n_samples=20 snapshots of each"):
        nt.sinkhorn(y, y, 0.1, max_memory=10_000)
    assert nt.dense_memory(20, 20, 2, False) <= 10_000 < nt.dense_memory(21, 21, 2, False)
    with pytest.raises(MemoryError, match=r"raise max_memory: not even 2 snapshots fit"):
        nt.sinkhorn(y, y, 0.1, max_memory=100)
    big = rng.normal(size=(3000, 2))
    with pytest.raises(ValueError, match=r"about n_samples=(\d+) snapshots of each") as info:
        nt.sinkhorn(big, big, 0.1, max_memory=40 * 2**20)
    n = int(__import__("re").search(r"n_samples=(\d+)", str(info.value)).group(1))
    assert 2 <= n < 3000
    assert (
        nt.dense_memory(n, n, 2, store_cost=False)
        <= 40 * 2**20
        < nt.dense_memory(3000, 3000, 2, False)
    )


def test_standardization_modes_and_errors(rng):
    y = rng.normal(0.0, [1.0, 10.0], size=(500, 2))
    _, s = nt.standardization(y, y, "global")
    assert s[0] == s[1]
    _, s = nt.standardization(y, y, "cell")
    assert s[1] / s[0] == pytest.approx(10.0, rel=0.1)
    const = np.ones((10, 2))
    assert np.all(nt.standardization(const, const)[1] == 1.0)
    with pytest.raises(ValueError, match="standardize='pca' is not supported"):
        nt.standardization(y, y, "pca")  # type: ignore[arg-type]


def test_schedule_median_and_memory():
    assert nt.epsilon_schedule(1.0, None) == [1.0]
    assert nt.epsilon_schedule(1.0, 0.5) == [1.0]
    sched = nt.epsilon_schedule(0.01, 1.0, 0.5)
    assert sched[0] == 1.0 and sched[-1] == 0.01 and np.all(np.diff(sched) < 0)
    with pytest.raises(ValueError, match="eps_decay must be in"):
        nt.epsilon_schedule(0.01, 1.0, 1.5)
    y = np.arange(5000.0)[:, None]
    approx = nt.median_cost(y, y, seed=0)
    exact = float(np.median(nt.sqdist(y, y)))
    assert approx == pytest.approx(exact, rel=0.05)
    assert nt.dense_memory(100, 100, 4, store_cost=True) > nt.dense_memory(100, 100, 4, False)
