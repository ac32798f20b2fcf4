"""Generative downscaling of DataArrays: :func:`sample` and :func:`ensemble`.

The xarray/dask layer of :mod:`xdownscale.nn.pipeline` (the torch core, imported only when a
block is computed: ``import xdownscale`` does not import torch). This module validates the
inputs, upsamples and low-passes the coarse field lazily with :mod:`xdownscale.grid`, picks
sigma*, maps the core over the dask blocks of the non-spatial dims and sets coordinates and
attributes. A block carries the model's identity (:class:`xdownscale.nn.ModelRef`), never the
model: each process loads it once.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from . import np_spectra
from . import progress as _progress
from .attrs import add_history
from .checks import (
    as_factor,
    check_choice,
    check_dataarray,
    check_device,
    check_finite,
    check_int,
    check_memory,
    grid_info,
    require_whole,
)
from .grid import lowpass, upsample
from .spectra import NoStructureError, ScaleChoice, choose_scale
from .texture import prepare_reference
from .units import expect_units, parse_quantity, unit_factors

if TYPE_CHECKING:
    from .nn.model import DownscalingModel
    from .nn.pipeline import SamplingPlan

__all__ = ["ensemble", "sample"]

Sampler = Literal["consistency", "heun", "sde", "conditional"]
Statistic = Literal["mean", "std", "min", "max", "exceedance", "quantile"]
Conserve = Literal["auto", "none", "additive", "multiplicative"]
Interpolation = Literal["nearest", "bilinear", "bicubic"]
_SAMPLERS = {"consistency": ("consistency",), "edm": ("heun", "sde", "conditional")}
_DEFAULT_STEPS = {"consistency": 1, "heun": 18, "sde": 500, "conditional": 128}
_STATS = ("mean", "std", "min", "max", "exceedance", "quantile")


# ----------------------------------------------------------------------------- model, grid


def _resolve_model(model: Any) -> DownscalingModel:
    """None, a registered name, a weight-file path or a DownscalingModel -> DownscalingModel."""
    from .models import load

    return load(model)


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
    spacing = _spacing_in_model_units(info, card)  # None unless card.pixel_size is set
    pixel = float(card.pixel_size or 1.0)
    have = f"{info.spacing:g} {info.units or ''}".strip() if info.spacing else ""
    assumed = ""
    if spacing is not None and not info.units and card.pixel_units:
        assumed = (
            f" (the coordinates have no units, so they were taken to be in the model's "
            f"{card.pixel_units}: set da.{info.x}.attrs['units'] if they are not)"
        )
    derived = factor is None and spacing is not None
    if factor is None:
        if spacing is not None:
            ratio = spacing / pixel
            factor = round(ratio)
            if factor < 1 or abs(ratio - factor) > 0.01 * ratio:
                raise ValueError(
                    f"the input grid spacing {have} is not an integer multiple of the pixel "
                    f"size of model {model.name!r}, {card.pixel_size:g} "
                    f"{card.pixel_units or ''} (ratio {ratio:.4g}){assumed}; regrid the input or "
                    "pass factor=<int>"
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
        source = f" (from the grid spacing {have}{assumed})" if derived else ""
        raise ValueError(
            f"factor={fy}{source} does not match model {model.name!r}, which supports factors "
            f"{card.factors}; pass one of those (or factor=1 for input already on the model grid)"
        )
    if spacing is not None:
        fine = spacing / fy
        if abs(fine - pixel) > 0.01 * pixel:
            raise ValueError(
                f"with factor={fy} the input grid spacing {have} gives {fine:g} "
                f"{card.pixel_units or ''}, but model {model.name!r} works at "
                f"{card.pixel_size:g} {card.pixel_units or ''}{assumed}; pass "
                f"factor={max(1, round(spacing / pixel))}"
            )
    return fy


def _sigma_star(
    scale,
    fine: xr.DataArray,
    model: DownscalingModel,
    y,
    x,
    factor: int = 1,
    target_psd: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """sigma* from ``scale``; for "auto" against ``target_psd`` (k, power in model space: the
    reference's) or else the spectrum stored with the model."""
    card = model.card
    if isinstance(scale, str):
        if scale != "auto":
            raise ValueError(
                f"scale={scale!r} is not understood; use 'auto', a noise level sigma* (float) or "
                "a ScaleChoice from xdownscale.choose_scale"
            )
        if target_psd is None and card.target_psd is None:
            raise ValueError(
                f"scale='auto' needs the target spectrum stored with the model, and model "
                f"{model.name!r} has none (card.target_psd); pass scale=<sigma*> as a number, "
                "reference=<fine fields of the target product>, or "
                "scale=xdownscale.choose_scale(source, target, transform=...)"
            )
        if target_psd is None:
            target_psd = (
                np.asarray(card.target_psd_wavenumber, dtype=float),
                np.asarray(card.target_psd, dtype=float),
            )
        target = xr.DataArray(
            target_psd[1], dims="wavenumber", coords={"wavenumber": target_psd[0]}
        )
        z = card.forward_transform(fine)
        # compare shapes, not amplitudes: the input may be less (or more) variable than the
        # training data as a whole, which is no reason to regenerate its large scales
        k_max = 0.5 / factor if factor > 1 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a smoothed input never crosses
            # k* no finer than the coarse grid's Nyquist: the input resolves nothing smaller
            try:
                s = choose_scale(
                    z,
                    target,
                    nan_policy="fill",
                    match_below=0.25 / factor,
                    spatial_dims=(y, x),
                    k_max=k_max,
                ).sigma_star
            except NoStructureError:
                # constant input (e.g. all dry): nothing to keep but the coarse values, so
                # regenerate every scale the coarse grid cannot resolve; with conservation a
                # dry field stays dry
                k, p = target_psd
                at = np.array([k_max if k_max is not None else float(k[-1])])
                s = float(np.sqrt(np_spectra.interp_spectrum(k, p, at)[0]))
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


# ----------------------------------------------------------------------------- the job


@dataclass
class _Job:
    """A validated request: the lazy inputs of the core and what the attributes need."""

    fine: xr.DataArray  # model units, on the model grid, spatial dims last
    coarse: xr.DataArray | None  # model units (conditional sampling, conservation)
    plan: SamplingPlan
    model: DownscalingModel
    order: tuple[Hashable, ...]
    steps: int
    units: str | None  # units of the result
    to_output: tuple[float, float] | None  # model units -> result units (scale, offset)
    resources: dict[str, float] | None = None  # dask resource annotations of the core tasks
    reference_fields: int = 0  # fields of the reference whose texture the samples take
    eager: bool = False  # the input was eager and was chunked here: compute the result


def _prepare(
    da: Any,
    model: Any,
    *,
    factor: int | None,
    scale: Any,
    reference: Any = None,
    sampler: str | None,
    steps: int | None,
    seed: int,
    batch_size: int,
    device: str,
    precision: str,
    gamma: float,
    interpolation: str,
    conserve: str,
    units: str | None,
    spatial_dims: Sequence[Hashable] | None,
    progress: bool = False,
    resources: dict[str, float] | None = None,
) -> _Job:
    da = check_finite(check_dataarray(da, "da"), "da")
    model = _resolve_model(model)
    info = grid_info(da, spatial_dims)
    y, x = info.y, info.x
    require_whole(da, [y, x], "da", "sampling needs whole fields")
    check_choice(interpolation, "interpolation", ("nearest", "bilinear", "bicubic"))
    have = da.attrs.get("units")
    to_model = expect_units(have, model.card.units, "da", f"model {model.name!r}")
    out_units = units or have or model.card.units
    to_output = None
    if out_units and model.card.units and str(out_units).strip() != str(model.card.units).strip():
        to_output = unit_factors(str(model.card.units), str(out_units), "the result")
        if to_output == (1.0, 0.0):
            to_output = None
    f = _resolve_factor(info, model, factor)
    allowed = _SAMPLERS[model.parameterisation]
    sampler = allowed[0] if sampler is None else sampler
    check_choice(sampler, "sampler", tuple(_DEFAULT_STEPS))
    if sampler not in allowed:
        kind = "an EDM denoiser" if sampler != "consistency" else "a consistency model"
        raise ValueError(
            f"sampler={sampler!r} needs {kind}, but model {model.name!r} is parameterised as "
            f"{model.parameterisation!r}; use sampler={allowed[0]!r}"
            + (f" (or one of {allowed})" if len(allowed) > 1 else "")
        )
    if sampler == "conditional" and f == 1:
        raise ValueError(
            "sampler='conditional' enforces C'x = y' with y' the coarse input, so it needs the "
            "coarse field and factor > 1; pass the coarse field with factor=<int>"
        )
    cons = _resolve_conserve(conserve, model, f)
    steps = _DEFAULT_STEPS[sampler] if steps is None else check_int(steps, "steps", 1)
    seed = check_int(seed, "seed", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    check_choice(precision, "precision", ("float32", "bfloat16"))
    dev = check_device(device)  # "auto" is resolved by each worker, on its own hardware
    client = _client()
    if dev.startswith("cuda") and client is None:
        from .nn.device import resolve_device as torch_device

        torch_device(dev)  # no cluster: a GPU that is not there fails now, not at compute
    order = tuple(da.dims)
    lead = [d for d in order if d not in (y, x)]
    src = da.transpose(*lead, y, x)
    if to_model is not None:
        s, o = to_model
        src = (src * s + o).astype(
            src.dtype if np.issubdtype(src.dtype, np.floating) else np.float64
        )
    if f > 1:
        fine = upsample(src, f, interpolation=interpolation, spatial_dims=(y, x))  # type: ignore[arg-type]
        fine = lowpass(fine, 0.5 / f, spatial_dims=(y, x))
    else:
        fine = src
    ref = None
    if reference is not None:
        ref = prepare_reference(reference, info, f, model)
    s_star = _sigma_star(scale, fine, model, y, x, f, None if ref is None else ref.target_psd)
    sigmas = _sigmas(sampler, steps, model.sigma_min, s_star)
    from .nn.model import register_model
    from .nn.pipeline import SamplingPlan

    register_model(model)
    if client is not None:
        from .cluster import share_model

        share_model(model, client)  # an in-memory model reaches every worker, once
    plan = SamplingPlan(
        model.ref,
        sampler,
        sigmas,
        s_star,
        seed,
        batch_size,
        dev,
        precision,
        float(gamma),
        f,
        cons,
        bool(info.periodic_x),
    )
    if ref is not None:
        plan = replace(plan, texture=ref.texture)
    coarse = src if sampler == "conditional" or cons != "none" else None
    eager = fine.chunks is None
    if eager and lead:
        # an eager input is computed through dask in blocks too (results do not depend on the
        # chunking), so that a progress bar can count blocks: about two blocks per core, but
        # at least two fields per core in each (network calls take turns on a device, and a
        # call keeps every core busy only with a micro-batch of two fields per core) and at
        # most a batch
        first = lead[0]
        per = max(1, int(np.prod([fine.sizes[d] for d in lead[1:]])))
        cores = os.cpu_count() or 1
        spread = -(-fine.sizes[first] // (2 * cores))
        size = max(1, min(batch_size // per, max(spread, -(-2 * cores // per))))
        if size < fine.sizes[first] or progress:
            fine = fine.chunk({first: size})
            coarse = None if coarse is None else coarse.chunk({first: size})
        else:
            eager = False  # one block: the core runs on the arrays directly
    if resources is not None and not (
        isinstance(resources, dict) and all(isinstance(v, (int, float)) for v in resources.values())
    ):
        raise TypeError(f"resources must be a dict such as {{'GPU': 1}}, got {resources!r}")
    n_ref = 0 if ref is None else len(ref.fields)
    return _Job(
        fine, coarse, plan, model, order, steps, out_units, to_output, resources, n_ref, eager
    )


def _client():
    """The active distributed client, if distributed is in use (imported only then)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from .cluster import current_client

    return current_client()


def _sigmas(sampler: str, steps: int, sigma_min: float, sigma_star: float) -> tuple[float, ...]:
    from .nn import samplers

    if sampler == "consistency":
        if steps == 1:
            return (sigma_star,)
        return tuple(samplers.sigmas_karras(steps + 1, sigma_min, sigma_star)[:steps].tolist())
    if sampler == "heun":
        return tuple(samplers.sigmas_karras(steps, sigma_min, sigma_star).tolist())
    return tuple(samplers.sigmas_geometric(steps, sigma_min, sigma_star).tolist())


def _history(job: _Job, extra: str = "") -> str:
    card, plan = job.model.card, job.plan
    sha = f" (sha256 {card.sha256})" if card.sha256 else ""
    return (
        f"{extra}downscaled by {plan.factor}x with model {card.name!r}{sha}, sampler "
        f"{plan.sampler} ({job.steps} step{'s' if job.steps > 1 else ''}), sigma* = "
        f"{plan.sigma_star:.4g}, seed {plan.seed}"
        + ("" if plan.conserve == "none" else f", {plan.conserve} conservation of block means")
        + (
            f", fine-scale texture from a reference of {job.reference_fields} fields"
            if job.reference_fields
            else ""
        )
    )


def _attrs(da: xr.DataArray, job: _Job, text: str) -> dict:
    attrs = add_history(da.attrs, text)
    if job.units:
        attrs["units"] = job.units
    return attrs


def _loc(block_info, which: int, nlead: int) -> tuple[int, ...]:
    return tuple(int(a) for a, _ in block_info[which]["array-location"][:nlead])


def _to_output(data, job: _Job):
    if job.to_output is None:
        return data
    s, o = job.to_output
    return (data * np.float32(s) + np.float32(o)).astype(np.float32)


# ----------------------------------------------------------------------------- dask tasks


def _map_blocks(job: _Job, func, *args, **kwargs):
    """``dask.array.map_blocks`` of a core task, with the job's plan and resource annotations."""
    import contextlib

    import dask
    import dask.array as dsa

    annotate = dask.annotate(resources=job.resources) if job.resources else contextlib.nullcontext()
    with annotate:
        return dsa.map_blocks(
            func, *args, plan=job.plan, dtype=np.float32, meta=np.array((), np.float32), **kwargs
        )


def _sample_task(x, *rest, block_info=None, plan: SamplingPlan, nlead: int) -> np.ndarray:
    """One input block, member 0 (:func:`xdownscale.nn.pipeline.sample_fields`)."""
    from .nn.pipeline import sample_fields

    y = rest[0] if rest else None
    return sample_fields(x, y, _loc(block_info, 0, nlead), [0], plan)[0]


def _ensemble_task(m, x, *rest, block_info=None, plan: SamplingPlan, nlead: int) -> np.ndarray:
    """One block of members times one input block."""
    from .nn.pipeline import sample_fields

    loc = tuple(int(a) for a, _ in block_info[1]["array-location"][1 : 1 + nlead])
    y = rest[0][0] if rest else None
    return sample_fields(x[0], y, loc, m.ravel().tolist(), plan)


def _reduce_task(x, *rest, block_info=None, plan: SamplingPlan, nlead: int, n: int, stats):
    """Statistics over n members of one input block."""
    from .nn.pipeline import ensemble_statistics

    y = rest[0] if rest else None
    return ensemble_statistics(x, y, _loc(block_info, 0, nlead), n, plan, stats)


# ----------------------------------------------------------------------------- public API


def sample(
    da: xr.DataArray,
    model: Any = None,
    *,
    factor: int | None = None,
    scale: float | ScaleChoice | Literal["auto"] = "auto",
    reference: xr.DataArray | None = None,
    sampler: Sampler | None = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    precision: Literal["float32", "bfloat16"] = "float32",
    gamma: float = 0.1,
    interpolation: Interpolation = "bilinear",
    conserve: Conserve = "auto",
    units: str | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
    progress: bool = False,
    resources: dict[str, float] | None = None,
) -> xr.DataArray:
    """Downscale a coarse field with a generative model: one realistic fine field per input.

    Parameters
    ----------
    da : xarray.DataArray
        Coarse field(s) (or fields already on the model grid with ``factor=1``); non-spatial
        dims may be dask-chunked, the spatial dims must be one chunk each. NaN marks missing
        cells (kept missing); +-inf is refused.
    model : None, str, path-like or DownscalingModel
        None: the embedded default model (:data:`xdownscale.models.DEFAULT_MODEL`, no
        network); a registered name (:func:`xdownscale.models.list_models`) or a weight file,
        loaded (hash-checked, never unpickled) by :func:`xdownscale.models.load`; or an
        in-memory :class:`xdownscale.nn.DownscalingModel`.
    factor : int, optional
        How much finer the model grid is. Default: from the model's pixel size and the input
        grid spacing, or the model's only supported factor.
    scale : "auto", float or ScaleChoice
        Noise level sigma* (in the model's transformed space) at which the sample starts:
        scales larger than the one it masks are kept. ``"auto"`` runs
        :func:`xdownscale.choose_scale` against the spectrum stored with the model (this reads
        the input once to compute its spectrum), comparing shapes (``match_below=0.25 /
        factor``); a k* beyond the coarse grid's Nyquist (``0.5 / factor`` cycles per fine
        cell), which the input cannot resolve, is brought back to it. A
        :class:`~xdownscale.ScaleChoice` or a number are used as given. With ``reference``,
        ``"auto"`` compares against the reference's spectrum instead of the model's.
    reference : xarray.DataArray, optional
        A few fine fields of the product the result should look like (any times, at the
        output resolution, at least ``8 * factor`` cells a side, units convertible to the
        model's; NaN allowed): their texture below the coarse grid replaces the one the model
        was trained on. The radially averaged spectrum of the reference (at most 32 of its
        fields) gives every sample its shape above 3/4 of the coarse Nyquist wavenumber,
        anchored at the sample's own power there: a radial gain per field, applied before
        clipping and conservation, twice (:mod:`xdownscale.np_texture`). None keeps the
        model's own texture.
    sampler : {"consistency", "heun", "sde", "conditional"}, optional
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
        Guidance strength of ``sampler="conditional"``.
    interpolation : {"nearest", "bilinear", "bicubic"}
        Upsampling (before the low-pass with cutoff ``0.5/factor``).
    conserve : {"auto", "none", "additive", "multiplicative"}
        Make every output block of ``factor x factor`` cells average exactly to its coarse
        input cell, in physical units (:func:`xdownscale.nn.samplers.conserve`):
        ``"multiplicative"`` rescales each block (non-negative variables: precipitation keeps
        its zeros and sign), ``"additive"`` shifts it. ``"auto"`` (default): multiplicative
        for a model with a log transform, additive otherwise; nothing when ``factor=1``.
    units : str, optional
        Units of the result; default the input's (data in other units than the model's are
        converted to the model's and back, e.g. ``kg m-2 s-1`` for a model in ``mm h-1``).
    spatial_dims : (hashable, hashable), optional
        Override the discovered ``(y, x)`` dims.
    progress : bool
        Compute now with a progress bar (:func:`xdownscale.progress.compute`): under a
        distributed client the result is persisted on the cluster and shown with
        ``distributed.progress``; else computed, with a bar counting blocks of fields.
    resources : dict, optional
        dask resource annotations of the network's tasks, e.g. ``{"GPU": 1}`` so that a
        distributed scheduler runs them only on workers started with ``--resources GPU=1``
        (the interpolation before them runs anywhere). Lazy input only.

    Returns
    -------
    xarray.DataArray
        The fine field(s), float32, with fine-grid coordinates, ``units`` and a ``history``
        line naming model, sampler, sigma* and seed; NaN where the input was NaN. Lazy when
        ``da`` is dask-backed.

    Raises
    ------
    ValueError
        Unknown model, factor or units that do not fit the model (data without units for a
        model with units), missing spatial dims, absent device, bad options; a reference on
        another grid spacing, in other units or too small.
    TypeError
        Wrong argument types.

    Notes
    -----
    Pipeline (Hess et al. 2024): upsample, low-pass with cutoff ``0.5/factor``, apply the
    model's transform, ``x = x_src + sigma* z``, denoise from sigma* to 0 (SDEdit, Meng et al.
    2022), invert the transform, conserve the coarse block means (``conserve``), restore the
    NaN mask. With ``sampler="conditional"`` the constraint is ``C'x = T(coarse)`` in the
    model's transformed space ``T`` (exact block means in physical units when the transform
    is affine; Wan et al. 2023). See the task page "downscale an ensemble".

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
    job = _prepare(
        da,
        model,
        factor=factor,
        scale=scale,
        reference=reference,
        sampler=sampler,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        device=device,
        precision=precision,
        gamma=gamma,
        interpolation=interpolation,
        conserve=conserve,
        units=units,
        spatial_dims=spatial_dims,
        progress=progress,
        resources=resources,
    )
    fine, coarse = job.fine, job.coarse
    nlead = fine.ndim - 2
    if fine.chunks is None:
        from .nn.pipeline import sample_fields

        y = None if coarse is None else np.asarray(coarse.values)
        data = sample_fields(np.asarray(fine.values), y, (0,) * nlead, [0], job.plan)[0]
    else:
        args = [fine.data] + ([] if coarse is None else [coarse.data])
        data = _map_blocks(
            job,
            _sample_task,
            *args,
            nlead=nlead,
            chunks=fine.data.chunks,
        )
    out = xr.DataArray(_to_output(data, job), dims=fine.dims, coords=fine.coords, name=da.name)
    out.attrs = _attrs(da, job, "sample: " + _history(job))
    out = out.transpose(*job.order)
    return _finish(out, job, progress, "sample")


def _finish(out, job: _Job, progress: bool, what: str):
    """Compute now with a bar (``progress``), or because the input was eager."""
    if progress:
        return _progress.compute(out, what)
    return out.compute() if job.eager else out


def _thresholds(threshold: Any, units: str | None) -> list[float]:
    values = threshold if isinstance(threshold, (list, tuple, np.ndarray)) else [threshold]
    out = []
    for t in values:
        if isinstance(t, str):
            v = parse_quantity(t, units, "threshold")
        elif isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
            v = float(t)
        else:
            raise TypeError(
                f"threshold must be a number (in the result's units) or a string with units "
                f"such as '1 mm/h', got {type(t).__name__} {t!r}"
            )
        if not np.isfinite(v):
            raise ValueError(
                f"threshold={t!r} is not a finite number: the fraction of members above it "
                "would be meaningless; pass finite thresholds"
            )
        out.append(v)
    if not out:
        raise ValueError("threshold is empty; pass at least one threshold for 'exceedance'")
    return out


def _probabilities(q: Any) -> list[float]:
    values = [float(v) for v in np.atleast_1d(np.asarray(q, dtype=float))]
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"q must be probabilities in [0, 1], got {q!r}")
    return values


def _stats_spec(reduce, threshold, q, units):
    reduce_list = [reduce] if isinstance(reduce, str) else list(reduce)
    bad = [r for r in reduce_list if r not in _STATS]
    if bad or not reduce_list or len(set(reduce_list)) != len(reduce_list):
        raise ValueError(
            f"reduce={reduce!r} is not understood; use None or a list of distinct statistics "
            f"among {list(_STATS)}"
        )
    for name, value, needed_by in (("threshold", threshold, "exceedance"), ("q", q, "quantile")):
        if needed_by in reduce_list and value is None:
            raise ValueError(
                f"reduce includes {needed_by!r}: pass {name}=<float or list of floats>"
            )
    thresholds = _thresholds(threshold, units) if "exceedance" in reduce_list else []
    quantiles = _probabilities(q) if "quantile" in reduce_list else []
    stats: list[tuple[str, float | None]] = []
    for r in reduce_list:
        if r == "exceedance":
            stats += [("exceedance", t) for t in thresholds]
        elif r == "quantile":
            stats += [("quantile", v) for v in quantiles]
        else:
            stats.append((r, None))
    return reduce_list, thresholds, quantiles, stats


def ensemble(
    da: xr.DataArray,
    n: int,
    model: Any = None,
    *,
    reduce: str | Sequence[Statistic] | None = None,
    threshold: float | str | Sequence[float | str] | None = None,
    q: float | Sequence[float] | None = None,
    member_chunk: int | None = None,
    factor: int | None = None,
    scale: float | ScaleChoice | Literal["auto"] = "auto",
    reference: xr.DataArray | None = None,
    sampler: Sampler | None = None,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    precision: Literal["float32", "bfloat16"] = "float32",
    gamma: float = 0.1,
    interpolation: Interpolation = "bilinear",
    conserve: Conserve = "auto",
    units: str | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
    progress: bool = False,
    resources: dict[str, float] | None = None,
) -> xr.DataArray | xr.Dataset:
    """An ensemble of ``n`` downscaled realisations, or statistics over it computed streaming.

    Parameters
    ----------
    da, model, factor, scale, reference, sampler, steps, seed, batch_size, device, precision
        As :func:`sample`.
    gamma, interpolation, conserve, units, spatial_dims, progress, resources
        As :func:`sample`; member ``m`` uses the noise of ``(seed, m, position)``, so member 0
        equals :func:`sample` with the same arguments.
    n : int
        Number of members.
    reduce : str or sequence of {"mean", "std", "min", "max", "exceedance", "quantile"}, optional
        None returns all members along a new leading dim ``realization``. Otherwise a Dataset
        with one variable per statistic, computed over the members without holding them.
    threshold : float, str or sequence of them
        Thresholds for ``"exceedance"`` (the fraction of members above each, dim
        ``threshold``): numbers in the result's units, or strings with units (``"1 mm/h"``).
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
        As :func:`sample`, plus unknown statistics, a missing or non-finite ``threshold``,
        ``q`` outside [0, 1], a request larger than the memory.

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
    n = check_int(n, "n", 1)
    job = _prepare(
        da,
        model,
        factor=factor,
        scale=scale,
        reference=reference,
        sampler=sampler,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        device=device,
        precision=precision,
        gamma=gamma,
        interpolation=interpolation,
        conserve=conserve,
        units=units,
        spatial_dims=spatial_dims,
        progress=progress,
        resources=resources,
    )
    fine, coarse = job.fine, job.coarse
    nlead = fine.ndim - 2
    if reduce is None:
        members = _members(da, n, job, member_chunk)
        return _finish(members, job, progress, f"ensemble of {n}")
    reduce_list, thresholds, quantiles, stats = _stats_spec(reduce, threshold, q, job.units)
    core_stats = tuple((k, _to_model(t, job) if k == "exceedance" else t) for k, t in stats)
    if "quantile" in reduce_list:
        check_memory(
            n * _largest_block(fine) * 4,
            f"ensemble(reduce=['quantile']) with n={n} (all members of one input "
            "chunk are held for exact quantiles)",
            "chunk the input more finely along its non-spatial dims (e.g. da.chunk(time=1)) or "
            "drop 'quantile'",
        )
    if fine.chunks is None:
        from .nn.pipeline import ensemble_statistics

        y = None if coarse is None else np.asarray(coarse.values)
        data = ensemble_statistics(
            np.asarray(fine.values), y, (0,) * nlead, n, job.plan, core_stats
        )
    else:
        args = [fine.data] + ([] if coarse is None else [coarse.data])
        data = _map_blocks(
            job,
            _reduce_task,
            *args,
            nlead=nlead,
            n=n,
            stats=core_stats,
            new_axis=[0],
            chunks=((len(stats),), *fine.data.chunks),
        )
    packed = xr.DataArray(data, dims=("stat", *fine.dims), coords=fine.coords)
    history = _history(job, f"ensemble statistics over {n} members ({', '.join(reduce_list)}): ")
    base = _attrs(da, job, history)
    out = xr.Dataset(attrs={"history": base["history"]})
    for kind in reduce_list:
        idx = [i for i, (k, _) in enumerate(stats) if k == kind]
        v = packed.isel(stat=idx)
        attrs = {k: val for k, val in base.items() if k != "history"}
        if kind == "exceedance":
            v = v.rename(stat="threshold").assign_coords(
                threshold=("threshold", thresholds, {"units": job.units or ""})
            )
            attrs = {"long_name": "fraction of members above threshold", "units": "1"}
        elif kind == "quantile":
            v = v.rename(stat="q").assign_coords(q=("q", quantiles, {"long_name": "probability"}))
            v = _to_output(v, job)
        else:
            v = v.isel(stat=0, drop=True)
            if kind == "std" and job.to_output is not None:
                v = (v * np.float32(abs(job.to_output[0]))).astype(np.float32)
            else:
                v = _to_output(v, job)
        attrs["cell_methods"] = f"realization: {kind} ({n} members)"
        dims = [d for d in v.dims if d not in job.order] + list(job.order)
        out[kind] = v.transpose(*dims).assign_attrs(attrs)
    return _finish(out, job, progress, f"ensemble statistics over {n}")


def _to_model(t: float, job: _Job) -> float:
    """A threshold in the result's units, in the model's units (where the core compares)."""
    if job.to_output is None:
        return t
    s, o = job.to_output
    return (t - o) / s


def _largest_block(fine: xr.DataArray) -> int:
    """Values in the largest dask block of ``fine`` (all of it when eager)."""
    if fine.chunks is None:
        return int(fine.size)
    return int(np.prod([max(c) for c in fine.data.chunks]))


def _members(da: xr.DataArray, n: int, job: _Job, member_chunk: int | None) -> xr.DataArray:
    fine, coarse = job.fine, job.coarse
    nlead = fine.ndim - 2
    mc = job.plan.batch_size if member_chunk is None else check_int(member_chunk, "member_chunk", 1)
    if fine.chunks is None or job.eager:  # the members of an eager input are held in memory
        check_memory(
            n * fine.size * 4,
            f"ensemble of n={n} members held in memory",
            "chunk the input (e.g. da.chunk(time=1)) so that the members stay lazy, or pass "
            "reduce=['mean', 'std', ...] to get statistics without holding the members",
        )
    if fine.chunks is None:
        from .nn.pipeline import sample_fields

        y = None if coarse is None else np.asarray(coarse.values)
        data = sample_fields(np.asarray(fine.values), y, (0,) * nlead, range(n), job.plan)
    else:
        import dask.array as dsa

        mem = dsa.arange(n, chunks=mc).reshape((n,) + (1,) * fine.ndim)
        args = [mem, fine.data[None]] + ([] if coarse is None else [coarse.data[None]])
        data = _map_blocks(
            job,
            _ensemble_task,
            *args,
            nlead=nlead,
            chunks=(mem.chunks[0], *fine.data.chunks),
        )
    out = xr.DataArray(
        _to_output(data, job), dims=("realization", *fine.dims), coords=fine.coords, name=da.name
    )
    out = out.assign_coords(
        realization=(
            "realization",
            np.arange(n),
            {"standard_name": "realization", "axis": "E", "long_name": "ensemble member"},
        )
    )
    out.attrs = _attrs(da, job, f"ensemble of {n}: " + _history(job))
    return out.transpose("realization", *job.order)
