"""Torch core of :func:`xdownscale.train`: arrays in, trained denoiser out (no xarray).

Two objectives share one loop (random crops and flips, NaN-masked loss, EMA, checkpoints,
resume, seeded):

- ``"edm"``: the EDM denoising loss [Karras et al. 2022] with ``ln sigma ~ N(P_mean, P_std^2)``
  clipped to ``[sigma_min, sigma_max]`` and weight ``(sigma^2 + sd^2)/(sigma sd)^2``;
- ``"consistency"``: improved consistency training [Song & Dhariwal 2023] — pseudo-Huber
  distance with ``c = 0.00054 sqrt(d)``, weight ``1/(sigma_{i+1} - sigma_i)``, noise indices
  from a discretised log-normal, curriculum ``N(k) = min(s0 2^floor(k/K'), s1) + 1``, the target
  from the current weights under stop-gradient (the EMA is for evaluation only).

Karras et al. (2022), Song & Dhariwal (2023).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .networks import UNet
from .precondition import ConsistencyModel, EDMDenoiser
from .samplers import sigmas_karras

__all__ = [
    "TrainConfig",
    "TrainState",
    "build_network",
    "fit",
    "ict_discretisation",
    "ict_index_probabilities",
]

CHECKPOINT_FORMAT = "xdownscale-checkpoint"
# options that may change between sittings without invalidating a checkpoint
_RESUMABLE = {
    "steps",
    "checkpoint_every",
    "log_every",
    "time_limit",
    "progress",
    "device",
    "precision",
}


@dataclass
class TrainConfig:
    """Options of :func:`fit` (see :func:`xdownscale.train` for their meaning)."""

    kind: str = "edm"
    steps: int = 2000
    batch_size: int = 32
    crop: int = 64
    lr: float = 2e-4
    channels: tuple[int, ...] = (32, 64, 64)
    num_res_blocks: int = 1
    attention: bool = False
    dropout: float = 0.0
    periodic_x: bool = False
    periodic_y: bool = False
    flips: bool = True
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    p_mean: float = -1.2
    p_std: float = 1.2
    ema: float = 0.999
    ict_s0: int = 10
    ict_s1: int = 1280
    min_valid: float = 0.9
    warmup: int = 100
    grad_clip: float = 1.0
    seed: int = 0
    init: str = ""  # sha256 of the weights training started from ("" = random initialisation)
    checkpoint_every: float = 300.0
    log_every: int = 50
    time_limit: float | None = None
    progress: bool = True
    device: str = "auto"
    precision: str = "auto"

    def identity(self) -> dict[str, Any]:
        """The options a checkpoint must agree on to be resumed."""
        d = dataclasses.asdict(self)
        d["channels"] = list(d["channels"])
        return {k: v for k, v in d.items() if k not in _RESUMABLE}


@dataclass
class TrainState:
    """What :func:`fit` returns."""

    denoiser: torch.nn.Module  # EMA weights, on the CPU, eval mode
    raw: torch.nn.Module  # the optimised (non-EMA) weights
    step: int
    losses: np.ndarray
    seconds: float
    device: str
    finished: bool
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- iCT schedule


def ict_discretisation(k: int, total: int, s0: int = 10, s1: int = 1280) -> int:
    """Number of discretisation points ``N(k) = min(s0 2^floor(k/K'), s1) + 1`` [iCT23].

    ``K' = floor(total / (log2(s1/s0) + 1))``.

    Examples
    --------
    >>> [ict_discretisation(k, 800, 10, 80) for k in (0, 199, 200, 799)]
    [11, 11, 21, 81]
    """
    kp = max(1, math.floor(total / (math.log2(s1 / s0) + 1)))
    return min(s0 * 2 ** (k // kp), s1) + 1


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Ascending EDM grid of ``n`` noise levels from ``sigma_min`` to ``sigma_max`` (float64):
    :func:`xdownscale.nn.samplers.sigmas_karras` without its final 0, in ascending order."""
    return sigmas_karras(n, sigma_min, sigma_max, rho)[:-1].flip(0)


def ict_index_probabilities(sigmas: torch.Tensor, p_mean: float, p_std: float) -> torch.Tensor:
    """Discretised log-normal over the ``N - 1`` intervals of an ascending grid [iCT23].

    ``p(i) ∝ erf((ln s_{i+1} - P_mean)/(sqrt2 P_std)) - erf((ln s_i - P_mean)/(sqrt2 P_std))``.

    Examples
    --------
    >>> p = ict_index_probabilities(karras(11, 0.002, 80.0), -1.1, 2.0)
    >>> p.shape, round(float(p.sum()), 6)
    (torch.Size([10]), 1.0)
    """
    e = torch.erf((torch.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))
    p = (e[1:] - e[:-1]).clamp_min(0)
    return p / p.sum()


# ----------------------------------------------------------------------------- data


class CropSampler:
    """Random crops (and flips) of NaN-masked fields, drawn with one torch generator.

    ``fields`` is a list of float32 arrays ``(n_i, H_i, W_i)`` in model space (NaN = missing).
    A crop is accepted when at least ``min_valid`` of its cells are valid; its NaN cells are
    filled with its mean of valid cells (as the sampler does) and masked out of the loss.
    """

    def __init__(
        self, fields: Sequence[np.ndarray], crop: int, min_valid: float, flips: bool = True
    ) -> None:
        self.flips = flips
        self.fields = [np.ascontiguousarray(f, dtype=np.float32) for f in fields]
        self.crop = crop
        self.min_valid = min_valid
        sizes = []
        for f in self.fields:
            if f.ndim != 3 or f.shape[1] < crop or f.shape[2] < crop:
                raise ValueError(
                    f"every training field must be at least crop={crop} cells along y and x, got "
                    f"one of shape {f.shape[1:]}; pass a smaller crop=<int>"
                )
            sizes.append(f.shape[0] * (f.shape[1] - crop + 1) * (f.shape[2] - crop + 1))
        self.weights = torch.tensor(sizes, dtype=torch.float64)

    def __call__(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.crop
        out = np.empty((n, 1, c, c), np.float32)
        got, tries = 0, 0
        while got < n:
            tries += 1
            if tries > 200 * n:
                raise ValueError(
                    f"could not find crops of {c}x{c} cells with at least {self.min_valid:.0%} "
                    f"valid (non-NaN) cells in {200 * n} tries; lower min_valid= or crop="
                )
            a = int(torch.multinomial(self.weights, 1, generator=gen))
            f = self.fields[a]
            t = int(torch.randint(f.shape[0], (1,), generator=gen))
            i = int(torch.randint(f.shape[1] - c + 1, (1,), generator=gen))
            j = int(torch.randint(f.shape[2] - c + 1, (1,), generator=gen))
            patch = f[t, i : i + c, j : j + c]
            valid = np.isfinite(patch)
            if valid.mean() < self.min_valid:
                continue
            flips = torch.randint(2, (2,), generator=gen).tolist() if self.flips else [0, 0]
            if flips[0]:
                patch = patch[::-1]
            if flips[1]:
                patch = patch[:, ::-1]
            out[got, 0] = patch
            got += 1
        x = torch.from_numpy(out)
        mask = torch.isfinite(x)
        fill = torch.where(mask, x, 0).sum((-2, -1), keepdim=True) / mask.sum(
            (-2, -1), keepdim=True
        )
        return torch.where(mask, x, fill), mask.float()


# ----------------------------------------------------------------------------- losses


def _masked_mean(a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of ``a`` over valid cells, shape ``(B,)``."""
    return (a * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp_min(1)


def edm_loss(den, x, mask, gen, cfg: TrainConfig) -> torch.Tensor:
    """EDM loss ``lambda(sigma) |D(x + sigma n, sigma) - x|^2`` over valid cells."""
    b = x.shape[0]
    ln = cfg.p_mean + cfg.p_std * torch.randn(b, generator=gen)
    sigma = ln.exp().clamp(cfg.sigma_min, cfg.sigma_max).to(x.device)
    n = torch.randn(x.shape, generator=gen).to(x.device)
    sd = cfg.sigma_data
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    d = den(x + sigma[:, None, None, None] * n, sigma)
    return (weight * _masked_mean((d.float() - x) ** 2, mask)).mean()


def ict_loss(den, x, mask, gen, cfg: TrainConfig, step: int) -> torch.Tensor:
    """Improved consistency training loss (pseudo-Huber, log-normal indices, curriculum)."""
    b = x.shape[0]
    n_disc = ict_discretisation(step, cfg.steps, cfg.ict_s0, cfg.ict_s1)
    sig = karras(n_disc, cfg.sigma_min, cfg.sigma_max)
    p = ict_index_probabilities(sig, cfg.p_mean, cfg.p_std)
    i = torch.multinomial(p, b, replacement=True, generator=gen)
    s_lo, s_hi = sig[i].float().to(x.device), sig[i + 1].float().to(x.device)
    z = torch.randn(x.shape, generator=gen).to(x.device)
    r = lambda s: s[:, None, None, None]  # noqa: E731
    out = den(x + r(s_hi) * z, s_hi).float()
    with torch.no_grad():
        target = den(x + r(s_lo) * z, s_lo).float()
    dim = x[0].numel()
    c = 0.00054 * math.sqrt(dim)
    sq = _masked_mean((out - target) ** 2, mask) * dim
    dist = (sq + c**2).sqrt() - c
    return (dist / (s_hi - s_lo)).mean()


# ----------------------------------------------------------------------------- loop


def build_network(cfg: TrainConfig) -> torch.nn.Module:
    """The untrained denoiser (UNet in its preconditioning wrapper) that ``cfg`` describes."""
    net = UNet(
        1,
        1,
        cfg.channels,
        num_res_blocks=cfg.num_res_blocks,
        attention=cfg.attention,
        periodic_x=cfg.periodic_x,
        periodic_y=cfg.periodic_y,
        dropout=cfg.dropout,
    )
    wrapper = EDMDenoiser if cfg.kind == "edm" else ConsistencyModel
    return wrapper(net, sigma_data=cfg.sigma_data, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max)


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_checkpoint(path: Path, cfg: TrainConfig) -> dict[str, Any]:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # never pass on torch's advice to retry with weights_only=False: the file may run code
        raise ValueError(
            f"refused to read checkpoint {str(path)!r}: it holds Python objects other than "
            "tensors and plain values - a pickle that could run code - and is not an xdownscale "
            "training checkpoint; it was not loaded. Delete it to start afresh, or pass "
            "resume=False or another checkpoint="
        ) from None
    except Exception as err:
        raise ValueError(
            f"checkpoint {str(path)!r} cannot be read ({str(err).splitlines()[0][:200]}); delete "
            "it to start afresh, or pass resume=False"
        ) from err
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not an xdownscale training checkpoint; pass another checkpoint="
        )
    # options added to TrainConfig after the checkpoint was written count as their defaults
    saved = {**TrainConfig().identity(), **json.loads(ck["config"])}
    now = cfg.identity()
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
        raise ValueError(
            f"checkpoint {str(path)!r} was written with other options ({detail}); pass the same "
            "options to resume, or resume=False (or another checkpoint=) to start afresh"
        )
    return ck


class _Progress:
    def __init__(self, cfg: TrainConfig, start: int) -> None:
        self.bar = None
        self.cfg = cfg
        if cfg.progress and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=cfg.steps, initial=start, desc=f"train {cfg.kind}", unit="step"
                )
            except ImportError:
                pass

    def update(self, step: int, loss: float, rate: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", samples_s=f"{rate:.1f}", refresh=False)
        elif self.cfg.progress and (step % self.cfg.log_every == 0 or step == self.cfg.steps):
            print(
                f"step {step}/{self.cfg.steps}  loss {loss:.4g}  {rate:.1f} samples/s", flush=True
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fit(
    fields: Sequence[np.ndarray],
    cfg: TrainConfig,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainState:
    """Train a denoiser on ``fields`` (model space, NaN = missing) and return its state.

    Runs until ``cfg.steps`` or ``cfg.time_limit`` seconds (then checkpoints, so a later call
    with ``resume=True`` continues where this one stopped). ``init_state``: the state dict of
    the (unbounded) denoiser to start from — fine-tuning; its hash belongs in ``cfg.init``.
    """
    from .device import resolve_device

    device = resolve_device(cfg.device)
    precision = cfg.precision
    if precision == "auto":
        precision = (
            "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
        )
    if precision not in ("float32", "bfloat16"):
        raise ValueError(
            f"precision={cfg.precision!r} is not supported; use 'auto', 'float32' or 'bfloat16'"
        )
    sampler = CropSampler(fields, cfg.crop, cfg.min_valid, cfg.flips)
    torch.manual_seed(cfg.seed)  # dropout, if any
    den = build_network(cfg)
    if init_state is not None:
        den.load_state_dict(init_state)
    den = den.to(device)
    ema = copy.deepcopy(den).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(den.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, losses, seconds = 0, [], 0.0
    ck_path = None if checkpoint is None else Path(checkpoint)
    if ck_path is not None and resume and ck_path.exists():
        ck = _load_checkpoint(ck_path, cfg)
        den.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        start = int(ck["step"])
        losses = ck["losses"].tolist()
        seconds = float(ck["seconds"])
        torch.set_rng_state(ck["torch_rng"])

    def write_checkpoint(step: int, elapsed: float) -> None:
        if ck_path is None:
            return
        _save_checkpoint(
            ck_path,
            {
                "format": CHECKPOINT_FORMAT,
                "config": json.dumps(cfg.identity(), sort_keys=True),
                "step": step,
                "model": den.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": opt.state_dict(),
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "losses": torch.tensor(losses, dtype=torch.float64),
                "seconds": elapsed,
            },
        )

    progress = _Progress(cfg, start)
    t0 = time.perf_counter()
    last_ck = t0
    step = start
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
    den.train()
    try:
        while step < cfg.steps:
            tick = time.perf_counter()
            x, mask = sampler(cfg.batch_size, gen)
            x, mask = x.to(device), mask.to(device)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
            with autocast:
                if cfg.kind == "edm":
                    loss = edm_loss(den, x, mask, gen, cfg)
                else:
                    loss = ict_loss(den, x, mask, gen, cfg, step)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss became {float(loss)} at step {step}; lower lr= "
                    f"(now {cfg.lr:g}) or check the data for infinities"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(den.parameters(), cfg.grad_clip)
            opt.step()
            decay = min(cfg.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), den.parameters(), strict=True):
                    pe.lerp_(p, 1.0 - decay)
            step += 1
            losses.append(float(loss.detach()))
            now = time.perf_counter()
            progress.update(
                step, float(np.mean(losses[-cfg.log_every :])), cfg.batch_size / (now - tick)
            )
            if on_step is not None:
                on_step(step, float(loss))
            if now - last_ck > cfg.checkpoint_every:
                write_checkpoint(step, seconds + now - t0)
                last_ck = now
            if cfg.time_limit is not None and now - t0 > cfg.time_limit:
                break
    finally:
        progress.close()
    elapsed = seconds + time.perf_counter() - t0
    write_checkpoint(step, elapsed)
    out = copy.deepcopy(ema).to("cpu").eval()
    raw = copy.deepcopy(den).to("cpu").eval()
    return TrainState(
        out,
        raw,
        step,
        np.asarray(losses),
        elapsed,
        str(device),
        step >= cfg.steps,
        {"precision": precision},
    )
