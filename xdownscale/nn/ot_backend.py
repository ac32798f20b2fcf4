"""The torch array backend of the entropic optimal-transport core (:mod:`xdownscale.np_transport`).

The solver and the entropic map are written once against a small backend interface; this one
runs them in float64 through torch, on a CUDA device (or on the CPU, for testing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._memory import available_memory

__all__ = ["TorchBackend"]


class TorchBackend:
    name = "torch"

    def __init__(self, device: str) -> None:
        try:
            import torch
        except ImportError as err:  # pragma: no cover - torch is a dependency
            raise ImportError(
                f"device={device!r} needs torch; install it with `pip install torch`, or pass "
                "device='cpu' for the numpy solver"
            ) from err
        self.torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} asks for CUDA but torch sees no CUDA device; pass "
                "device='cpu' (or 'auto', which picks CUDA only when it is there)"
            )

    def asarray(self, x: Any):
        t = self.torch
        if isinstance(x, t.Tensor):
            return x.to(device=self.device, dtype=t.float64).contiguous()
        return t.as_tensor(np.ascontiguousarray(x, dtype=np.float64), device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def empty(self, shape: tuple[int, ...]):
        return self.torch.empty(shape, dtype=self.torch.float64, device=self.device)

    def full(self, n: int, value: float):
        return self.torch.full((n,), value, dtype=self.torch.float64, device=self.device)

    def sqnorm(self, x):
        return (x * x).sum(dim=1)

    def sqdist_(self, out, x, xx, z, zz):
        t = self.torch
        t.matmul(x, z.T, out=out)
        out.mul_(-2.0).add_(xx[:, None]).add_(zz[None, :]).clamp_(min=0.0)
        return out

    def kernel_(self, out, c, f, g, eps):
        t = self.torch
        t.sub(g[None, :], c, out=out)
        out.add_(f[:, None]).mul_(1.0 / eps).exp_()
        return out

    def softmax_rows_(self, w):
        w.sub_(w.amax(dim=1, keepdim=True)).exp_()
        w.div_(w.sum(dim=1, keepdim=True))
        return w

    def mv(self, k, x):
        return self.torch.mv(k, x)

    def mtv(self, k, x):
        return self.torch.mv(k.T, x)

    def log(self, x):
        return self.torch.log(x)

    def maxabs(self, x) -> float:
        return float(x.abs().max())

    def l1dev(self, a, us) -> float:
        return float((a * (us - 1.0).abs()).sum())

    def isfinite(self, x) -> bool:
        return bool(self.torch.isfinite(x).all())

    def free_memory(self) -> int | None:
        if self.device.type == "cuda":
            free, _total = self.torch.cuda.mem_get_info(self.device)
            return int(free)
        return available_memory()
