"""Closed-form denoisers of Gaussian data: the test oracle for every sampler.

For data ``x_0 ~ N(mu, Sigma)`` and ``x = x_0 + sigma n``, everything is known exactly:
the optimal denoiser, the probability-flow ODE solution (hence the exact consistency function)
and the posterior under a linear constraint ``A x_0 = y``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from .precondition import as_sigma

__all__ = ["GaussianDenoiser", "block_mean_matrix", "gaussian_posterior"]


class GaussianDenoiser(nn.Module):
    """Exact denoiser (or consistency function) of Gaussian data ``N(mu, Sigma)``.

    Parameters
    ----------
    mean : array-like, shape (C, H, W)
        Data mean ``mu``.
    cov : array-like, shape (d, d) with d = C*H*W
        Data covariance ``Sigma`` (symmetric positive semi-definite), over the flattened field.
    parameterisation : {"edm", "consistency"}
        ``"edm"``: ``D(x, sigma) = E[x_0 | x] = mu + Sigma (Sigma + sigma^2 I)^{-1} (x - mu)``.
        ``"consistency"``: the exact probability-flow ODE map from sigma to ``sigma_min``,
        ``f(x, sigma) = mu + U diag(sqrt((lambda + eps^2)/(lambda + sigma^2))) U^T (x - mu)``
        with ``Sigma = U diag(lambda) U^T``.
    sigma_min, sigma_max : float
        Noise range reported to the samplers (``sigma_min`` is the consistency boundary eps).

    Notes
    -----
    Along each eigenvector the ODE ``dx/dsigma = (x - D(x, sigma))/sigma`` reads
    ``dz/dsigma = sigma z / (lambda + sigma^2)``, so ``z(sigma) ∝ sqrt(lambda + sigma^2)``
    (Karras et al. 2022, eq. 1): the consistency map sends the marginal ``N(mu, Sigma +
    sigma^2 I)`` exactly onto ``N(mu, Sigma + eps^2 I)``. Computed in float64.

    Examples
    --------
    >>> import torch
    >>> d = GaussianDenoiser(torch.zeros(1, 1, 2), torch.diag(torch.tensor([1.0, 4.0])))
    >>> d(torch.ones(1, 1, 1, 2), 1.0).flatten().tolist()
    [0.5, 0.8]
    """

    def __init__(
        self,
        mean,
        cov,
        *,
        parameterisation: Literal["edm", "consistency"] = "edm",
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
    ) -> None:
        super().__init__()
        if parameterisation not in ("edm", "consistency"):
            raise ValueError(
                f"parameterisation={parameterisation!r} is not supported; use 'edm' or "
                "'consistency'"
            )
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float64)
        cov = torch.as_tensor(np.asarray(cov), dtype=torch.float64)
        d = mean.numel()
        if mean.ndim != 3 or cov.shape != (d, d):
            raise ValueError(
                f"mean must have shape (C, H, W) and cov (d, d) with d = C*H*W = {d}; got "
                f"mean {tuple(mean.shape)} and cov {tuple(cov.shape)}"
            )
        lam, vec = torch.linalg.eigh(0.5 * (cov + cov.T))
        self.register_buffer("mean", mean)
        self.register_buffer("lam", lam.clamp_min(0.0))
        self.register_buffer("vec", vec)
        self.parameterisation = parameterisation
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.sigma_data = float(lam.clamp_min(0.0).mean().sqrt())

    mean: torch.Tensor
    lam: torch.Tensor
    vec: torch.Tensor

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        s2 = as_sigma(sigma, x).to(torch.float64).reshape(-1, 1) ** 2
        z = (x.to(torch.float64) - self.mean).flatten(1) @ self.vec
        if self.parameterisation == "edm":
            gain = self.lam / (self.lam + s2)
        else:
            gain = ((self.lam + self.sigma_min**2) / (self.lam + s2)).sqrt()
        out = self.mean + ((z * gain) @ self.vec.T).reshape(x.shape)
        return out.to(x.dtype)


def block_mean_matrix(shape: tuple[int, int], factor: int) -> np.ndarray:
    """The block-mean coarsening operator C' as a matrix over flattened ``(H, W)`` fields.

    Examples
    --------
    >>> block_mean_matrix((2, 4), 2).shape
    (2, 8)
    """
    h, w = shape
    idx = (np.arange(h)[:, None] // factor) * (w // factor) + np.arange(w)[None, :] // factor
    c = np.zeros(((h // factor) * (w // factor), h * w))
    c[idx.ravel(), np.arange(h * w)] = 1.0 / factor**2
    return c


def gaussian_posterior(
    mean: np.ndarray, cov: np.ndarray, a: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``x ~ N(mean, cov)`` conditioned on ``a x = y`` (flattened).

    ``m = mu + S A^T (A S A^T)^{-1} (y - A mu)``, ``P = S - S A^T (A S A^T)^{-1} A S``.

    Examples
    --------
    >>> import numpy as np
    >>> m, p = gaussian_posterior(np.zeros(2), np.eye(2), np.array([[0.5, 0.5]]), np.array([1.0]))
    >>> m.round(3).tolist(), round(float(np.trace(p)), 3)
    ([1.0, 1.0], 1.0)
    """
    mu = np.asarray(mean, dtype=np.float64).ravel()
    s = np.asarray(cov, dtype=np.float64)
    gain = s @ a.T @ np.linalg.inv(a @ s @ a.T)
    return mu + gain @ (np.asarray(y, dtype=np.float64).ravel() - a @ mu), s - gain @ a @ s
