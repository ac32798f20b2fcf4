"""Generative downscaling of DataArrays: :func:`sample` and :func:`ensemble`.

xarray/dask wrappers around :mod:`xdownscale.nn` (imported lazily: ``import xdownscale``
does not import torch). The coarse field is upsampled and low-passed lazily with
:mod:`xdownscale.grid`; each dask chunk of the non-spatial dims is then sent to the device in
batches of ``batch_size`` by one task that finds the model in a process-level cache through a
token (the model itself is never put into the graph). METHODS.md sections 1 and 6.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from .grid import (
    add_history,
    as_factor,
    check_floating,
    grid_info,
    lowpass,
    require_whole,
    upsample,
)
from .spectra import ScaleChoice, choose_scale

if TYPE_CHECKING:
    import torch

    from .nn.model import DownscalingModel

__all__ = ["ensemble", "sample"]

Method = Literal["consistency", "heun", "sde", "conditional"]
Statistic = Literal["mean", "std", "min", "max", "exceedance", "quantile"]
Conserve = Literal["auto", "none", "additive", "multiplicative"]
_METHODS = {"consistency": ("consistency",), "edm": ("heun", "sde", "conditional")}
_DEFAULT_STEPS = {"consistency": 1, "heun": 18, "sde": 500, "conditional": 128}
_STATS = ("mean", "std", "min", "max", "exceedance", "quantile")


# ----------------------------------------------------------------------------- model


def _resolve_model(model: Any) -> DownscalingModel:
    """Turn the ``model`` argument into a :class:`~xdownscale.nn.DownscalingModel`.

    None: the embedded default model (no network); a registered name or a weight-file path:
    loaded by :func:`xdownscale.models.load` (hash-checked, never unpickled); an in-memory
    model is passed through.
    """
    import torch

    if isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model is a bare {type(model).__name__}; sampling also needs its card (units, "
            "transform, factors): wrap it as xdownscale.nn.DownscalingModel(denoiser, card)"
        )
    from .models import load

    if model is None or isinstance(model, (str, os.PathLike)):
        return load(model)
    from .nn.model import DownscalingModel

    if isinstance(model, DownscalingModel):
        return model
    raise TypeError(
        "model must be None (the default), a registered name (xdownscale.models.list_models()), "
        f"a weight-file path or a DownscalingModel, got {type(model).__name__}"
    )


# ----------------------------------------------------------------------------- the device task


@dataclass(frozen=True)
class _Plan:
    """Everything a task needs besides its data: small, hashable, picklable (no model)."""

    token: str
    method: str
    sigmas: tuple[float, ...]
    sigma_star: float
    seed: int
    batch_size: int
    device: str
    precision: str
    gamma: float
    factor: int
    conserve: str = "none"


def _sample_seed(seed: int, member: int, index: Sequence[int]) -> int:
    """Seed of one sample's generator from (seed, member, global position): a SeedSequence hash."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(int(member), *(int(i) for i in index)))
    return int(ss.generate_state(1, np.uint64)[0])


def _pairs(members: Sequence[int], n_samples: int) -> list[tuple[int, int]]:
    return [(int(m), s) for m in members for s in range(n_samples)]


def _run(plan: _Plan, model, net, x, y, gens) -> torch.Tensor:
    """Transform, fill NaN, add noise at sigma*, denoise, invert; one device batch."""
    import torch

    from .nn import samplers

    card = model.card
    z = card.forward_transform(x)
    valid = torch.isfinite(z)
    if not bool(valid.all()):
        count = valid.sum(dim=(-2, -1), keepdim=True).clamp_min(1)
        fill = torch.where(valid, z, 0).sum(dim=(-2, -1), keepdim=True) / count
        z = torch.where(valid, z, fill)
    z = z + plan.sigma_star * samplers.randn(z, gens)
    kw: dict[str, Any] = {"generator": gens}
    autocast = torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=plan.precision == "bfloat16")
    with autocast:
        if plan.method == "consistency":
            out = samplers.sample_consistency(net, z, plan.sigmas, **kw)
        elif plan.method == "heun":
            out = samplers.sample_heun(net, z, plan.sigmas, **kw)
        elif plan.method == "sde":
            out = samplers.sample_euler_maruyama(net, z, plan.sigmas, **kw)
        else:
            yc = card.forward_transform(y)
            out = samplers.sample_conditional(
                net, z, plan.sigmas, y=yc, factor=plan.factor, gamma=plan.gamma, **kw
            )
    out = card.inverse_transform(out.float())
    if plan.conserve != "none":
        out = samplers.conserve(out, y.to(out.device), plan.factor, plan.conserve)
    return torch.where(valid, out, torch.nan)


def _batches(plan: _Plan, x: np.ndarray, y: np.ndarray | None, loc: Sequence[int], members):
    """Yield ``(pairs, result)`` for device batches over (member, sample) pairs, member-major."""
    import torch

    from .nn.device import resolve_device
    from .nn.model import DEVICE_LOCKS, get_model

    device = resolve_device(plan.device)
    model, net = get_model(plan.token, device)
    lead = x.shape[:-2]
    n_samples = math.prod(lead)
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(n_samples, 1, *x.shape[-2:])
    yflat = None if y is None else np.asarray(y, dtype=np.float32).reshape(n_samples, 1, *y.shape[-2:])
    index = np.stack(np.unravel_index(np.arange(n_samples), lead), axis=1) + np.asarray(loc, int)
    pairs = _pairs(members, n_samples)
    with DEVICE_LOCKS[str(device)]:
        for start in range(0, len(pairs), plan.batch_size):
            chunk = pairs[start : start + plan.batch_size]
            rows = [s for _, s in chunk]
            # a batch of one runs as two (a duplicate): some CPU convolutions take another code
            # path for a single sample, which would make results depend on the batch size
            pad = rows + rows[:1] if len(rows) == 1 else rows
            gens = [
                torch.Generator().manual_seed(_sample_seed(plan.seed, m, index[s]))
                for m, s in (chunk + chunk[:1] if len(rows) == 1 else chunk)
            ]
            xb = torch.from_numpy(flat[pad]).to(device)
            yb = None if yflat is None else torch.from_numpy(yflat[pad]).to(device)
            out = _run(plan, model, net, xb, yb, gens)[: len(rows), 0]
            yield chunk, out


def _sample_block(
    x: np.ndarray, y: np.ndarray | None, loc: Sequence[int], members: Sequence[int], plan: _Plan
) -> np.ndarray:
    """Samples ``(len(members), *lead, ny, nx)`` for one block ``x`` ``(*lead, ny, nx)``."""
    n_samples = math.prod(x.shape[:-2])
    out = np.empty((len(members) * n_samples, *x.shape[-2:]), dtype=np.float32)
    pos = 0
    for chunk, res in _batches(plan, x, y, loc, members):
        out[pos : pos + len(chunk)] = res.cpu().numpy()
        pos += len(chunk)
    return out.reshape(len(members), *x.shape)


def _sample_task(x, *rest, block_info=None, plan: _Plan, nlead: int) -> np.ndarray:
    """Dask task of :func:`sample`: one block, member 0."""
    return _sample_block(x, rest[0] if rest else None, _loc(block_info, 0, nlead), [0], plan)[0]


def _ensemble_task(m, x, *rest, block_info=None, plan: _Plan, nlead: int) -> np.ndarray:
    """Dask task of :func:`ensemble`: one block of members times one input block."""
    loc = tuple(int(a) for a, _ in block_info[1]["array-location"][1 : 1 + nlead])
    return _sample_block(x[0], rest[0][0] if rest else None, loc, m.ravel().tolist(), plan)


def _reduce_task(x, *rest, block_info=None, plan: _Plan, nlead: int, n: int, stats) -> np.ndarray:
    """Dask task of ``ensemble(reduce=...)``: statistics over n members of one input block."""
    return _reduce_block(x, rest[0] if rest else None, _loc(block_info, 0, nlead), n, plan, stats)


def _stat_names(reduce: Sequence[str], thresholds, quantiles) -> list[tuple[str, float | None]]:
    names: list[tuple[str, float | None]] = []
    for r in reduce:
        if r == "exceedance":
            names += [("exceedance", float(t)) for t in thresholds]
        elif r == "quantile":
            names += [("quantile", float(q)) for q in quantiles]
        else:
            names.append((r, None))
    return names


def _reduce_block(
    x: np.ndarray,
    y: np.ndarray | None,
    loc: Sequence[int],
    n: int,
    plan: _Plan,
    stats: tuple[tuple[str, float | None], ...],
) -> np.ndarray:
    """Streaming statistics over ``n`` members: ``(len(stats), *lead, ny, nx)``.

    Mean and std by Welford's update in member order (float64 on the device); min, max and
    exceedance counts by running updates; quantiles exactly, from all members of this block.
    """
    import torch

    lead, shape = x.shape[:-2], x.shape[-2:]
    n_samples = math.prod(lead)
    kinds = {k for k, _ in stats}
    acc: dict[str, Any] = {}
    store = None
    count = 0
    for chunk, res in _batches(plan, x, y, loc, range(n)):
        if not acc:
            dev = res.device
            f64 = torch.zeros((n_samples, *shape), dtype=torch.float64, device=dev)
            acc = {"mean": f64.clone(), "m2": f64.clone(), "min": f64 + torch.inf, "max": f64 - torch.inf}
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
    qs = [q for k, q in stats if k == "quantile"]
    qvals = None
    if qs:
        qvals = _quantiles(store, qs)
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
            v = qvals[qs.index(t)]
        out.append(torch.where(valid, v.double(), torch.nan).float().cpu().numpy())
    return np.stack(out).reshape(len(stats), *x.shape)


def _quantiles(store: torch.Tensor, qs: Sequence[float]) -> list[torch.Tensor]:
    """Exact quantiles along the member axis, numpy's default ("linear") interpolation."""
    import torch

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


# ----------------------------------------------------------------------------- validation


def _check_units(da: xr.DataArray, model: DownscalingModel) -> str | None:
    want = model.card.units
    have = da.attrs.get("units")
    if not want or not have or str(have).strip() == str(want).strip():
        return want or have
    msg = None
    try:
        from cf_xarray.units import units as ureg

        ratio = float(ureg.Quantity(1.0, str(have)).to(str(want)).magnitude)
        if abs(ratio - 1.0) < 1e-9:
            return want
        msg = (
            f"da has units {have!r} but model {model.name!r} expects {want!r}; convert first: "
            f"da = da * {ratio:.6g} followed by da.attrs['units'] = {want!r}"
        )
    except Exception:  # unparseable or incompatible units
        msg = (
            f"da has units {have!r} but model {model.name!r} expects {want!r} (not convertible); "
            f"pass a field of variable {model.card.variable or 'the model was trained on'!s} in "
            f"{want!r}, or fix da.attrs['units'] if it is wrong"
        )
    raise ValueError(msg)


def _spacing_in_model_units(info, card) -> float | None:
    """The input grid spacing in the model's pixel units; None when they cannot be compared.

    Unitless coordinates are taken to be in the model's units; angles (degrees) and lengths
    (m, km) cannot be compared, and then the factor comes from the model's card or the user.
    """
    if not (card.pixel_size and info.spacing):
        return None
    if not (info.units and card.pixel_units) or info.units == card.pixel_units:
        return info.spacing
    from .units import unit_factors

    try:
        scale, _ = unit_factors(str(info.units), str(card.pixel_units), "the grid coordinates")
    except ValueError:
        return None
    return info.spacing * scale


def _resolve_factor(info, model: DownscalingModel, factor) -> int:
    card = model.card
    spacing = _spacing_in_model_units(info, card)
    if factor is None:
        if spacing is not None:
            ratio = spacing / card.pixel_size
            factor = round(ratio)
            if factor < 1 or abs(ratio - factor) > 0.01 * ratio:
                raise ValueError(
                    f"the input grid spacing {info.spacing:g} {info.units or ''} is not an integer "
                    f"multiple of model {model.name!r}'s pixel size {card.pixel_size:g} "
                    f"{card.pixel_units or ''} (ratio {ratio:.4g}); regrid the input or pass factor="
                )
        elif len(card.factors) == 1:
            factor = card.factors[0]
        else:
            raise ValueError(
                f"cannot tell how much finer model {model.name!r}'s grid is: pass factor=<int> "
                "(1 when the input is already on the model's grid)"
                + (f"; the model supports factors {card.factors}" if card.factors else "")
            )
    fy, fx = as_factor(factor)
    if fy != fx:
        raise ValueError(f"factor must be the same along y and x for sampling, got {factor!r}")
    if fy != 1 and card.factors and fy not in card.factors:
        raise ValueError(
            f"factor={fy} does not match model {model.name!r}, which supports factors "
            f"{card.factors}; pass one of those (or factor=1 for input already on the model grid)"
        )
    if spacing is not None:
        fine = spacing / fy
        if abs(fine - card.pixel_size) > 0.01 * card.pixel_size:
            raise ValueError(
                f"with factor={fy} the input grid spacing {info.spacing:g} {info.units or ''} gives "
                f"{fine:g}, but model {model.name!r} works at {card.pixel_size:g} "
                f"{card.pixel_units or ''}; pass factor={max(1, round(spacing / card.pixel_size))}"
            )
    return fy


def _sigma_star(scale, fine: xr.DataArray, model: DownscalingModel, y, x, factor: int = 1) -> float:
    card = model.card
    if isinstance(scale, str):
        if scale != "auto":
            raise ValueError(
                f"scale={scale!r} is not understood; use 'auto', a noise level sigma* (float) or "
                "a ScaleChoice from xdownscale.choose_scale"
            )
        if card.target_psd is None:
            raise ValueError(
                f"scale='auto' needs the target spectrum stored with the model, and model "
                f"{model.name!r} has none (card.target_psd); pass scale=<sigma*> as a number, or "
                "scale=xdownscale.choose_scale(source, target, transform=...)"
            )
        target = xr.DataArray(
            np.asarray(card.target_psd, dtype=float),
            dims="wavenumber",
            coords={"wavenumber": np.asarray(card.target_psd_wavenumber, dtype=float)},
        )
        z = card.forward_transform(fine)
        # compare shapes, not amplitudes: the input may be less (or more) variable than the
        # training data as a whole, which is no reason to regenerate its large scales
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a smoothed input never crosses
            # k* no finer than the coarse grid's Nyquist: the input resolves nothing smaller
            s = choose_scale(
                z, target, nan_policy="fill", normalize=0.25 / factor, spatial_dims=(y, x),
                k_max=0.5 / factor if factor > 1 else None,
            ).sigma_star
        return float(np.clip(s, model.sigma_min * 1.0001, model.sigma_max))
    if isinstance(scale, ScaleChoice):
        s = scale.sigma_star
    elif isinstance(scale, (int, float, np.integer, np.floating)) and not isinstance(scale, bool):
        s = float(scale)
    else:
        raise TypeError(
            f"scale must be 'auto', a number or a ScaleChoice, got {type(scale).__name__}"
        )
    if not (model.sigma_min < s <= model.sigma_max):
        raise ValueError(
            f"sigma* = {s:g} is outside model {model.name!r}'s noise range "
            f"({model.sigma_min:g}, {model.sigma_max:g}]; pass a scale inside it"
        )
    return float(s)


def _check_int(value, name: str, low: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass
class _Prepared:
    fine: xr.DataArray  # physical values on the model grid, spatial dims last
    coarse: xr.DataArray | None  # the coarse input (conditional sampling), spatial dims last
    plan: _Plan
    model: Any
    units: str | None
    order: tuple[Hashable, ...]
    y: Hashable
    x: Hashable
    factor: int
    steps: int


def _resolve_conserve(conserve, model: DownscalingModel, f: int) -> str:
    allowed = ("auto", "none", "additive", "multiplicative")
    if conserve is None:
        conserve = "none"
    if conserve not in allowed:
        raise ValueError(
            f"conserve={conserve!r} is not supported; use one of {allowed} ('auto': "
            "'multiplicative' for a model with a log transform, else 'additive')"
        )
    if conserve == "auto":
        if f == 1:
            return "none"
        return "multiplicative" if model.card.transform == "log" else "additive"
    if conserve != "none" and f == 1:
        raise ValueError(
            f"conserve={conserve!r} keeps the block means of the coarse input, so it needs the "
            "coarse field and factor > 1; pass the coarse field with factor=<int>, or "
            "conserve='none'"
        )
    return conserve


def _prepare(
    da, model, factor, scale, method, steps, seed, batch_size, device, precision, gamma,
    interpolation, spatial_dims, conserve="auto",
) -> _Prepared:
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"da must be an xarray.DataArray, got {type(da).__name__}")
    model = _resolve_model(model)
    from .nn.device import resolve_device
    from .nn.model import register_model

    info = grid_info(da, spatial_dims)
    y, x = info.y, info.x
    check_floating(da, "da")
    require_whole(da, [y, x], "da", "sampling needs whole fields")
    units = _check_units(da, model)
    f = _resolve_factor(info, model, factor)
    allowed = _METHODS[model.parameterisation]
    method = method or allowed[0]
    if method not in _DEFAULT_STEPS:
        raise ValueError(f"method={method!r} is not supported; use one of {allowed}")
    if method not in allowed:
        raise ValueError(
            f"method={method!r} needs a{'n EDM denoiser' if method != 'consistency' else ' consistency model'}, "
            f"but model {model.name!r} is parameterised as {model.parameterisation!r}; use "
            f"method={allowed[0]!r}" + (f" (or one of {allowed})" if len(allowed) > 1 else "")
        )
    if method == "conditional" and f == 1:
        raise ValueError(
            "method='conditional' enforces C'x = y' with y' the coarse input, so it needs the "
            "coarse field and factor > 1; pass the coarse field with factor=<int>"
        )
    cons = _resolve_conserve(conserve, model, f)
    steps = _DEFAULT_STEPS[method] if steps is None else _check_int(steps, "steps", 1)
    seed = _check_int(seed, "seed", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision={precision!r} is not supported; use 'float32' or 'bfloat16'")
    dev = resolve_device(device)  # fails here, before anything is computed
    order = tuple(da.dims)
    lead = [d for d in order if d not in (y, x)]
    src = da.transpose(*lead, y, x)
    if f > 1:
        fine = upsample(src, f, method=interpolation, spatial_dims=(y, x))
        fine = lowpass(fine, 0.5 / f, spatial_dims=(y, x))
    else:
        fine = src
    s_star = _sigma_star(scale, fine, model, y, x, f)
    sig_min = model.sigma_min
    from .nn import samplers

    if method == "consistency":
        sig = [s_star] if steps == 1 else samplers.sigmas_karras(steps + 1, sig_min, s_star)[:steps].tolist()
    elif method == "heun":
        sig = samplers.sigmas_karras(steps, sig_min, s_star).tolist()
    else:
        sig = samplers.sigmas_geometric(steps, sig_min, s_star).tolist()
    token = register_model(model)
    plan = _Plan(
        token, method, tuple(float(v) for v in sig), s_star, seed, batch_size, str(dev),
        precision, float(gamma), f, cons,
    )
    coarse = src if method == "conditional" or cons != "none" else None
    return _Prepared(fine, coarse, plan, model, units, order, y, x, f, steps)


def _history(p: _Prepared, extra: str = "") -> str:
    card = p.model.card
    sha = f" (sha256 {card.sha256})" if card.sha256 else ""
    return (
        f"{extra}downscaled by {p.factor}x with model {card.name!r}{sha}, method "
        f"{p.plan.method} ({p.steps} step{'s' if p.steps > 1 else ''}), sigma* = "
        f"{p.plan.sigma_star:.4g}, seed {p.plan.seed}"
        + ("" if p.plan.conserve == "none" else f", {p.plan.conserve} conservation of block means")
    )


def _loc(block_info, which: int, ndim_lead: int) -> tuple[int, ...]:
    return tuple(int(a) for a, _ in block_info[which]["array-location"][:ndim_lead])


def _attrs(da: xr.DataArray, p: _Prepared, text: str) -> dict:
    attrs = add_history(da.attrs, text)
    if p.units:
        attrs["units"] = p.units
    return attrs


# ----------------------------------------------------------------------------- public API


def sample(
    da: xr.DataArray,
    model: Any = None,
    *,
    factor: int | None = None,
    scale: float | ScaleChoice | Literal["auto"] = "auto",
    method: Method | None = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    precision: Literal["float32", "bfloat16"] = "float32",
    gamma: float = 0.1,
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
    conserve: Conserve = "auto",
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.DataArray:
    """Downscale a coarse field with a generative model: one realistic fine field per input.

    Parameters
    ----------
    da : xarray.DataArray
        Coarse field(s) (or fields already on the model grid with ``factor=1``); non-spatial
        dims may be dask-chunked, the spatial dims must be one chunk each.
    model : DownscalingModel
        An in-memory :class:`xdownscale.nn.DownscalingModel`. Registered names, paths and the
        default model (``None``) arrive with the model zoo; until then they raise.
    factor : int, optional
        How much finer the model grid is. Default: from the model's pixel size and the input
        grid spacing, or the model's only supported factor.
    scale : "auto", float or ScaleChoice
        Noise level sigma* (in the model's transformed space) at which the sample starts:
        scales larger than the one it masks are kept. ``"auto"`` runs
        :func:`xdownscale.choose_scale` against the spectrum stored with the model (this reads
        the input once to compute its spectrum), comparing shapes (``normalize=0.25 /
        factor``); a k* beyond the coarse grid's Nyquist (``0.5 / factor`` cycles per fine
        cell), which the input cannot resolve, is brought back to it. A
        :class:`~xdownscale.ScaleChoice` or a number are used as given.
    method : {"consistency", "heun", "sde", "conditional"}, optional
        ``"consistency"`` (consistency models; one step by default), ``"heun"`` (EDM ODE),
        ``"sde"`` (Euler–Maruyama, VE), ``"conditional"`` (reverse SDE with guidance and
        exact projection onto ``C'x = y'``). Default: the first one the model supports.
    steps : int, optional
        Sampler steps; defaults 1, 18, 500 and 128 respectively.
    seed : int
        Each sample's noise comes from ``(seed, member 0, its position along the non-spatial
        dims)``: results do not depend on chunking, ``batch_size`` or threads.
    batch_size : int
        Fields per device batch.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        Where the network runs; "auto" uses CUDA when present.
    precision : {"float32", "bfloat16"}
        ``"bfloat16"`` runs the network under autocast.
    gamma : float
        Guidance strength of ``method="conditional"``.
    interpolation : {"nearest", "bilinear", "bicubic"}
        Upsampling method (before the low-pass with cutoff ``0.5/factor``).
    conserve : {"auto", "none", "additive", "multiplicative"}
        Make every output block of ``factor x factor`` cells average exactly to its coarse
        input cell, in physical units (:func:`xdownscale.nn.samplers.conserve`):
        ``"multiplicative"`` rescales each block (non-negative variables: precipitation keeps
        its zeros and sign), ``"additive"`` shifts it. ``"auto"`` (default): multiplicative
        for a model with a log transform, additive otherwise; nothing when ``factor=1``.
    spatial_dims : (hashable, hashable), optional
        Override the discovered ``(y, x)`` dims.

    Returns
    -------
    xarray.DataArray
        The fine field(s), float32, with fine-grid coordinates, the model's ``units`` and a
        ``history`` line naming model, method, sigma* and seed; NaN where the input was NaN.
        Lazy when ``da`` is dask-backed.

    Raises
    ------
    ValueError
        Unknown model, factor or units that do not match the model, missing spatial dims,
        absent device, bad options.
    TypeError
        Wrong argument types.

    Notes
    -----
    Pipeline (Hess et al. 2024, METHODS.md section 1): upsample, low-pass with cutoff
    ``0.5/factor``, apply the model's transform, ``x = x_src + sigma* z``, denoise from sigma*
    to 0 (SDEdit, Meng et al. 2022), invert the transform, conserve the coarse block means
    (``conserve``), restore the NaN mask. With
    ``method="conditional"`` the constraint is ``C'x = T(coarse)`` in the model's transformed
    space ``T`` (exact block means in physical units when the transform is affine; Wan et al.
    2023).

    Examples
    --------
    >>> import numpy as np, xarray as xr, torch
    >>> from xdownscale.nn import DownscalingModel, GaussianDenoiser
    >>> den = GaussianDenoiser(torch.zeros(1, 8, 8), torch.eye(64), parameterisation="consistency")
    >>> model = DownscalingModel(den, {"name": "white", "factors": (4,)})
    >>> coarse = xr.DataArray(np.zeros((3, 2, 2)), dims=("time", "y", "x"))
    >>> sample(coarse, model, scale=1.0, device="cpu").shape
    (3, 8, 8)
    """
    p = _prepare(
        da, model, factor, scale, method, steps, seed, batch_size, device, precision, gamma,
        interpolation, spatial_dims, conserve,
    )
    fine = p.fine
    nlead = fine.ndim - 2
    if fine.chunks is None:
        coarse = None if p.coarse is None else np.asarray(p.coarse.values)
        data = _sample_block(np.asarray(fine.values), coarse, (0,) * nlead, [0], p.plan)[0]
    else:
        import dask.array as dsa

        args = [fine.data] + ([] if p.coarse is None else [p.coarse.data])
        data = dsa.map_blocks(
            _sample_task, *args, plan=p.plan, nlead=nlead, dtype=np.float32,
            chunks=fine.data.chunks, meta=np.array((), np.float32),
        )
    out = xr.DataArray(data, dims=fine.dims, coords=fine.coords, name=da.name)
    out.attrs = _attrs(da, p, "sample: " + _history(p))
    return out.transpose(*p.order)


def ensemble(
    da: xr.DataArray,
    n: int,
    model: Any = None,
    *,
    reduce: str | Sequence[Statistic] | None = None,
    threshold: float | Sequence[float] | None = None,
    q: float | Sequence[float] | None = None,
    member_chunk: int | None = None,
    factor: int | None = None,
    scale: float | ScaleChoice | Literal["auto"] = "auto",
    method: Method | None = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    precision: Literal["float32", "bfloat16"] = "float32",
    gamma: float = 0.1,
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
    conserve: Conserve = "auto",
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.DataArray | xr.Dataset:
    """An ensemble of ``n`` downscaled realisations, or statistics over it computed streaming.

    Parameters
    ----------
    da, model, factor, scale, method, steps, seed, batch_size, device, precision, gamma, interpolation, conserve, spatial_dims
        As :func:`sample`; member ``m`` uses the noise of ``(seed, m, position)``, so member 0
        equals :func:`sample` with the same arguments.
    n : int
        Number of members.
    reduce : str or sequence of {"mean", "std", "min", "max", "exceedance", "quantile"}, optional
        None returns all members along a new leading dim ``realization``. Otherwise a Dataset
        with one variable per statistic, computed over the members without holding them.
    threshold : float or sequence of float
        Thresholds (physical units) for ``"exceedance"``: the fraction of members above each
        (dim ``threshold``).
    q : float or sequence of float
        Probabilities in [0, 1] for ``"quantile"`` (dim ``q``).
    member_chunk : int, optional
        Members per dask chunk along ``realization`` (default: ``batch_size``); without
        ``reduce`` only.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Without ``reduce``: dims ``("realization", *da.dims)`` with a ``realization``
        coordinate (CF ``standard_name="realization"``, ``axis="E"``). With ``reduce``: a
        Dataset of float32 statistics. Lazy when ``da`` is dask-backed.

    Raises
    ------
    ValueError
        As :func:`sample`, plus unknown statistics, a missing ``threshold`` or ``q``.

    Notes
    -----
    Statistics are computed on the device, one task per input chunk, members in order:
    mean and std by Welford's update in float64 (std with ddof=0, as ``DataArray.std``),
    running min and max, exceedance counts; memory is a few fields per sample, whatever
    ``n``. Quantiles are exact (numpy's "linear" definition) and therefore hold all ``n``
    members of one input chunk on the device: ``n x chunk x 4`` bytes (1,000 members of a
    240 x 384 field: 369 MB) — chunk the input finely for large ``n``. Results are
    bit-identical for any chunking and ``batch_size`` on the CPU.

    Examples
    --------
    >>> import numpy as np, xarray as xr, torch
    >>> from xdownscale.nn import DownscalingModel, GaussianDenoiser
    >>> den = GaussianDenoiser(torch.zeros(1, 8, 8), torch.eye(64), parameterisation="consistency")
    >>> model = DownscalingModel(den, {"name": "white", "factors": (4,)})
    >>> coarse = xr.DataArray(np.zeros((3, 2, 2)), dims=("time", "y", "x"))
    >>> ensemble(coarse, 5, model, scale=1.0, device="cpu").dims
    ('realization', 'time', 'y', 'x')
    >>> stats = ensemble(coarse, 5, model, reduce=["mean", "std"], scale=1.0, device="cpu")
    >>> sorted(stats.data_vars)
    ['mean', 'std']
    """
    n = _check_int(n, "n", 1)
    p = _prepare(
        da, model, factor, scale, method, steps, seed, batch_size, device, precision, gamma,
        interpolation, spatial_dims, conserve,
    )
    fine = p.fine
    nlead = fine.ndim - 2
    coarse = None if p.coarse is None else p.coarse
    if reduce is None:
        mc = p.plan.batch_size if member_chunk is None else _check_int(member_chunk, "member_chunk", 1)
        if fine.chunks is None:
            data = _sample_block(
                np.asarray(fine.values), None if coarse is None else np.asarray(coarse.values),
                (0,) * nlead, range(n), p.plan,
            )
        else:
            import dask.array as dsa

            mem = dsa.arange(n, chunks=mc).reshape((n,) + (1,) * fine.ndim)
            args = [mem, fine.data[None]] + ([] if coarse is None else [coarse.data[None]])
            data = dsa.map_blocks(
                _ensemble_task, *args, plan=p.plan, nlead=nlead, dtype=np.float32,
                chunks=(mem.chunks[0], *fine.data.chunks),
                meta=np.array((), np.float32),
            )
        out = xr.DataArray(data, dims=("realization", *fine.dims), coords=fine.coords, name=da.name)
        out = out.assign_coords(
            realization=(
                "realization",
                np.arange(n),
                {"standard_name": "realization", "axis": "E", "long_name": "ensemble member"},
            )
        )
        out.attrs = _attrs(da, p, f"ensemble of {n}: " + _history(p))
        return out.transpose("realization", *p.order)

    reduce_list = [reduce] if isinstance(reduce, str) else list(reduce)
    bad = [r for r in reduce_list if r not in _STATS]
    if bad or not reduce_list or len(set(reduce_list)) != len(reduce_list):
        raise ValueError(
            f"reduce={reduce!r} is not understood; use None or a list of distinct statistics "
            f"among {list(_STATS)}"
        )

    def _values(v, name, needed_by, lo=None, hi=None):
        if needed_by not in reduce_list:
            return []
        if v is None:
            raise ValueError(f"reduce includes {needed_by!r}: pass {name}=<float or list of floats>")
        vals = [float(t) for t in np.atleast_1d(np.asarray(v, dtype=float))]
        if lo is not None and not all(lo <= t <= hi for t in vals):
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {v!r}")
        return vals

    thresholds = _values(threshold, "threshold", "exceedance")
    quantiles = _values(q, "q", "quantile", 0.0, 1.0)
    stats = tuple(_stat_names(reduce_list, thresholds, quantiles))
    if fine.chunks is None:
        data = _reduce_block(
            np.asarray(fine.values), None if coarse is None else np.asarray(coarse.values),
            (0,) * nlead, n, p.plan, stats,
        )
    else:
        import dask.array as dsa

        args = [fine.data] + ([] if coarse is None else [coarse.data])
        data = dsa.map_blocks(
            _reduce_task, *args, plan=p.plan, nlead=nlead, n=n, stats=stats, dtype=np.float32,
            new_axis=[0], chunks=((len(stats),), *fine.data.chunks),
            meta=np.array((), np.float32),
        )
    packed = xr.DataArray(data, dims=("stat", *fine.dims), coords=fine.coords)
    history = _history(p, f"ensemble statistics over {n} members ({', '.join(reduce_list)}): ")
    base = _attrs(da, p, history)
    out = xr.Dataset(attrs={"history": base["history"]})
    for kind in reduce_list:
        idx = [i for i, (k, _) in enumerate(stats) if k == kind]
        v = packed.isel(stat=idx)
        attrs = {k: val for k, val in base.items() if k != "history"}
        if kind == "exceedance":
            v = v.rename(stat="threshold").assign_coords(threshold=("threshold", thresholds, {"units": p.units or ""}))
            attrs = {"long_name": "fraction of members above threshold", "units": "1"}
        elif kind == "quantile":
            v = v.rename(stat="q").assign_coords(q=("q", quantiles, {"long_name": "probability"}))
        else:
            v = v.isel(stat=0, drop=True)
        attrs["cell_methods"] = f"realization: {kind} ({n} members)"
        dims = [d for d in v.dims if d not in p.order] + list(p.order)
        out[kind] = v.transpose(*dims).assign_attrs(attrs)
    return out
