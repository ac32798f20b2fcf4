"""The data transforms of the models, written once for numpy, xarray, dask and torch arrays.

``"log"`` is Hess et al. (2024)'s transform for precipitation, ``log(x + eps) - log(eps)`` with
``eps = 1e-4``: 0 maps to 0, and the heavy upper tail is compressed. Its domain is
``x >= 0``: values below 0 (interpolation and low-pass filters ring slightly below 0 near
dry cells) are set to 0 first, and the inverse is clipped at 0. NaN stays NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LOG_EPS", "log_forward", "log_inverse"]

LOG_EPS = 1e-4  # Hess et al. (2024): log(x + 1e-4) - log(1e-4)


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def log_forward(a: Any, eps: float = LOG_EPS) -> Any:
    """``log(max(a, 0) + eps) - log(eps)`` for numpy, xarray (eager or dask) and torch arrays.

    Examples
    --------
    >>> log_forward(np.array([-1.0, 0.0, np.nan])).tolist()
    [0.0, 0.0, nan]
    """
    if _is_torch(a):
        import torch

        return torch.log(a.clamp_min(0.0) + eps) - float(np.log(eps))
    return np.log(np.maximum(a, 0.0) + eps) - float(np.log(eps))


def log_inverse(a: Any, eps: float = LOG_EPS) -> Any:
    """The inverse of :func:`log_forward`, ``max(eps (exp(a) - 1), 0)``.

    Examples
    --------
    >>> x = np.array([0.0, 0.5, 20.0])
    >>> bool(np.allclose(log_inverse(log_forward(x)), x))
    True
    """
    if _is_torch(a):
        import torch

        return (eps * (torch.exp(a) - 1.0)).clamp_min(0.0)
    return np.maximum(eps * (np.exp(a) - 1.0), 0.0)
