"""Network architectures (torch only; no xarray, no preconditioning).

The UNet maps ``(x, c_noise) -> F`` for fields of shape ``(batch, channels, y, x)``; the noise
conditioning and the output scaling live in :mod:`xdownscale.nn.precondition`
(architecture and preconditioning are kept apart, as in NVlabs/edm ``networks.py``).
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "periodic_in_x", "tune_malloc"]

#: Bytes of one full-resolution activation per network call that the automatic micro-batch
#: aims at (see :meth:`UNet.micro_batch_size`): a few of them fit in a CPU's last-level cache.
MICRO_BATCH_BYTES = 16 * 2**20

_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _groups(channels: int, groups: int) -> int:
    return math.gcd(channels, groups)


_MALLOC_TUNED: bool | None = None


def tune_malloc(mmap_threshold: int = 64 * 2**20, trim_threshold: int = 256 * 2**20) -> bool:
    """Serve activations from glibc's heap and keep up to ``trim_threshold`` bytes of freed
    memory there (process-wide; Linux with glibc only; once per process).

    By default glibc returns a freed block of several MiB to the OS and the next activation is
    faulted in again page by page: on a virtual machine that costs about as much time as the
    arithmetic of a small UNet. Set ``XDOWNSCALE_TUNE_MALLOC=0`` to leave malloc alone (the
    same can be had without this function by starting Python with
    ``MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456``). Returns whether the
    settings are in effect.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED is None:
        _MALLOC_TUNED = False
        if sys.platform.startswith("linux") and os.environ.get("XDOWNSCALE_TUNE_MALLOC") != "0":
            try:
                libc = ctypes.CDLL("libc.so.6")
                # M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1 (malloc.h)
                _MALLOC_TUNED = bool(libc.mallopt(-3, int(mmap_threshold))) and bool(
                    libc.mallopt(-1, int(trim_threshold))
                )
            except (OSError, AttributeError):
                pass
    return _MALLOC_TUNED


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads for the micro-batches of a CPU evaluation."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="xds-unet")
        return pool


def _one_thread(fn, *args):
    """``fn(*args)`` in a pool thread with one intra-op torch thread and no autograd.

    ``torch.set_num_threads`` sets the OpenMP and MKL thread counts of the calling thread only,
    and the process-wide default is restored by the caller afterwards.
    """
    torch.set_num_threads(1)
    with torch.no_grad():
        return fn(*args)


def _inference(x: torch.Tensor) -> bool:
    """The fast CPU evaluation applies: no autograd (training keeps the plain code)."""
    return x.device.type == "cpu" and not torch.is_grad_enabled()


def _fusable(x: torch.Tensor, periodic_x: bool, periodic_y: bool) -> bool:
    """Whether SiLU can write straight into the interior of a padded buffer with the very same
    bits as ``F.pad(F.silu(x))``: the rows must be a multiple of the SIMD loop's step (an
    element in a row's tail would take the scalar ``exp``, which rounds differently), and the
    one-pixel pad must be a reflection or a wrap-around (not the replicate fallback)."""
    h, w = x.shape[-2:]
    return (
        _inference(x)
        and x.is_contiguous()
        and w % 64 == 0
        and (periodic_y or h > 1)
        and (periodic_x or w > 1)
    )


def _fill_border(buf: torch.Tensor, periodic_x: bool, periodic_y: bool) -> None:
    """Fill the one-pixel border of ``buf`` ``(B, C, H + 2, W + 2)`` from its interior in place:
    the values of ``_pad(interior, (1, 1), (1, 1), ...)`` (every border pixel is a copy of one
    interior pixel, so the order of the copies does not matter)."""
    if periodic_y:
        buf[:, :, 0, 1:-1] = buf[:, :, -2, 1:-1]
        buf[:, :, -1, 1:-1] = buf[:, :, 1, 1:-1]
    else:
        buf[:, :, 0, 1:-1] = buf[:, :, 2, 1:-1]
        buf[:, :, -1, 1:-1] = buf[:, :, -3, 1:-1]
    if periodic_x:
        buf[:, :, :, 0] = buf[:, :, :, -2]
        buf[:, :, :, -1] = buf[:, :, :, 1]
    else:
        buf[:, :, :, 0] = buf[:, :, :, 2]
        buf[:, :, :, -1] = buf[:, :, :, -3]


def _norm_act_conv(x: torch.Tensor, norm: nn.GroupNorm, conv: Conv3x3) -> torch.Tensor:
    """``conv(silu(norm(x)))``; in inference SiLU writes into the interior of the padded input
    of the convolution (no separate padding pass over the whole tensor), same bits."""
    y = norm(x)
    if not _fusable(y, conv.periodic_x, conv.periodic_y):
        return conv(F.silu(y))
    b, c, h, w = y.shape
    buf = torch.empty((b, c, h + 2, w + 2), dtype=y.dtype, device=y.device)
    torch.ops.aten.silu.out(y, out=buf[:, :, 1:-1, 1:-1])
    _fill_border(buf, conv.periodic_x, conv.periodic_y)
    return conv.conv(buf)


def _upsample_cat(h: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``cat([interpolate(h, scale_factor=2, mode="nearest"), skip], dim=1)``, written once."""
    if not (_inference(h) and skip.shape[-2:] == (2 * h.shape[-2], 2 * h.shape[-1])):
        return torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skip], dim=1)
    b, c1, hh, ww = h.shape
    out = torch.empty((b, c1 + skip.shape[1], 2 * hh, 2 * ww), dtype=h.dtype, device=h.device)
    up = out[:, :c1].unflatten(3, (ww, 2)).unflatten(2, (hh, 2))  # (b, c1, hh, 2, ww, 2)
    up.copy_(h[:, :, :, None, :, None].expand(b, c1, hh, 2, ww, 2))
    out[:, c1:].copy_(skip)
    return out


def _pad(
    x: torch.Tensor,
    py: tuple[int, int],
    px: tuple[int, int],
    periodic_x: bool,
    periodic_y: bool = False,
) -> torch.Tensor:
    """Pad each axis circularly (periodic) or by reflection; replicate if too small."""

    def mode(pad: tuple[int, int], n: int, periodic: bool) -> str:
        if periodic and max(pad) <= n:
            return "circular"
        return "reflect" if max(pad) < n and not periodic else "replicate"

    if any(px):
        x = F.pad(x, (px[0], px[1], 0, 0), mode=mode(px, x.shape[-1], periodic_x))
    if any(py):
        x = F.pad(x, (0, 0, py[0], py[1]), mode=mode(py, x.shape[-2], periodic_y))
    return x


def periodic_in_x(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose convolutions pad circularly along x (a global longitude).

    A network trained on limited-area fields pads by reflection at its borders; on a global
    grid that wraps around, reflection would put a seam at the date line. The weights are
    shared in meaning (the same filters), only the boundary handling changes. ``module`` is
    returned unchanged when nothing in it has a ``periodic_x`` switch or it is already
    periodic.

    Examples
    --------
    >>> net = UNet(channels=(8,), attention=False)
    >>> periodic_in_x(net).conv_in.periodic_x, net.conv_in.periodic_x
    (True, False)
    """
    switches = [m for m in module.modules() if getattr(m, "periodic_x", None) is False]
    if not switches:
        return module
    out = copy.deepcopy(module)
    for m in out.modules():
        if getattr(m, "periodic_x", None) is False:
            setattr(m, "periodic_x", True)  # noqa: B010 (a plain attribute of the module)
    return out


class Linear(nn.Linear):
    """``nn.Linear`` computed row by row (multiply and sum), so a sample's output does not depend
    on how many other samples share its batch (BLAS picks different blockings per batch size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (x.unsqueeze(-2) * self.weight.to(x.dtype)).sum(-1)
        return out + self.bias.to(x.dtype) if self.bias is not None else out


class Conv1x1(nn.Conv2d):
    """1x1 convolution as a per-sample matrix product (same reason as :class:`Linear`: the
    fused kernel's blocking depends on the batch size); state dict as
    ``nn.Conv2d(cin, cout, 1)``. In inference on the CPU: one ``torch.mm`` per sample on views
    of the input and the output (the batched ``@`` copies the transposed input and the
    output); the same shape of product for every sample, whatever the batch."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weight = self.weight[:, :, 0, 0].to(x.dtype)
        assert self.bias is not None  # always built with a bias
        if _inference(x):
            x = x.contiguous()
            out = torch.empty((b, weight.shape[0], h, w), dtype=x.dtype, device=x.device)
            for i in range(b):
                torch.mm(weight, x[i].view(c, h * w), out=out[i].view(-1, h * w))
            return out.add_(self.bias.to(x.dtype)[:, None, None])
        out = weight @ x.reshape(b, c, h * w)
        return (out + self.bias.to(x.dtype)[:, None]).reshape(b, -1, h, w)


class Conv3x3(nn.Module):
    """3x3 convolution with explicit boundary padding: circular along periodic axes, else
    reflection."""

    def __init__(self, cin: int, cout: int, periodic_x: bool, periodic_y: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=0)
        self.periodic_x = periodic_x
        self.periodic_y = periodic_y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_pad(x, (1, 1), (1, 1), self.periodic_x, self.periodic_y))


class NoiseEmbedding(nn.Module):
    """Sinusoidal embedding of ``c_noise`` and a two-layer MLP (EDM ``PositionalEmbedding``)."""

    def __init__(self, channels: int, emb_channels: int, max_positions: int = 10_000) -> None:
        super().__init__()
        half = channels // 2
        freqs = (1.0 / max_positions) ** (torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(
            Linear(2 * half, emb_channels), nn.SiLU(), Linear(emb_channels, emb_channels)
        )

    freqs: torch.Tensor

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        arg = c_noise.float()[:, None] * self.freqs[None, :]
        emb = torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)
        first = self.mlp[0]
        assert isinstance(first, nn.Linear)
        return self.mlp(emb.to(first.weight.dtype))


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus the noise embedding, twice; residual connection."""

    def __init__(
        self,
        cin: int,
        cout: int,
        emb_channels: int,
        groups: int,
        periodic_x: bool,
        dropout: float,
        periodic_y: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin, groups), cin)
        self.conv1 = Conv3x3(cin, cout, periodic_x, periodic_y)
        self.emb = Linear(emb_channels, cout)
        self.norm2 = nn.GroupNorm(_groups(cout, groups), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = Conv3x3(cout, cout, periodic_x, periodic_y)
        self.skip = Conv1x1(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if not _inference(x) or (self.training and self.dropout.p > 0):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.emb(emb)[index][:, :, None, None].to(h.dtype)
            h = self.conv2(self.dropout(F.silu(self.norm2(h))))
            return self.skip(x) + h
        # inference: the same operations, fewer passes over memory (padding fused into SiLU,
        # in-place additions: x + h == h + x exactly)
        h = _norm_act_conv(x, self.norm1, self.conv1)
        h = h.add_(self.emb(emb)[index][:, :, None, None].to(h.dtype))
        h = _norm_act_conv(h, self.norm2, self.conv2)
        if isinstance(self.skip, nn.Identity):
            return h.add_(x)
        return self.skip(x).add_(h)


class Attention(nn.Module):
    """Multi-head self-attention over all pixels (used at the bottleneck)."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(
                f"attention heads={heads} must divide the bottleneck channels {channels}; "
                "pick heads among the divisors of the last entry of channels"
            )
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = Conv1x1(channels, 3 * channels)
        self.proj = Conv1x1(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """UNet ``F(x, c_noise)`` for fields with 1..C channels and any spatial size.

    Parameters
    ----------
    in_channels : int
        Channels of the input field(s).
    out_channels : int, optional
        Channels of the output; default ``in_channels``.
    channels : sequence of int
        Feature channels per resolution level; the field is halved between levels, so the
        spatial size is padded internally to a multiple of ``2 ** (len(channels) - 1)``
        and cropped back. Hess et al. (2024) use ``(128, 128, 256, 256)``.
    num_res_blocks : int
        Residual blocks per level in the encoder (the decoder uses one after each skip).
    attention : bool
        Add a self-attention block at the bottleneck.
    heads : int
        Attention heads.
    groups : int
        GroupNorm groups (reduced to a divisor of each layer's channels).
    periodic_x : bool
        Circular padding along x (a global longitude); reflection is used elsewhere.
    periodic_y : bool
        Circular padding along y too (doubly periodic domains such as Kolmogorov flow).
    dropout : float
        Dropout inside the residual blocks (training only).

    Notes
    -----
    Every 3x3 convolution pads explicitly: circularly along a periodic x, by reflection
    elsewhere, so no zero border is seen. Exact periodicity holds when the x size is a
    multiple of ``2 ** (len(channels) - 1)`` (e.g. 384 for four levels); otherwise x is padded
    by wrapping and the seam is only approximately periodic. ``c_noise`` is embedded with
    sinusoids and a two-layer MLP and added to every residual block (EDM/ADM style).
    Attention memory grows as ``(H W / 4^(L-1))^2`` for L levels: a 240 x 384 field needs four
    levels (1,440 bottleneck tokens), not two (23,040). Linear and 1x1 layers are computed per
    sample, so a sample's output does not depend on the other samples in its batch.

    On the CPU without autograd, the batch is evaluated in micro-batches of
    :meth:`micro_batch_size` samples (a last piece of one runs as two, with a copy: a single
    sample takes other convolution code), which keeps the activations in cache; with more
    than one torch thread the micro-batches (at least one per thread while the batch allows)
    run on separate threads, one intra-op thread each. The results are the same bits for any
    batch size and thread count.

    Examples
    --------
    >>> import torch
    >>> net = UNet(channels=(8, 16), attention=True)
    >>> net(torch.zeros(2, 1, 13, 30), torch.zeros(2)).shape
    torch.Size([2, 1, 13, 30])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: Sequence[int] = (32, 64, 128),
        *,
        num_res_blocks: int = 1,
        attention: bool = True,
        heads: int = 1,
        groups: int = 8,
        periodic_x: bool = False,
        dropout: float = 0.0,
        periodic_y: bool = False,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1 or in_channels < 1 or num_res_blocks < 1:
            raise ValueError(
                f"need in_channels >= 1, num_res_blocks >= 1 and a non-empty channels tuple of "
                f"positive ints, got in_channels={in_channels}, channels={channels}, "
                f"num_res_blocks={num_res_blocks}"
            )
        out_channels = in_channels if out_channels is None else out_channels
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "channels": list(channels),
            "num_res_blocks": num_res_blocks,
            "attention": attention,
            "heads": heads,
            "groups": groups,
            "periodic_x": periodic_x,
            "dropout": dropout,
        }
        if periodic_y:  # only when set: older configs stay valid and unchanged
            self.config["periodic_y"] = True
        self.periodic_x = periodic_x
        self.periodic_y = periodic_y
        self.multiple = 2 ** (len(channels) - 1)
        emb_ch = 4 * channels[0]
        self.embed = NoiseEmbedding(channels[0], emb_ch)
        self.conv_in = Conv3x3(in_channels, channels[0], periodic_x, periodic_y)
        blk: dict[str, Any] = dict(
            emb_channels=emb_ch,
            groups=groups,
            periodic_x=periodic_x,
            dropout=dropout,
            periodic_y=periodic_y,
        )
        self.enc = nn.ModuleList()
        prev = channels[0]
        for c in channels:
            level = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.append(ResBlock(prev, c, **blk))
                prev = c
            self.enc.append(level)
        self.mid1 = ResBlock(prev, prev, **blk)
        self.attn = Attention(prev, heads, groups) if attention else None
        self.mid2 = ResBlock(prev, prev, **blk)
        self.dec = nn.ModuleList()
        for c in reversed(channels):
            self.dec.append(ResBlock(prev + c, c, **blk))
            prev = c
        self.norm_out = nn.GroupNorm(_groups(prev, groups), prev)
        self.conv_out = Conv3x3(prev, out_channels, periodic_x, periodic_y)
        #: Samples per CPU evaluation; None: :meth:`micro_batch_size` (a speed setting only)
        self.micro_batch: int | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> UNet:
        """Rebuild a network from its :attr:`config` (e.g. stored in a model card)."""
        cfg = dict(config)
        return cls(cfg.pop("in_channels"), cfg.pop("out_channels"), cfg.pop("channels"), **cfg)

    def _padding(self, n: int) -> tuple[int, int]:
        m = self.multiple
        target = max(-(-n // m) * m, 2 * m if m > 1 else n)
        extra = target - n
        return extra // 2, extra - extra // 2

    def micro_batch_size(self, ny: int, nx: int) -> int:
        """Samples per CPU evaluation for fields of ``ny x nx``: about
        :data:`MICRO_BATCH_BYTES` per full-resolution activation, a power of two in [2, 64]
        (radar-8x: 4 fields of 256 x 256, 64 of 64 x 64)."""
        if self.micro_batch is not None:
            return max(2, int(self.micro_batch))
        per_sample = (
            4
            * self.config["channels"][0]
            * (ny + sum(self._padding(ny)))
            * (nx + sum(self._padding(nx)))
        )
        n = max(1, MICRO_BATCH_BYTES // max(per_sample, 1))
        return int(min(64, max(2, 2 ** int(math.log2(n)))))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """Apply the network to ``x`` ``(B, C, H, W)`` with the noise input ``c_noise`` ``(B,)``."""
        if x.ndim != 4:
            raise ValueError(f"expected x of shape (batch, channels, y, x), got {tuple(x.shape)}")
        c_noise = torch.as_tensor(c_noise, device=x.device).reshape(-1).expand(x.shape[0])
        if not _inference(x):
            return self._forward(x, c_noise)
        mb = self.micro_batch_size(*x.shape[-2:])
        n = x.shape[0]
        threads = torch.get_num_threads()
        if threads > 1:  # at least one piece per thread while the batch allows
            mb = max(2, min(mb, -(-n // threads)))
        # pieces of mb samples; a last piece of one runs as two (with a copy of itself)
        pieces = []
        for start in range(0, n, mb):
            xs, cs = x[start : start + mb], c_noise[start : start + mb]
            k = xs.shape[0]
            if k == 1:
                xs, cs = xs.expand(2, *xs.shape[1:]), cs.expand(2)
            pieces.append((xs.contiguous(), cs.contiguous(), k))
        if threads > 1:
            # micro-batches side by side, each with one intra-op thread: no OpenMP barriers
            # between cores, so a core busy with other work delays one piece, not every
            # operation (on a loaded 2-core machine a small field ran 20x slower with two
            # intra-op threads); the bits are the same as with one thread
            try:
                outs = list(
                    _pool(min(threads, len(pieces))).map(
                        lambda p: _one_thread(self._forward, p[0], p[1])[: p[2]], pieces
                    )
                )
            finally:
                torch.set_num_threads(threads)  # the process-wide default the workers changed
        else:
            outs = [self._forward(xs, cs)[:k] for xs, cs, k in pieces]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        ny, nx = x.shape[-2:]
        py, px = self._padding(ny), self._padding(nx)
        h = _pad(x, py, px, self.periodic_x, self.periodic_y)
        # embed each distinct noise level once (samplers use one level per batch)
        levels, index = torch.unique(c_noise, return_inverse=True)
        emb = self.embed(levels)
        h = self.conv_in(h)
        skips = []
        for i, level in enumerate(self.enc):
            for block in level:  # type: ignore[attr-defined]
                h = block(h, emb, index)
            skips.append(h)
            if i < len(self.enc) - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid1(h, emb, index)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid2(h, emb, index)
        for i, block in enumerate(self.dec):
            if i > 0:
                h = _upsample_cat(h, skips.pop())
            else:
                h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb, index)
        h = _norm_act_conv(h, self.norm_out, self.conv_out)
        return h[..., py[0] : py[0] + ny, px[0] : px[0] + nx]
