"""Samplers: one leading signature ``(denoiser, x, sigmas, *, generator, callback)``.

``x`` is the state at noise level ``sigmas[0]`` (pure noise ``sigma_max z`` for generation, or
``x_src + sigma* z`` for SDEdit-style downscaling, so every sampler can start from any sigma*);
``sigmas`` is a decreasing sequence, normally ending with 0 (see :func:`sigmas_karras`,
:func:`sigmas_geometric`). ``generator`` is a :class:`torch.Generator`, or a sequence of them,
one per sample, so that each sample's noise does not depend on the batch it is in; noise is
drawn on the CPU in float32 and moved to ``x``'s device, so results do not depend on the device
either. ``callback(i, sigma, x, x_hat)`` is called after every step. Gradients are off except
where a sampler needs them (conditional guidance). Style of k-diffusion ``sampling.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import torch

__all__ = [
    "block_mean",
    "block_upsample",
    "conserve",
    "randn",
    "sample_conditional",
    "sample_consistency",
    "sample_euler_maruyama",
    "sample_heun",
    "sigmas_geometric",
    "sigmas_karras",
]

Generator = torch.Generator | Sequence[torch.Generator] | None
Callback = Callable[[int, float, torch.Tensor, torch.Tensor], Any] | None


# ----------------------------------------------------------------------------- helpers


def randn(like: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Standard normal noise shaped like ``like``: per sample when ``generator`` is a sequence.

    Examples
    --------
    >>> import torch
    >>> gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    >>> a = randn(torch.zeros(2, 1, 3, 3), gens)
    >>> b = randn(torch.zeros(1, 1, 3, 3), [torch.Generator().manual_seed(2)])
    >>> bool(torch.equal(a[1], b[0]))
    True
    """
    if generator is None or isinstance(generator, torch.Generator):
        z = torch.randn(like.shape, generator=generator, dtype=torch.float32)
    else:
        if len(generator) != like.shape[0]:
            raise ValueError(
                f"got {len(generator)} generators for a batch of {like.shape[0]} samples; "
                "pass one generator per sample (or a single torch.Generator)"
            )
        z = torch.stack(
            [torch.randn(like.shape[1:], generator=g, dtype=torch.float32) for g in generator]
        )
    return z.to(device=like.device, dtype=like.dtype)


def _as_list(sigmas) -> list[float]:
    s = [float(v) for v in (sigmas.tolist() if torch.is_tensor(sigmas) else sigmas)]
    if not s or any(b > a for a, b in pairwise(s)) or s[-1] < 0:
        raise ValueError(
            f"sigmas must be a non-empty, non-increasing sequence of non-negative noise levels, "
            f"got {s[:5]}{'...' if len(s) > 5 else ''}"
        )
    return s


def sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM noise levels ``(smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho``, then 0.

    Examples
    --------
    >>> sigmas_karras(3, 0.002, 80.0).round(decimals=3).tolist()
    [80.0, 2.515, 0.002, 0.0]
    """
    if n < 1 or not 0 < sigma_min <= sigma_max:
        raise ValueError(
            f"need n >= 1 and 0 < sigma_min <= sigma_max, got {n}, {sigma_min}, {sigma_max}"
        )
    i = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    s = (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, s.new_zeros(1)])


def sigmas_geometric(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """VE noise levels ``sigma_max (sigma_min/sigma_max)^(i/(n-1))`` (Song et al. 2021), then 0.

    Examples
    --------
    >>> sigmas_geometric(3, 0.01, 1.0).tolist()
    [1.0, 0.1, 0.01, 0.0]
    """
    if n < 1 or not 0 < sigma_min <= sigma_max:
        raise ValueError(
            f"need n >= 1 and 0 < sigma_min <= sigma_max, got {n}, {sigma_min}, {sigma_max}"
        )
    i = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    s = sigma_max * (sigma_min / sigma_max) ** i
    return torch.cat([s, s.new_zeros(1)])


def block_mean(x: torch.Tensor, factor: int) -> torch.Tensor:
    """C' x: block mean over ``factor x factor`` blocks of the last two axes."""
    return torch.nn.functional.avg_pool2d(x, factor)


def block_upsample(r: torch.Tensor, factor: int) -> torch.Tensor:
    """Replicate each coarse cell over its block: ``C'(block_upsample(r)) = r``."""
    return r.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def conserve(
    x: torch.Tensor,
    y: torch.Tensor,
    factor: int,
    mode: str,
    smooth: int = 4,
    *,
    periodic_x: bool = False,
) -> torch.Tensor:
    """Adjust ``x`` so that its block means equal ``y`` exactly: ``C' x = y`` (physical units).

    Parameters
    ----------
    x : torch.Tensor
        Fine fields ``(..., H, W)``.
    y : torch.Tensor
        Coarse fields ``(..., H/factor, W/factor)``; blocks whose ``y`` is NaN are left alone.
    factor : int
        Block size.
    mode : {"additive", "multiplicative"}
        ``"additive"``: shift each block by ``y - C'x`` (for any variable).
        ``"multiplicative"``: scale each block by ``y / C'x``, for non-negative variables such
        as precipitation: zeros and signs are kept (negative ``x`` is set to 0 first). A block
        whose mean is below 5 % of ``y`` (the model missed the block's rain) gets the
        additive correction instead, which never amplifies noise.
    smooth : int
        Smooth iterations before the exact step: the correction (shift or ratio) is
        interpolated bilinearly from the coarse grid ``smooth`` times, so that it varies
        smoothly across block edges; the final piecewise-constant step then only removes what
        is left (a few per cent), which keeps the block edges from showing in the spectrum.
        0 applies the piecewise-constant correction alone.
    periodic_x : bool
        The fields wrap around along x: the correction is interpolated across the wrap too.

    Returns
    -------
    torch.Tensor
        ``x`` with ``C'x = y`` in every block with a finite ``y`` (to rounding).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[[0.0, 2.0], [1.0, 1.0]]]])
    >>> conserve(x, torch.tensor([[[[2.0]]]]), 2, "multiplicative", smooth=0).tolist()
    [[[[0.0, 4.0], [2.0, 2.0]]]]
    >>> conserve(x, torch.tensor([[[[2.0]]]]), 2, "additive", smooth=0).tolist()
    [[[[1.0, 3.0], [2.0, 2.0]]]]
    """
    if mode not in ("additive", "multiplicative"):
        raise ValueError(f"mode={mode!r} is not supported; use 'additive' or 'multiplicative'")
    lead = x.shape[:-2]
    h, w = x.shape[-2:]
    xf = x.reshape(-1, 1, h, w)
    yf = y.to(x.dtype).reshape(-1, 1, h // factor, w // factor)
    known = torch.isfinite(yf)
    if mode == "multiplicative":
        xf = xf.clamp_min(0)
        yf = yf.clamp_min(0)

    def correction(xf):
        m = block_mean(xf, factor)
        target = torch.where(known, yf, m)
        if mode == "additive":
            return target - m, None
        scalable = m > 0.05 * target
        ratio = torch.where(scalable, target / torch.where(scalable, m, 1), 1)
        return ratio, torch.where(scalable, 0, target - m)

    finite = torch.isfinite(xf) & block_upsample(known, factor)
    for _ in range(int(smooth)):
        c, shift = correction(xf)
        if shift is not None:  # blocks that need the additive fallback are left to the exact step
            c = torch.where(shift != 0, 1, c)
        c = _upsample_bilinear(c, factor, periodic_x)
        c = torch.where(finite, c, 0 if mode == "additive" else 1)
        xf = xf + c if mode == "additive" else xf * c
    c, shift = correction(xf)
    if mode == "additive":
        out = xf + block_upsample(c, factor)
    else:
        out = xf * block_upsample(c, factor) + block_upsample(shift, factor)
    return out.reshape(*lead, h, w)


def _upsample_bilinear(c: torch.Tensor, factor: int, periodic_x: bool) -> torch.Tensor:
    """Bilinear upsampling of cell values by ``factor`` (cell-centred); circular along x when
    ``periodic_x`` (one coarse cell of wrap on each side, cropped after)."""
    if not periodic_x:
        return torch.nn.functional.interpolate(
            c, scale_factor=factor, mode="bilinear", align_corners=False
        )
    padded = torch.cat([c[..., -1:], c, c[..., :1]], dim=-1)
    up = torch.nn.functional.interpolate(
        padded, scale_factor=factor, mode="bilinear", align_corners=False
    )
    return up[..., factor:-factor]


def _call(denoiser, x: torch.Tensor, sigma: float) -> torch.Tensor:
    return denoiser(x, torch.full((x.shape[0],), sigma, dtype=torch.float32, device=x.device))


# ----------------------------------------------------------------------------- samplers


@torch.no_grad()
def sample_consistency(
    denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    generator: Generator = None,
    callback: Callback = None,
) -> torch.Tensor:
    """Multistep consistency sampling [Song et al. 2023, Alg. 1].

    ``x <- f(x, tau_n)``, then ``x <- x + sqrt(tau_{n+1}^2 - eps^2) z`` for the next level.

    Parameters
    ----------
    denoiser : callable
        Consistency function ``f(x, sigma)`` (``parameterisation == "consistency"``) with
        attribute ``sigma_min`` (eps).
    x : torch.Tensor
        State at ``sigmas[0]``.
    sigmas : sequence of float
        ``tau_1 > tau_2 > ...``; one level (``[sigma*]``) is one-step sampling. Levels at or
        below eps (e.g. a trailing 0) are ignored.
    generator, callback
        See the module docstring.

    Returns
    -------
    torch.Tensor
        The sample, one network evaluation per level.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.nn.analytic import GaussianDenoiser
    >>> f = GaussianDenoiser(torch.zeros(1, 1, 1), torch.eye(1), parameterisation="consistency")
    >>> x = sample_consistency(f, torch.full((1, 1, 1, 1), 80.0), [80.0])
    >>> round(float(x), 3)
    1.0
    """
    eps = float(getattr(denoiser, "sigma_min", 0.0))
    levels = [s for s in _as_list(sigmas) if s > eps]
    if not levels:
        raise ValueError(f"sigmas must contain a level above sigma_min = {eps}, got {list(sigmas)}")
    x = _call(denoiser, x, levels[0])
    if callback is not None:
        callback(0, levels[0], x, x)
    for i, tau in enumerate(levels[1:], start=1):
        x = x + math.sqrt(tau**2 - eps**2) * randn(x, generator)
        x = _call(denoiser, x, tau)
        if callback is not None:
            callback(i, tau, x, x)
    return x


@torch.no_grad()
def sample_heun(
    denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    generator: Generator = None,
    callback: Callback = None,
) -> torch.Tensor:
    """EDM Heun ODE solver [Karras et al. 2022, Alg. 1].

    ``d_i = (x_i - D(x_i; sigma_i))/sigma_i``, an Euler step, and the trapezoidal correction
    unless ``sigma_{i+1} = 0``.

    Deterministic (``generator`` is accepted for the shared signature and unused);
    ``2 N - 1`` evaluations for ``N`` positive levels followed by 0.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.nn.analytic import GaussianDenoiser
    >>> d = GaussianDenoiser(torch.zeros(1, 1, 1), torch.eye(1))
    >>> x = sample_heun(d, torch.full((1, 1, 1, 1), 80.0), sigmas_karras(32, 0.002, 80.0))
    >>> round(float(x), 3)
    1.0
    """
    s = _as_list(sigmas)
    for i, (sig, nxt) in enumerate(pairwise(s)):
        den = _call(denoiser, x, sig)
        d = (x - den) / sig
        x_next = x + (nxt - sig) * d
        if nxt > 0:
            d2 = (x_next - _call(denoiser, x_next, nxt)) / nxt
            x_next = x + (nxt - sig) * 0.5 * (d + d2)
        x = x_next
        if callback is not None:
            callback(i, sig, x, den)
    return x


def _em_step(x, den, sig, nxt, generator):
    if nxt == 0:
        return den
    var = sig**2 - nxt**2
    return x + (var / sig**2) * (den - x) + math.sqrt(var) * randn(x, generator)


@torch.no_grad()
def sample_euler_maruyama(
    denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    generator: Generator = None,
    callback: Callback = None,
) -> torch.Tensor:
    """Euler–Maruyama on the reverse VE SDE [Song et al. 2021].

    ``x <- x + (sigma_i^2 - sigma_{i+1}^2) s(x) + sqrt(sigma_i^2 - sigma_{i+1}^2) z`` with the
    score ``s(x) = (D(x; sigma_i) - x)/sigma_i^2``.

    The step to ``sigma = 0`` is the denoised mean ``D(x; sigma_N)`` (no noise). With
    :func:`sigmas_geometric` from 0.01 to 500 and 500 steps this is the SDE baseline of
    Hess et al. (2024). One evaluation per level.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.nn.analytic import GaussianDenoiser
    >>> d = GaussianDenoiser(torch.zeros(1, 1, 1), torch.eye(1))
    >>> g = torch.Generator().manual_seed(0)
    >>> sigmas = sigmas_geometric(50, 0.01, 1.0)
    >>> sample_euler_maruyama(d, torch.zeros(4, 1, 1, 1), sigmas, generator=g).shape
    torch.Size([4, 1, 1, 1])
    """
    s = _as_list(sigmas)
    for i, (sig, nxt) in enumerate(pairwise(s)):
        den = _call(denoiser, x, sig)
        x = _em_step(x, den, sig, nxt, generator)
        if callback is not None:
            callback(i, sig, x, den)
    return x


def sample_conditional(
    denoiser,
    x: torch.Tensor,
    sigmas,
    *,
    y: torch.Tensor,
    factor: int,
    gamma: float = 0.1,
    generator: Generator = None,
    callback: Callback = None,
) -> torch.Tensor:
    """Reverse SDE conditioned on ``C' x = y'`` [Wan et al. 2023].

    ``x_hat = D(x_t) - (gamma/rho) grad_{x_t} ||C' D(x_t) - y'||^2``, then the projection
    ``x_hat <- x_hat + U(y' - C' x_hat)``, then an Euler–Maruyama step with ``x_hat``.

    Parameters
    ----------
    denoiser, x, sigmas, generator, callback
        As :func:`sample_euler_maruyama`; ``denoiser`` must be an EDM denoiser.
    y : torch.Tensor
        Coarse constraint ``y'`` of shape ``(B, C, H/factor, W/factor)``; NaN cells are
        unconstrained.
    factor : int
        Block size of the block-mean operator ``C'``; must divide H and W.
    gamma : float
        Guidance strength (Wan et al.: 0.1–0.5); ``rho = 1/factor^2`` is the fraction of
        constrained entries.

    Returns
    -------
    torch.Tensor
        Samples with ``C' x = y'`` up to rounding (the last step returns the projected
        ``x_hat``).

    Notes
    -----
    ``U`` replicates each coarse cell over its block, so ``C'(x + U r) = C'x + r``: the
    projection is exact. When the prior's block means and within-block anomalies are
    independent, the projected denoiser is the exact conditional denoiser and the samples
    follow the posterior ``p(x | C'x = y')``; otherwise the guidance term corrects the
    trajectory approximately, as in Wan et al.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.nn.analytic import GaussianDenoiser
    >>> d = GaussianDenoiser(torch.zeros(1, 4, 4), torch.eye(16))
    >>> y = torch.ones(1, 1, 2, 2)
    >>> x = sample_conditional(d, 3 * torch.randn(1, 1, 4, 4), sigmas_geometric(20, 0.01, 3.0),
    ...                        y=y, factor=2, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(block_mean(x, 2), y, atol=1e-6))
    True
    """
    ny, nx = x.shape[-2:]
    if not isinstance(factor, int) or factor < 1 or ny % factor or nx % factor:
        raise ValueError(
            f"factor must be a positive integer dividing the field size {ny} x {nx}, got {factor!r}"
        )
    expect = (x.shape[0], x.shape[1], ny // factor, nx // factor)
    if tuple(y.shape) != expect:
        raise ValueError(f"y must have shape {expect} for factor {factor}, got {tuple(y.shape)}")
    y = y.to(device=x.device, dtype=x.dtype)
    known = torch.isfinite(y)
    y0 = torch.where(known, y, torch.zeros_like(y))
    rho = 1.0 / factor**2
    s = _as_list(sigmas)
    x = x.detach()
    for i, (sig, nxt) in enumerate(pairwise(s)):
        if gamma:
            with torch.enable_grad():
                xt = x.detach().requires_grad_(True)
                den = _call(denoiser, xt, sig)
                resid = torch.where(known, block_mean(den, factor) - y0, torch.zeros_like(y0))
                (grad,) = torch.autograd.grad((resid**2).sum(), xt)
            den = den.detach() - (gamma / rho) * grad
        else:
            with torch.no_grad():
                den = _call(denoiser, x, sig)
        with torch.no_grad():
            r = torch.where(known, y0 - block_mean(den, factor), torch.zeros_like(y0))
            den = den + block_upsample(r, factor)
            x = _em_step(x, den, sig, nxt, generator)
        if callback is not None:
            callback(i, sig, x, den)
    return x
