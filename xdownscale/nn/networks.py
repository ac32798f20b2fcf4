"""Network architectures (torch only; no xarray, no preconditioning).

The UNet maps ``(x, c_noise) -> F`` for fields of shape ``(batch, channels, y, x)``; the noise
conditioning and the output scaling live in :mod:`xdownscale.nn.precondition`
(architecture and preconditioning are kept apart, as in NVlabs/edm ``networks.py``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "periodic_in_x"]


def _groups(channels: int, groups: int) -> int:
    return math.gcd(channels, groups)


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
    ``nn.Conv2d(cin, cout, 1)``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = self.weight[:, :, 0, 0].to(x.dtype) @ x.reshape(b, c, h * w)
        assert self.bias is not None  # always built with a bias
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
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[index][:, :, None, None].to(h.dtype)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


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

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """Apply the network to ``x`` ``(B, C, H, W)`` with the noise input ``c_noise`` ``(B,)``."""
        if x.ndim != 4:
            raise ValueError(f"expected x of shape (batch, channels, y, x), got {tuple(x.shape)}")
        ny, nx = x.shape[-2:]
        py, px = self._padding(ny), self._padding(nx)
        h = _pad(x, py, px, self.periodic_x, self.periodic_y)
        c_noise = torch.as_tensor(c_noise, device=x.device).reshape(-1).expand(x.shape[0])
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
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), emb, index)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return h[..., py[0] : py[0] + ny, px[0] : px[0] + nx]
