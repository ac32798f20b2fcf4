"""The torch core of :func:`xdownscale.sample` and :func:`xdownscale.ensemble`.

Arrays in, arrays out.

One block of coarse-input-sized fields already on the model grid (upsampled and low-passed by
the xarray wrapper) goes through: the model's transform, NaN filled with each field's mean,
noise at sigma* from a generator per sample, the sampler (consistency, Heun, Euler–Maruyama
or conditional), the inverse transform, conservation of the coarse block means, and the NaN
mask restored (Hess et al. 2024; Meng et al. 2022; Wan et al. 2023). :func:`sample_fields`
returns the members; :func:`ensemble_statistics` streams statistics over them. ``sample`` is
member 0 of ``ensemble``.

Results do not depend on the batch size, the chunking or the number of threads or workers:
each sample's noise comes from its own generator seeded by ``(seed, member, position)``
(:func:`sample_seed`), and the statistics are updated in member order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import np_texture
from . import samplers
from .device import resolve_device
from .model import DEVICE_LOCKS, ModelRef, get_model
from .networks import tune_malloc

__all__ = [
    "STATISTICS",
    "SamplingPlan",
    "ensemble_statistics",
    "finish",
    "sample_fields",
    "sample_seed",
]

#: Statistics :func:`ensemble_statistics` computes.
STATISTICS = ("mean", "std", "min", "max", "exceedance", "quantile")


@dataclass(frozen=True)
class SamplingPlan:
    """Everything a block needs besides its data: small, hashable, picklable (no model).

    Attributes
    ----------
    model : ModelRef
        Identity of the model; each process loads it once (:func:`xdownscale.nn.get_model`).
    sampler : {"consistency", "heun", "sde", "conditional"}
    sigmas : tuple of float
        Noise levels of the sampler, from sigma* down.
    sigma_star : float
        Noise level added to the source field (model space).
    seed : int
    batch_size : int
        Fields per network call.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (resolved in the process that runs the block).
    precision : {"float32", "bfloat16"}
    gamma : float
        Guidance strength of the conditional sampler.
    factor : int
        Ratio of the coarse and fine grids (1: the input is on the model grid).
    conserve : {"none", "additive", "multiplicative"}
    periodic_x : bool
        The fields wrap around along x (a global longitude): the network and the
        conservation step pad circularly there.
    texture : (k, ln power), optional
        The reference's radially averaged spectrum (wavenumbers in cycles per fine cell, ln
        power; :func:`xdownscale.np_texture.reference_spectrum`): every sample takes its
        shape above the anchor, in physical units, before clipping and conservation
        (:mod:`xdownscale.np_texture`).
    """

    model: ModelRef
    sampler: str
    sigmas: tuple[float, ...]
    sigma_star: float
    seed: int
    batch_size: int
    device: str
    precision: str
    gamma: float
    factor: int
    conserve: str = "none"
    periodic_x: bool = False
    texture: tuple[tuple[float, ...], tuple[float, ...]] | None = None


def sample_seed(seed: int, member: int, index: Sequence[int]) -> int:
    """Seed of one sample's generator from (seed, member, global position): a SeedSequence hash.

    Examples
    --------
    >>> sample_seed(0, 1, (2, 3)) == sample_seed(0, 1, (2, 3)) != sample_seed(0, 2, (2, 3))
    True
    """
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(int(member), *(int(i) for i in index)))
    return int(ss.generate_state(1, np.uint64)[0])


def _denoise(plan: SamplingPlan, card, net, x, y, gens) -> torch.Tensor:
    """Transform, fill NaN, add noise at sigma*, denoise, invert, conserve; one device batch."""
    z = card.forward_transform(x)
    valid = torch.isfinite(z)
    if not bool(valid.all()):
        count = valid.sum(dim=(-2, -1), keepdim=True).clamp_min(1)
        fill = torch.where(valid, z, 0).sum(dim=(-2, -1), keepdim=True) / count
        z = torch.where(valid, z, fill)
    z = z + plan.sigma_star * samplers.randn(z, gens)
    kw: dict[str, Any] = {"generator": gens}
    autocast = torch.autocast(
        z.device.type, dtype=torch.bfloat16, enabled=plan.precision == "bfloat16"
    )
    with autocast:
        if plan.sampler == "consistency":
            out = samplers.sample_consistency(net, z, plan.sigmas, **kw)
        elif plan.sampler == "heun":
            out = samplers.sample_heun(net, z, plan.sigmas, **kw)
        elif plan.sampler == "sde":
            out = samplers.sample_euler_maruyama(net, z, plan.sigmas, **kw)
        else:
            yc = card.forward_transform(y)
            out = samplers.sample_conditional(
                net, z, plan.sigmas, y=yc, factor=plan.factor, gamma=plan.gamma, **kw
            )
    out = finish(card.inverse_transform(out.float()), y, plan, card.transform == "log")
    return torch.where(valid, out, torch.nan)


def _apply_gain(x: torch.Tensor, plan: SamplingPlan) -> torch.Tensor:
    """Give each field the reference's spectral shape above the anchor (a radial gain per
    field, :func:`xdownscale.np_texture.shape_gain`), filtering the mirror-padded field (no
    wrap-around at the edges; circular along a periodic x)."""
    assert plan.texture is not None
    k_ref, ln_ref = (np.asarray(v, dtype=np.float64) for v in plan.texture)
    h, w = x.shape[-2:]
    shape = np_texture.padded((h, w), plan.periodic_x)
    index, k, count = np_texture.rings(shape)
    ring = torch.from_numpy(index).to(x.device)
    flat = x.reshape(-1, h, w)
    out = torch.empty_like(flat)
    for i, field in enumerate(flat):  # one field at a time: batched FFTs round differently
        mean = field.mean()
        z = torch.cat([field - mean, (field - mean).flip(-2)], dim=-2)
        if not plan.periodic_x:
            z = torch.cat([z, z.flip(-1)], dim=-1)
        spec = torch.fft.rfft2(z)
        power = torch.bincount(
            ring.ravel(), weights=spec.abs().square().ravel().double(), minlength=len(k)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            p = power.cpu().numpy() / count
        g = np_texture.shape_gain(k, p, k_ref, ln_ref, plan.factor)
        gain = torch.from_numpy(np.exp(g).astype(np.float32)).to(x.device)[ring]
        out[i] = torch.fft.irfft2(spec * gain, s=shape)[:h, :w] + mean
    return out.reshape(x.shape)


#: Passes of gain, clipping and conservation: the second corrects what the first's clipping
#: and conservation changed.
TEXTURE_PASSES = 2


def finish(
    x: torch.Tensor, y: torch.Tensor | None, plan: SamplingPlan, nonnegative: bool
) -> torch.Tensor:
    """The steps after the network, in physical units: the reference's texture (if any),
    clipping at 0 for a non-negative variable, and conservation of the coarse block means."""
    for _ in range(TEXTURE_PASSES if plan.texture is not None else 1):
        if plan.texture is not None:
            x = _apply_gain(x, plan)
            if nonnegative:
                x = x.clamp_min(0)
        if plan.conserve != "none":
            assert y is not None
            x = samplers.conserve(
                x, y.to(x.device), plan.factor, plan.conserve, periodic_x=plan.periodic_x
            )
    return x


def _batches(plan: SamplingPlan, x: np.ndarray, y: np.ndarray | None, loc: Sequence[int], members):
    """Yield ``(pairs, result)`` for device batches over (member, sample) pairs, member-major."""
    device = resolve_device(plan.device)
    if device.type == "cpu":
        tune_malloc()  # no page faults per activation (XDOWNSCALE_TUNE_MALLOC=0: leave it)
    model, net = get_model(plan.model, device, periodic_x=plan.periodic_x)
    lead = x.shape[:-2]
    n_samples = math.prod(lead)
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(n_samples, 1, *x.shape[-2:])
    yflat = None
    if y is not None:
        yflat = np.asarray(y, dtype=np.float32).reshape(n_samples, 1, *y.shape[-2:])
    index = np.zeros((n_samples, len(lead)), dtype=int)  # a single 2-D field: no position
    if lead:
        index = np.stack(np.unravel_index(np.arange(n_samples), lead), axis=1)
    index += np.asarray(loc, int)
    pairs = [(int(m), s) for m in members for s in range(n_samples)]
    with DEVICE_LOCKS[str(device)]:
        for start in range(0, len(pairs), plan.batch_size):
            chunk = pairs[start : start + plan.batch_size]
            rows = [s for _, s in chunk]
            # a batch of one runs as two (a duplicate): some CPU convolutions take another code
            # path for a single sample, which would make results depend on the batch size. A
            # UNet splits larger batches into micro-batches itself (UNet.micro_batch_size), so
            # plan.batch_size only sets how many fields the sampler steps hold at once (and how
            # many micro-batches can run side by side on several threads)
            padded = chunk + chunk[:1] if len(rows) == 1 else chunk
            pad = [s for _, s in padded]
            gens = [
                torch.Generator().manual_seed(sample_seed(plan.seed, m, index[s]))
                for m, s in padded
            ]
            xb = torch.from_numpy(flat[pad]).to(device)
            yb = None if yflat is None else torch.from_numpy(yflat[pad]).to(device)
            out = _denoise(plan, model.card, net, xb, yb, gens)[: len(rows), 0]
            yield chunk, out


def sample_fields(
    x: np.ndarray,
    y: np.ndarray | None,
    loc: Sequence[int],
    members: Sequence[int],
    plan: SamplingPlan,
) -> np.ndarray:
    """Downscaled members of one block: ``(len(members), *lead, ny, nx)`` float32.

    Parameters
    ----------
    x : ndarray, shape ``(*lead, ny, nx)``
        Source fields on the model grid, physical units (NaN = missing).
    y : ndarray, shape ``(*lead, ny / factor, nx / factor)``, optional
        The coarse fields (conditional sampling and conservation).
    loc : sequence of int
        Position of the block's first field along each leading dim of the whole array: the
        noise of a field depends on its global position, not on the block.
    members : sequence of int
        Ensemble members to draw (``[0]`` for :func:`xdownscale.sample`).
    plan : SamplingPlan

    Examples
    --------
    >>> from xdownscale.nn import DownscalingModel, GaussianDenoiser, register_model
    >>> den = GaussianDenoiser(torch.zeros(1, 4, 4), torch.eye(16), parameterisation="consistency")
    >>> model = DownscalingModel(den, {"name": "white"})
    >>> _ = register_model(model)
    >>> plan = SamplingPlan(model.ref, "consistency", (1.0,), 1.0, 0, 8, "cpu", "float32", 0.1, 1)
    >>> sample_fields(np.zeros((3, 4, 4)), None, (0,), [0, 1], plan).shape
    (2, 3, 4, 4)
    """
    n_samples = math.prod(x.shape[:-2])
    out = np.empty((len(members) * n_samples, *x.shape[-2:]), dtype=np.float32)
    pos = 0
    for chunk, res in _batches(plan, x, y, loc, members):
        out[pos : pos + len(chunk)] = res.cpu().numpy()
        pos += len(chunk)
    return out.reshape(len(members), *x.shape)


def ensemble_statistics(
    x: np.ndarray,
    y: np.ndarray | None,
    loc: Sequence[int],
    n: int,
    plan: SamplingPlan,
    stats: Sequence[tuple[str, float | None]],
) -> np.ndarray:
    """Streaming statistics over ``n`` members of one block: ``(len(stats), *lead, ny, nx)``.

    Parameters
    ----------
    x, y, loc, plan
        As :func:`sample_fields`.
    n : int
        Number of members (0 .. n-1).
    stats : sequence of (name, parameter)
        ``("mean", None)``, ``("std", None)`` (ddof 0), ``("min", None)``, ``("max", None)``,
        ``("exceedance", threshold)`` (fraction of members above it), ``("quantile", q)``.

    Notes
    -----
    Mean and std by Welford's update in member order (float64 on the device); min, max and
    exceedance counts by running updates; quantiles exactly (numpy's "linear" definition),
    from all members of this block, which are then held on the device.

    Examples
    --------
    >>> from xdownscale.nn import DownscalingModel, GaussianDenoiser, register_model
    >>> den = GaussianDenoiser(torch.zeros(1, 4, 4), torch.eye(16), parameterisation="consistency")
    >>> model = DownscalingModel(den, {"name": "white"})
    >>> _ = register_model(model)
    >>> plan = SamplingPlan(model.ref, "consistency", (1.0,), 1.0, 0, 8, "cpu", "float32", 0.1, 1)
    >>> ensemble_statistics(np.zeros((3, 4, 4)), None, (0,), 5, plan, [("mean", None)]).shape
    (1, 3, 4, 4)
    """
    lead, shape = x.shape[:-2], x.shape[-2:]
    n_samples = math.prod(lead)
    kinds = {k for k, _ in stats}
    acc: dict[str, Any] = {}
    store = None
    for chunk, res in _batches(plan, x, y, loc, range(n)):
        if not acc:
            dev = res.device
            f64 = torch.zeros((n_samples, *shape), dtype=torch.float64, device=dev)
            acc = {
                "mean": f64.clone(),
                "m2": f64.clone(),
                "min": f64 + torch.inf,
                "max": f64 - torch.inf,
            }
            acc["exc"] = {t: f64.clone() for k, t in stats if k == "exceedance"}
            if "quantile" in kinds:
                store = torch.empty((n, n_samples, *shape), dtype=torch.float32, device=dev)
        members = np.array([m for m, _ in chunk])
        rows = np.array([s for _, s in chunk])
        for m in np.unique(members):  # ascending: the update order never depends on batching
            sel = np.flatnonzero(members == m)
            ss = torch.as_tensor(rows[sel], device=res.device)
            v = res[torch.as_tensor(sel, device=res.device)].double()
            count = int(m) + 1  # every sample sees member m exactly once, in order
            delta = v - acc["mean"][ss]
            acc["mean"][ss] += delta / count
            acc["m2"][ss] += delta * (v - acc["mean"][ss])
            acc["min"][ss] = torch.minimum(acc["min"][ss], v)
            acc["max"][ss] = torch.maximum(acc["max"][ss], v)
            for t, c in acc["exc"].items():
                c[ss] += (v > t).double()
            if store is not None:
                store[int(m), ss] = v.float()
    valid = torch.isfinite(acc["mean"])
    out = []
    qs = [float(q) for k, q in stats if k == "quantile" and q is not None]
    qvals = _quantiles(store, qs) if store is not None and qs else []
    for k, t in stats:
        if k == "mean":
            v = acc["mean"]
        elif k == "std":
            v = (acc["m2"] / n).clamp_min(0).sqrt()
        elif k == "min":
            v = acc["min"]
        elif k == "max":
            v = acc["max"]
        elif k == "exceedance":
            v = acc["exc"][t] / n
        else:
            v = qvals[qs.index(float(t))]  # type: ignore[arg-type]
        out.append(torch.where(valid, v.double(), torch.nan).float().cpu().numpy())
    return np.stack(out).reshape(len(stats), *x.shape)


def _quantiles(store: torch.Tensor, qs: Sequence[float]) -> list[torch.Tensor]:
    """Exact quantiles along the member axis, numpy's default ("linear") interpolation."""
    srt = torch.sort(store, dim=0).values
    n = srt.shape[0]
    out = []
    for q in qs:
        h = (n - 1) * q
        lo = math.floor(h)
        hi = min(lo + 1, n - 1)
        w = h - lo
        out.append(srt[lo].double() + w * (srt[hi].double() - srt[lo].double()))
    return out
