"""Train a downscaling prior on your own high-resolution fields: :func:`train`.

The model is unconditional — trained on the *target* data only (Hess et al. 2024's foundation
model) — and is used for downscaling by :func:`xdownscale.sample` (SDEdit from sigma*). This is
the xarray layer: it checks the fields, brings them into the model's space, builds the card;
the torch loop is :func:`xdownscale.nn.training.fit` (imported when training starts) and the
file format :mod:`xdownscale.models.io`. The command line is ``xdownscale train``.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import os
import platform
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from .checks import check_choice, check_dataarray, check_int, grid_info

if TYPE_CHECKING:
    from .nn.model import DownscalingModel

__all__ = ["train"]

PARAMETERISATIONS = ("edm", "consistency")
_DEFAULT_NOISE = {"edm": (-1.2, 1.2), "consistency": (-1.1, 2.0)}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _check_writable(path: str | os.PathLike | None, name: str) -> None:
    """Fail now, not after hours of training, when ``path`` cannot be written."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ValueError(
            f"{name}={str(p)!r} is a directory; pass a file name, e.g. {str(p / 'my-model.pt')!r}"
        )
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".xdownscale-write-test-"):
            pass
    except OSError as err:
        raise ValueError(
            f"{name}={str(p)!r} cannot be written ({err.strerror or err}); pass a path in a "
            "writable directory"
        ) from None


def _fields(
    da: xr.DataArray | Sequence[xr.DataArray], spatial_dims
) -> tuple[list[np.ndarray], list[xr.DataArray], Any]:
    arrays = [da] if isinstance(da, xr.DataArray) else list(da)
    if not arrays or not all(isinstance(a, xr.DataArray) for a in arrays):
        raise TypeError(
            "da must be an xarray.DataArray or a non-empty sequence of DataArrays (fields on "
            f"different grids), got {type(da).__name__}"
        )
    out, info0 = [], None
    for k, a in enumerate(arrays):
        check_dataarray(a, f"da[{k}]" if len(arrays) > 1 else "da")
        info = grid_info(a, spatial_dims)
        info0 = info0 or info
        lead = [d for d in a.dims if d not in (info.y, info.x)]
        vals = a.transpose(*lead, info.y, info.x).values.astype(np.float32, copy=False)
        out.append(vals.reshape(-1, *vals.shape[-2:]))
        if a.attrs.get("units") != arrays[0].attrs.get("units"):
            raise ValueError(
                f"the training arrays have different units ({arrays[0].attrs.get('units')!r} and "
                f"{a.attrs.get('units')!r}); convert them to one unit first"
            )
    if any(np.isinf(f).any() for f in out):
        raise ValueError(
            "the training data contain infinities; replace them with NaN (masked) or finite values"
        )
    return out, arrays, info0


def _target_psd(fields, size: int, min_valid: float, seed: int, n: int = 256):
    """Mean spectrum of up to ``n`` valid ``size x size`` windows (model space, NaN filled)."""
    from .spectra import psd

    rng = np.random.default_rng(seed)
    wins: list[np.ndarray] = []
    for _ in range(50 * n):
        if len(wins) >= n:
            break
        f = fields[rng.integers(len(fields))]
        s = min(size, f.shape[1], f.shape[2])
        if s != size:
            continue
        t, i, j = (
            rng.integers(f.shape[0]),
            rng.integers(f.shape[1] - s + 1),
            rng.integers(f.shape[2] - s + 1),
        )
        w = f[t, i : i + s, j : j + s]
        if np.isfinite(w).mean() >= min_valid:
            wins.append(w)
    if not wins:
        raise ValueError(
            f"found no {size}x{size} window with at least {min_valid:.0%} valid cells to "
            "compute the "
            "target spectrum; lower min_valid= or psd_size="
        )
    p = psd(
        xr.DataArray(np.stack(wins), dims=("sample", "y", "x")),
        nan_policy="fill",
        spatial_dims=("y", "x"),
    )
    return p["wavenumber"].values.tolist(), p.values.tolist(), len(wins)


# the train() options a fine-tuning start (init=) takes from the model's card
_FROM_INIT = (
    "parameterisation",
    "transform",
    "scale_range",
    "sigma_data",
    "sigma_min",
    "sigma_max",
    "channels",
    "num_res_blocks",
    "attention",
    "dropout",
    "periodic",
)


def _init_from(init, given: dict[str, Any]):
    """The card-fixed options, the inner denoiser's state dict and provenance of ``init``."""
    from .models import load
    from .nn.model import DownscalingModel

    if not isinstance(init, (str, os.PathLike, DownscalingModel)):
        raise TypeError(
            f"init must be a registered model name, a weight file or a DownscalingModel, got "
            f"{type(init).__name__}"
        )
    model = load(init)
    card = model.card
    net = card.extra.get("network", {}).get("config", {})
    base = {
        "parameterisation": card.parameterisation,
        "transform": card.transform,
        "scale_range": None if card.scale_min is None else (card.scale_min, card.scale_max),
        "sigma_data": card.sigma_data,
        "sigma_min": card.sigma_min,
        "sigma_max": card.sigma_max,
        "channels": tuple(net.get("channels", ())),
        "num_res_blocks": net.get("num_res_blocks"),
        "attention": net.get("attention"),
        "dropout": net.get("dropout", 0.0),
        "periodic": (bool(net.get("periodic_y", False)), bool(net.get("periodic_x", False))),
    }
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()}
    for key in _FROM_INIT:
        value, default = given[key], defaults[key]
        same = value == base[key] or (
            isinstance(value, (list, tuple))
            and isinstance(base[key], (list, tuple))
            and [float(v) for v in value] == [float(v) for v in base[key]]
        )
        if not (value is default or value == default or same):
            raise ValueError(
                f"{key}={value!r} conflicts with init={card.name!r}, whose card fixes {key} = "
                f"{base[key]!r}; leave {key} at its default (or pass {base[key]!r}) to fine-tune "
                "that model, or drop init= to train a new one"
            )
    inner = getattr(model.denoiser, "inner", model.denoiser)  # BoundedDenoiser wraps the weights
    info = {
        "name": card.name,
        "sha256": card.sha256 or "",
        "steps": card.extra.get("training", {}).get("steps"),
        "config": net,
    }
    return base, {k: v.detach().clone() for k, v in inner.state_dict().items()}, info


def _check_inside_range(fields, raw, card, info) -> None:
    """Fine-tuning data must lie in the model's scaled range [-1, 1]: the model's outputs are
    clipped to it, so it could never produce values beyond (they would be capped silently)."""
    tol = 1e-5
    over = [(f > 1 + tol) | (f < -1 - tol) for f in fields]
    n = int(sum(o.sum() for o in over))
    if n:
        lo, hi = (float(v) for v in card.inverse_transform(np.array([-1.0, 1.0])))
        bad = np.concatenate([r[o] for r, o in zip(raw, over, strict=True)])
        raise ValueError(
            f"{n} cells of the fine-tuning data (values {bad.min():.4g} to {bad.max():.4g}) lie "
            "outside the range "
            f"[{lo:.4g}, {hi:.4g}] that init={info['name']!r} was trained on and can produce; "
            "the fine-tuned model would cap them. Clip the data to that range if capping is "
            "acceptable (da.clip(...)), or train a new model without init="
        )


def _check_same_network(cfg, info) -> None:
    from .nn.training import build_network

    built = build_network(cfg).net.config  # type: ignore[union-attr]
    if built != info["config"]:
        raise ValueError(
            f"init={info['name']!r} uses a network configuration that train() cannot rebuild "
            f"({info['config']!r} against {built!r}); fine-tune it with the lower-level "
            "xdownscale.nn.training.fit"
        )


def train(
    da: xr.DataArray | Sequence[xr.DataArray],
    *,
    init: str | os.PathLike | DownscalingModel | None = None,
    parameterisation: Literal["edm", "consistency"] = "edm",
    output: str | os.PathLike | None = None,
    name: str = "my-model",
    iterations: int = 2000,
    batch_size: int = 32,
    crop: int = 64,
    lr: float = 2e-4,
    channels: Sequence[int] = (32, 64, 64),
    num_res_blocks: int = 1,
    attention: bool = False,
    dropout: float = 0.0,
    periodic: tuple[bool, bool] | Literal["auto"] = "auto",
    flips: bool = True,
    transform: Literal["identity", "log"] = "identity",
    scale_range: tuple[float, float] | Literal["auto"] | None = "auto",
    sigma_data: float | None = None,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    p_mean: float | None = None,
    p_std: float | None = None,
    ema: float = 0.999,
    factors: Sequence[int] = (),
    min_valid: float = 0.9,
    psd_size: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = 300.0,
    resume: bool = True,
    time_limit: float | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: Literal["auto", "float32", "bfloat16"] = "auto",
    progress: bool = True,
    card: dict[str, Any] | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> DownscalingModel:
    """Train an EDM denoiser or a consistency model on high-resolution fields.

    Parameters
    ----------
    da : xarray.DataArray or sequence of DataArray
        High-resolution training fields (any non-spatial dims are samples); several arrays on
        different grids may be given. NaN marks missing cells (e.g. outside radar coverage):
        they are masked out of the loss. The data are loaded into memory.
    init : str, path-like or DownscalingModel, optional
        Fine-tune: start from this trained model (a registered name such as ``"radar-8x"``, a
        weight file or a loaded model) instead of random weights — Hess et al.'s foundation
        model adapted to your region. The model fixes ``parameterisation``, the network,
        ``transform``,
        ``scale_range``, ``sigma_data`` and the noise range (the new data are mapped into the
        model's space); leave those arguments at their defaults or pass the model's values.
        The optimiser starts afresh; the card records the model's name and sha256.
    parameterisation : {"edm", "consistency"}
        ``"edm"``: EDM denoiser (sample with ``method="heun"``); ``"consistency"``: improved
        consistency training (one-step sampling).
    output : path, optional
        Write the weights and the model card there (:func:`xdownscale.models.save`); load it
        back with :func:`xdownscale.models.load`.
    name : str
        Model name (card and history lines).
    iterations, batch_size, crop, lr : int, int, int, float
        Optimiser steps in all (a resumed run continues to this total), crops per step, crop
        size (cells), Adam learning rate (linear warm-up over 100 steps).
    channels, num_res_blocks, attention, dropout
        :class:`xdownscale.nn.UNet` options.
    periodic : "auto" or (bool, bool)
        Whether ``(y, x)`` are periodic (circular padding in the network). ``"auto"``: x when
        it is a global longitude, y never. A doubly periodic domain (Kolmogorov flow) is
        ``(True, True)``.
    flips : bool
        Random x/y flips of the crops. Turn them off when a flip is not a symmetry of the
        data (vorticity changes sign under a reflection).
    transform : {"identity", "log"}
        ``"log"``: ``log(x + 1e-4) - log(1e-4)`` (precipitation, Hess et al. 2024).
    scale_range : "auto", (float, float) or None
        Min and max of the transformed data mapped to [-1, 1]; ``"auto"`` takes them from the
        data, None skips the scaling.
    sigma_data : float, optional
        Standard deviation of the model-space data; default: measured on the data.
    sigma_min, sigma_max : float
        Noise range. For downscaling by SDEdit the model only needs noise levels up to a few
        times the sigma* that ``scale="auto"`` picks; a smaller ``sigma_max`` concentrates the
        training there.
    p_mean, p_std : float, optional
        Log-normal training noise; default (-1.2, 1.2) for EDM and (-1.1, 2.0) for
        consistency training (Karras et al. 2022; Song & Dhariwal 2023).
    ema : float
        EMA decay of the weights returned (with the usual ``(1 + k)/(10 + k)`` warm-up).
    factors : sequence of int
        Downscaling factors the card declares.
    min_valid : float
        Fraction of valid (non-NaN) cells a crop needs.
    psd_size : int, optional
        Window size for the stored target spectrum (default ``max(crop, 128)`` when the fields
        are large enough, else ``crop``).
    checkpoint : path, optional
        Checkpoint file, written every ``checkpoint_every`` seconds and at the end; with
        ``resume=True`` an existing checkpoint written with the same options is continued.
    time_limit : float, optional
        Stop after this many seconds (checkpointing), to spread a long run over sittings.
    seed : int
        Seeds crops, flips, noise and initial weights.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    precision : {"auto", "float32", "bfloat16"}
        "auto": bf16 autocast on a GPU that supports it, else float32.
    progress : bool
        A tqdm bar on a terminal, else a line every 50 steps.
    card : dict, optional
        Extra card fields: ``version``, ``description``, ``licence``, ``training`` notes
        (merged), ``metrics``, ``variable``, ``standard_name``, ...
    spatial_dims : (hashable, hashable), optional
        Override the discovered ``(y, x)`` dims.

    Returns
    -------
    DownscalingModel
        The EMA model with a complete :class:`xdownscale.models.ModelCard` (sha256 set when
        ``output`` was written).

    Raises
    ------
    ValueError
        Bad options, fields smaller than ``crop``, no crop with enough valid cells, a
        checkpoint written with other options, an ``output`` or ``checkpoint`` that cannot be
        written (checked before training starts).
    TypeError
        If ``da`` is not a DataArray (or a sequence of them).

    Notes
    -----
    Losses: EDM ``lambda(sigma) ||D(x + sigma n, sigma) - x||^2`` with
    ``ln sigma ~ N(P_mean, P_std^2)``; improved consistency training (Song & Dhariwal 2023):
    pseudo-Huber distance, ``1/(sigma_{i+1} - sigma_i)`` weighting, discretised log-normal
    noise indices and the doubling curriculum (s0 = 10, s1 = 1280). Both average over valid
    cells only. The card stores the spectrum of the transformed training data so that
    ``sample(..., scale="auto")`` needs no other data.

    Examples
    --------
    >>> from xdownscale.datasets import power_law_field
    >>> da = power_law_field((8, 32, 32), slope=-3.0, seed=0)
    >>> m = train(da, iterations=3, batch_size=2, crop=16, channels=(8,), progress=False,
    ...           device="cpu")
    >>> m.card.parameterisation, len(m.card.target_psd) > 0
    ('edm', True)
    """
    from .nn.training import TrainConfig, fit

    check_choice(parameterisation, "parameterisation", PARAMETERISATIONS)
    check_choice(transform, "transform", ("identity", "log"))
    check_int(iterations, "iterations", 1)
    check_int(batch_size, "batch_size", 1)
    check_int(crop, "crop", 4)
    if not 0 < min_valid <= 1:
        raise ValueError(f"min_valid must be in (0, 1], got {min_valid!r}")
    _check_writable(output, "output")
    _check_writable(checkpoint, "checkpoint")
    raw, arrays, info = _fields(da, spatial_dims)
    opts: dict[str, Any] = {
        "parameterisation": parameterisation,
        "transform": transform,
        "scale_range": scale_range,
        "sigma_data": sigma_data,
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
        "channels": channels,
        "num_res_blocks": num_res_blocks,
        "attention": attention,
        "dropout": dropout,
        "periodic": periodic,
    }
    init_state, init_info = None, None
    if init is not None:
        base, init_state, init_info = _init_from(init, opts)
        opts.update(base)
    per_y, per_x = _periodic(opts["periodic"], info)
    fields, (smin, smax) = _model_space(raw, opts["transform"], opts["scale_range"])
    if init_info is not None and smin is not None:
        from .models.card import ModelCard

        inside = ModelCard(transform=opts["transform"], scale_min=smin, scale_max=smax)
        _check_inside_range(fields, raw, inside, init_info)
    sd = opts["sigma_data"]
    if sd is None:
        vals = [f[np.isfinite(f)] for f in fields]
        stride = max(1, sum(v.size for v in vals) // 4_000_000)  # an even subsample of all fields
        sd = float(np.std(np.concatenate([v[::stride] for v in vals])))
    kind = opts["parameterisation"]
    pm, ps = _DEFAULT_NOISE[kind]
    cfg = TrainConfig(
        kind=kind,
        steps=int(iterations),
        batch_size=int(batch_size),
        crop=int(crop),
        lr=float(lr),
        channels=tuple(int(c) for c in opts["channels"]),
        num_res_blocks=opts["num_res_blocks"],
        attention=bool(opts["attention"]),
        dropout=float(opts["dropout"]),
        periodic_x=per_x,
        periodic_y=per_y,
        flips=bool(flips),
        sigma_data=float(sd),
        sigma_min=float(opts["sigma_min"]),
        sigma_max=float(opts["sigma_max"]),
        p_mean=pm if p_mean is None else float(p_mean),
        p_std=ps if p_std is None else float(p_std),
        ema=float(ema),
        min_valid=float(min_valid),
        seed=int(seed),
        init="" if init_info is None else init_info["sha256"],
        checkpoint_every=float(checkpoint_every),
        time_limit=time_limit,
        progress=progress,
        device=device,
        precision=precision,
    )
    if init_state is not None:
        _check_same_network(cfg, init_info)
    state = fit(fields, cfg, checkpoint=checkpoint, resume=resume, init_state=init_state)
    size = psd_size or (
        max(crop, 128) if all(min(f.shape[1:]) >= max(crop, 128) for f in fields) else crop
    )
    k, p, n_win = _target_psd(fields, int(size), min_valid, seed)
    training = _training_notes(
        state, cfg, arrays, flips, f"{n_win} windows of {size}x{size}", init_info
    )
    d = _card(
        {"name": name, **(card or {})},
        arrays[0],
        info,
        cfg,
        state,
        training,
        opts["transform"],
        (smin, smax),
        factors,
        per_x,
        k,
        p,
    )
    return _finish(state, d, output)


def _periodic(periodic: Any, info) -> tuple[bool, bool]:
    if isinstance(periodic, str):
        if periodic != "auto":
            raise ValueError(
                f"periodic={periodic!r} is not understood; use 'auto' or (bool, bool) for (y, x)"
            )
        return False, bool(info.periodic_x)
    try:
        per_y, per_x = (bool(v) for v in periodic)
    except (TypeError, ValueError):
        raise ValueError(
            f"periodic={periodic!r} is not understood; use 'auto' or (bool, bool) for (y, x)"
        ) from None
    return per_y, per_x


def _model_space(raw, transform, scale_range):
    """The fields in the model's space: transform, then min/max scaling (Hess et al.); NaN kept."""
    from .models.card import ModelCard

    model_space = [ModelCard(transform=transform).forward_transform(f) for f in raw]
    if isinstance(scale_range, str):
        if scale_range != "auto":
            raise ValueError(
                f"scale_range={scale_range!r} is not understood; use 'auto', (min, max) or None"
            )
        lo = float(min(np.nanmin(m) for m in model_space))
        hi = float(max(np.nanmax(m) for m in model_space))
        if not hi > lo:
            raise ValueError(
                f"the training data are constant ({lo:g}) after the transform; nothing to learn"
            )
        scale_range = (lo, hi)
    if scale_range is None:
        return model_space, (None, None)
    smin, smax = float(scale_range[0]), float(scale_range[1])
    scaling = ModelCard(transform="identity", scale_min=smin, scale_max=smax)
    return [scaling.forward_transform(m) for m in model_space], (smin, smax)


def _training_notes(state, cfg, arrays, flips, psd_windows, init_info) -> dict[str, Any]:
    n_avg = max(1, min(len(state.losses) // 4, 100))  # loss averaged over the first/last steps
    head, tail = state.losses[:n_avg], state.losses[-n_avg:]
    training = {
        "objective": "EDM denoising loss"
        if cfg.kind == "edm"
        else "improved consistency training (pseudo-Huber, log-normal indices, curriculum)",
        "steps": state.step,
        "steps_planned": cfg.steps,
        "finished": state.finished,
        "batch_size": cfg.batch_size,
        "crop": cfg.crop,
        "lr": cfg.lr,
        "ema": cfg.ema,
        "noise": {"p_mean": cfg.p_mean, "p_std": cfg.p_std},
        "seed": cfg.seed,
        "min_valid": cfg.min_valid,
        "augmentation": "random crops" + (", x/y flips" if flips else ""),
        "initial_loss": float(np.mean(head)) if len(head) else None,
        "final_loss": float(np.mean(tail)) if len(tail) else None,
        "seconds": round(state.seconds, 1),
        "device": state.device,
        "hardware": _cpu_name() if state.device == "cpu" else state.device,
        "precision": state.info["precision"],
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "arrays": [f"{a.name or 'field'} {dict(a.sizes)}" for a in arrays],
        "target_psd_windows": psd_windows,
        "parameters": sum(q.numel() for q in state.denoiser.parameters()),
    }
    if init_info is not None:
        training["init"] = {k: init_info[k] for k in ("name", "sha256", "steps")}
    return training


def _card(card, first, info, cfg, state, training, transform, scaling, factors, per_x, k, p):
    extra = dict(card or {})
    training.update(dict(extra.pop("training", {}) or {}))
    smin, smax = scaling
    spacing = info.spacing
    return {
        "name": extra.pop("name", None) or "my-model",
        "variable": extra.pop("variable", first.name),
        "standard_name": extra.pop("standard_name", first.attrs.get("standard_name")),
        "units": extra.pop("units", first.attrs.get("units")),
        "transform": transform,
        "scale_min": smin,
        "scale_max": smax,
        "sigma_data": cfg.sigma_data,
        "sigma_min": cfg.sigma_min,
        "sigma_max": cfg.sigma_max,
        "parameterisation": cfg.kind,
        "factors": tuple(int(f) for f in factors),
        "pixel_size": extra.pop("pixel_size", spacing),
        "pixel_units": extra.pop("pixel_units", info.units if spacing else None),
        "periodic_x": per_x,
        "target_psd_wavenumber": k,
        "target_psd": p,
        "extra": {
            "version": str(extra.pop("version", "0")),
            "description": extra.pop(
                "description", f"{cfg.kind} model trained with xdownscale.train"
            ),
            "licence": extra.pop("licence", "not stated"),
            "network": {"class": "UNet", "config": state.denoiser.net.config},
            "training": training,
            "metrics": extra.pop("metrics", {}),
            # the scaled training data lie in [-1, 1]: so does the ideal denoiser's output
            **({"output_range": [-1.0, 1.0]} if smin is not None else {}),
            **extra,
        },
    }


def _finish(state, d: dict[str, Any], output) -> DownscalingModel:
    from .models.card import ModelCard
    from .models.io import bounded, save
    from .nn.model import DownscalingModel

    model_card = ModelCard.from_dict(d)
    model = DownscalingModel(bounded(state.denoiser, model_card), model_card)
    if output is not None:
        from .models.io import read_weights

        save(model, output, overwrite=True)
        model_card = read_weights(output)[0]  # with the file's and the tensors' hashes
        model = DownscalingModel(model.denoiser, model_card)  # token from the file's hash
        model.source = f"path:{os.path.abspath(output)}"
    return model


if __name__ == "__main__":  # pragma: no cover - the old entry point
    import sys

    sys.exit(
        "python -m xdownscale.train was replaced by the command `xdownscale train FILES --var V "
        "--output OUT ...` (see `xdownscale train --help`)"
    )
