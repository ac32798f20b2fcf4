"""Preconditioning wrappers that turn a raw network ``F`` into a denoiser or a consistency model.

Both wrappers share the call ``model(x, sigma) -> x_hat`` (``x`` of shape ``(B, C, H, W)``,
``sigma`` a number or a ``(B,)`` tensor) and expose ``parameterisation``, ``sigma_data``,
``sigma_min`` and ``sigma_max``, which the samplers and :mod:`xdownscale.sampling` read.
Karras et al. (2022), arXiv:2206.00364, and Song et al. (2023), arXiv:2303.01469.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["ConsistencyModel", "EDMDenoiser", "as_sigma"]


def as_sigma(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast ``sigma`` (number, 0-d or ``(B,)``) to shape ``(B, 1, 1, 1)`` like ``x``."""
    dtype = x.dtype if x.dtype == torch.float64 else torch.float32
    s = torch.as_tensor(sigma, dtype=dtype, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(
            f"sigma must be a number or have shape (batch,) = ({x.shape[0]},), got {tuple(s.shape)}"
        )
    return s.reshape(-1, *([1] * (x.ndim - 1)))


class _Preconditioned(nn.Module):
    parameterisation = ""

    def __init__(
        self, net: nn.Module, *, sigma_data: float, sigma_min: float, sigma_max: float
    ) -> None:
        super().__init__()
        if not (sigma_data > 0 and 0 < sigma_min < sigma_max):
            raise ValueError(
                f"need sigma_data > 0 and 0 < sigma_min < sigma_max, got sigma_data={sigma_data}, "
                f"sigma_min={sigma_min}, sigma_max={sigma_max}"
            )
        self.net = net
        self.sigma_data = float(sigma_data)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the wrapper around ``net`` (for a model card)."""
        return {
            "parameterisation": self.parameterisation,
            "sigma_data": self.sigma_data,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
        }

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(c_skip, c_out, c_in, c_noise)`` at noise level ``sigma``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        s = as_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = self.coefficients(s)
        f = self.net((c_in * x).to(x.dtype), c_noise.reshape(-1))
        return c_skip * x + c_out * f.to(x.dtype)


class EDMDenoiser(_Preconditioned):
    """EDM denoiser ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise)`` [Karras et al. 2022].

    Parameters
    ----------
    net : torch.nn.Module
        Raw network ``F(x, c_noise)``, e.g. :class:`xdownscale.nn.UNet`.
    sigma_data : float
        Standard deviation of the (transformed) training data; 0.5 for data scaled to [-1, 1].
    sigma_min, sigma_max : float
        Noise range the network was trained on (EDM: 0.002 and 80).

    Notes
    -----
    ``c_skip = sd^2/(sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
    ``c_in = 1/sqrt(sigma^2 + sd^2)``, ``c_noise = ln(sigma)/4`` with ``sd = sigma_data``
    (Karras et al. 2022, Table 1). Trained with the weight ``(sigma^2 + sd^2)/(sigma sd)^2`` it
    estimates ``E[x_0 | x_0 + sigma n = x]``.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.nn import UNet
    >>> d = EDMDenoiser(UNet(channels=(8,), attention=False))
    >>> d(torch.zeros(2, 1, 8, 8), 1.0).shape
    torch.Size([2, 1, 8, 8])
    """

    parameterisation = "edm"

    def __init__(
        self,
        net: nn.Module,
        *,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ) -> None:
        super().__init__(net, sigma_data=sigma_data, sigma_min=sigma_min, sigma_max=sigma_max)

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sd = self.sigma_data
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = sigma * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1.0 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4.0
        return c_skip, c_out, c_in, c_noise


class ConsistencyModel(_Preconditioned):
    """Consistency function ``f(x, t) = c_skip(t) x + c_out(t) F(c_in x, c_noise)`` [CM23].

    Parameters
    ----------
    net : torch.nn.Module
        Raw network ``F(x, c_noise)``.
    sigma_data : float
        Standard deviation of the (transformed) training data (Hess et al.: 0.5).
    sigma_min : float
        The boundary time epsilon where ``f(x, epsilon) = x`` (0.002).
    sigma_max : float
        Largest time T the model was trained on (80).

    Notes
    -----
    ``c_skip = sd^2/((t - eps)^2 + sd^2)``, ``c_out = sd (t - eps)/sqrt(sd^2 + t^2)`` (so that
    ``f(x, eps) = x`` exactly), with EDM's ``c_in = 1/sqrt(t^2 + sd^2)`` and
    ``c_noise = ln(t)/4``; ``sigma(t) = t`` (Song et al. 2023, appendix C).

    Examples
    --------
    >>> import torch
    >>> from xdownscale.nn import UNet
    >>> f = ConsistencyModel(UNet(channels=(8,), attention=False))
    >>> x = torch.randn(2, 1, 8, 8)
    >>> bool(torch.allclose(f(x, f.sigma_min), x))
    True
    """

    parameterisation = "consistency"

    def __init__(
        self,
        net: nn.Module,
        *,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ) -> None:
        super().__init__(net, sigma_data=sigma_data, sigma_min=sigma_min, sigma_max=sigma_max)

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sd, eps = self.sigma_data, self.sigma_min
        c_skip = sd**2 / ((sigma - eps) ** 2 + sd**2)
        c_out = sd * (sigma - eps) / (sd**2 + sigma**2).sqrt()
        c_in = 1.0 / (sigma**2 + sd**2).sqrt()
        c_noise = sigma.log() / 4.0
        return c_skip, c_out, c_in, c_noise
