"""Samplers against the closed-form Gaussian denoiser: right mean, variance and posterior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdownscale.nn import (
    GaussianDenoiser,
    block_mean_matrix,
    gaussian_posterior,
    sample_conditional,
    sample_consistency,
    sample_euler_maruyama,
    sample_heun,
    sigmas_geometric,
    sigmas_karras,
)
from xdownscale.nn.samplers import block_mean, randn

N = 4000  # Monte-Carlo samples
H, W = 4, 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _prior(rng, h=H, w=W):
    """Mean and a smooth, correlated covariance (squared-exponential plus a nugget)."""
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    p = np.stack([yy.ravel(), xx.ravel()], 1)
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    cov = 0.8 * np.exp(-d2 / (2 * 1.5**2)) + 0.05 * np.eye(h * w)
    mean = rng.normal(0, 0.5, (1, h, w))
    return mean, cov


def _draw(rng, mean, cov, n=N, sigma=0.0):
    """x_0 + sigma z with x_0 ~ N(mean, cov): an exact draw from the marginal at sigma."""
    x0 = rng.multivariate_normal(mean.ravel(), cov, size=n)
    x = x0 + sigma * rng.standard_normal(x0.shape)
    return torch.as_tensor(x.reshape(n, 1, *mean.shape[1:]))


def _assert_moments(x: torch.Tensor, mean, var):
    """Per-pixel mean and variance within 5 Monte-Carlo standard errors."""
    a = x.reshape(x.shape[0], -1).double().numpy()
    n = a.shape[0]
    m_hat, v_hat = a.mean(0), a.var(0, ddof=1)
    mean, var = np.ravel(mean), np.ravel(var)
    np.testing.assert_array_less(np.abs(m_hat - mean), 5 * np.sqrt(var / n))
    np.testing.assert_array_less(np.abs(v_hat - var), 5 * var * np.sqrt(2 / (n - 1)))


def test_heun_reproduces_the_gaussian(rng):
    mean, cov = _prior(rng)
    d = GaussianDenoiser(mean, cov)
    x = _draw(rng, mean, cov, sigma=80.0)
    out = sample_heun(d, x, sigmas_karras(40, 0.002, 80.0))
    _assert_moments(out, mean, np.diag(cov))


def test_heun_matches_the_exact_probability_flow(rng):  # 2nd order: error ~ 1/steps^2
    mean, cov = _prior(rng)
    x = _draw(rng, mean, cov, n=64, sigma=5.0)
    exact = GaussianDenoiser(mean, cov, parameterisation="consistency", sigma_min=0.0)(x, 5.0)
    d = GaussianDenoiser(mean, cov)
    err = [
        float((sample_heun(d, x, sigmas_karras(n, 0.002, 5.0)) - exact).abs().max())
        for n in (32, 64, 128)
    ]
    assert err[2] < 1e-3
    assert err[1] < err[0] / 3 and err[2] < err[1] / 3  # second order


def test_euler_maruyama_from_sigma_star(rng):
    mean, cov = _prior(rng)
    x = _draw(rng, mean, cov, sigma=1.0)  # SDEdit: start at sigma* = 1
    g = torch.Generator().manual_seed(1)
    out = sample_euler_maruyama(
        GaussianDenoiser(mean, cov), x, sigmas_geometric(300, 0.002, 1.0), generator=g
    )
    _assert_moments(out, mean, np.diag(cov))


def test_one_step_consistency_of_a_gaussian_is_exact(rng):
    mean, cov = _prior(rng)
    eps, sigma = 0.002, 3.0
    f = GaussianDenoiser(mean, cov, parameterisation="consistency", sigma_min=eps)
    # deterministic: maps the sigma-marginal's whitened coordinates to the eps-marginal's
    lam, vec = np.linalg.eigh(cov)
    q = rng.standard_normal((8, lam.size))
    x = mean.ravel() + (q * np.sqrt(lam + sigma**2)) @ vec.T
    out = sample_consistency(f, torch.as_tensor(x.reshape(8, 1, H, W)), [sigma])
    expect = mean.ravel() + (q * np.sqrt(lam + eps**2)) @ vec.T
    np.testing.assert_allclose(out.reshape(8, -1).numpy(), expect, rtol=0, atol=1e-12)
    # and in distribution
    _assert_moments(
        sample_consistency(f, _draw(rng, mean, cov, sigma=sigma), [sigma]),
        mean,
        np.diag(cov) + eps**2,
    )


def test_multistep_consistency(rng):
    mean, cov = _prior(rng)
    f = GaussianDenoiser(mean, cov, parameterisation="consistency")
    x = _draw(rng, mean, cov, sigma=80.0)
    out = sample_consistency(
        f, x, [80.0, 2.0, 0.5, 0.0], generator=torch.Generator().manual_seed(0)
    )
    _assert_moments(out, mean, np.diag(cov) + 0.002**2)


def _block_independent_prior(rng, h=8, w=8, f=2):
    """Prior whose block means and within-block anomalies are independent: there the
    projected denoiser is the exact conditional denoiser, so the posterior is exact."""
    c = block_mean_matrix((h, w), f)
    u = c.T * f**2  # replicate each coarse cell over its block
    proj = np.eye(h * w) - u @ c  # removes block means
    _, k = _prior(rng, h, w)
    cov = 0.7 * u @ u.T / f**2 + proj @ k @ proj.T + 1e-9 * np.eye(h * w)
    return rng.normal(0, 0.3, (1, h, w)), cov, c


def test_conditional_matches_the_gaussian_posterior(rng):
    mean, cov, c = _block_independent_prior(rng)
    y = rng.normal(0, 1, (1, 1, 4, 4))
    d = GaussianDenoiser(mean, cov)
    n = 2000
    x = _draw(rng, mean, cov, n=n, sigma=10.0)
    out = sample_conditional(
        d,
        x,
        sigmas_geometric(200, 0.002, 10.0),
        y=torch.as_tensor(y).expand(n, 1, 4, 4),
        factor=2,
        gamma=0.1,
        generator=torch.Generator().manual_seed(3),
    )
    err = (block_mean(out, 2) - torch.as_tensor(y)).abs().max()
    assert float(err) < 1e-5
    m_post, p_post = gaussian_posterior(mean, cov, c, y.ravel())
    # the constrained directions have zero posterior variance; test the others
    a = out.reshape(n, -1).numpy()
    np.testing.assert_array_less(
        np.abs(a.mean(0) - m_post), 5 * np.sqrt(np.diag(p_post) / n) + 1e-6
    )
    v = np.diag(p_post)
    np.testing.assert_array_less(np.abs(a.var(0, ddof=1) - v), 5 * v * np.sqrt(2 / (n - 1)) + 1e-6)


def test_conditional_constraint_holds_for_a_correlated_prior(rng):
    mean, cov = _prior(rng, 8, 8)
    y = torch.as_tensor(rng.normal(0, 1, (3, 1, 2, 2)))
    y[0, 0, 0, 0] = float("nan")  # an unconstrained cell
    x = _draw(rng, mean, cov, n=3, sigma=2.0)
    out = sample_conditional(
        GaussianDenoiser(mean, cov),
        x,
        sigmas_geometric(30, 0.002, 2.0),
        y=y,
        factor=4,
        gamma=0.3,
        generator=torch.Generator().manual_seed(0),
    )
    err = (block_mean(out, 4) - y)[torch.isfinite(y)].abs().max()
    assert float(err) < 1e-5
    assert torch.isfinite(out).all()


def test_sigma_schedules():
    s = sigmas_karras(10, 0.002, 80.0)
    assert s[0] == pytest.approx(80.0) and s[-2] == pytest.approx(0.002) and s[-1] == 0
    assert torch.all(s[1:] < s[:-1])
    g = sigmas_geometric(5, 0.01, 500.0)
    ratios = g[1:-1] / g[:-2]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (0.01 / 500) ** 0.25))


def test_per_sample_generators_make_noise_independent_of_the_batch():
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    a = randn(torch.zeros(4, 1, 5, 5), gens([1, 2, 3, 4]))
    b = randn(torch.zeros(2, 1, 5, 5), gens([3, 4]))
    assert torch.equal(a[2:], b)


def test_bad_arguments():
    d = GaussianDenoiser(np.zeros((1, 4, 4)), np.eye(16))
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="sigmas must be a non-empty, non-increasing"):
        sample_heun(d, x, [0.1, 1.0, 0.0])
    with pytest.raises(ValueError, match="got 3 generators for a batch of 2"):
        randn(x, [torch.Generator()] * 3)
    with pytest.raises(
        ValueError, match="factor must be a positive integer dividing the field size 4 x 4"
    ):
        sample_conditional(d, x, [1.0, 0.0], y=torch.zeros(2, 1, 1, 1), factor=3)
    with pytest.raises(ValueError, match=r"y must have shape \(2, 1, 2, 2\)"):
        sample_conditional(d, x, [1.0, 0.0], y=torch.zeros(2, 1, 4, 4), factor=2)
    with pytest.raises(ValueError, match="sigmas must contain a level above sigma_min"):
        sample_consistency(d, x, [0.001, 0.0])
    with pytest.raises(ValueError, match="mean must have shape"):
        GaussianDenoiser(np.zeros((4, 4)), np.eye(16))


def test_conserve_block_means_exact_and_safe():
    from xdownscale.nn.samplers import block_mean, conserve

    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=g) ** 3
    y = torch.rand(3, 1, 2, 2, generator=g) * 2
    y[0, 0, 0, 0] = 0.0
    y[1, 0, 1, 1] = float("nan")
    x[2, 0, :4, :4] = 0.0  # a dry block under a wet coarse cell: additive fallback
    for mode, smooth in [(m, k) for m in ("additive", "multiplicative") for k in (0, 4)]:
        out = conserve(x, y, 4, mode, smooth=smooth)
        known = torch.isfinite(y)
        torch.testing.assert_close(block_mean(out, 4)[known], y[known], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(out[1, 0, 4:, 4:], x[1, 0, 4:, 4:])  # NaN y: untouched
    m = conserve(x, y, 4, "multiplicative", smooth=0)
    assert float(m.min()) >= 0 and (m[0, 0, :4, :4] == 0).all()
    assert torch.allclose(m[2, 0, :4, :4], y[2, 0, 0, 0].expand(4, 4))  # uniform fill
    # where it scales, the block's shape is the input's up to the factor
    r = m[1, 0, :4, :4] / x[1, 0, :4, :4]
    assert torch.allclose(r, r[0, 0].expand(4, 4), rtol=1e-5)
    ms = conserve(x, y, 4, "multiplicative")  # smooth (default): still exact, dry stays dry
    assert float(ms.min()) >= 0 and (ms[0, 0, :4, :4] == 0).all()
    # smoothing: the correction no longer jumps at block edges
    big = torch.rand(2, 1, 64, 64, generator=g) + 0.5
    yb = block_mean(torch.rand(2, 1, 64, 64, generator=g) + 0.5, 8) * 1.5

    def edge(f):  # the jump across block edges
        return float((f[..., 8:56:8] - f[..., 7:55:8]).abs().mean())

    for mode in ("additive", "multiplicative"):
        rough = conserve(big, yb, 8, mode, smooth=0) / (big if mode == "multiplicative" else 1)
        fine = conserve(big, yb, 8, mode) / (big if mode == "multiplicative" else 1)
        if mode == "additive":
            rough, fine = rough - big, fine - big
        assert edge(fine) < 0.3 * edge(rough)
    with pytest.raises(ValueError, match="mode='both' is not supported"):
        conserve(x, y, 4, "both")
