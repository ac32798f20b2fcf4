"""Torch subpackage: networks, preconditioning, samplers, the sampling pipeline, training.

Imported lazily by :func:`xdownscale.sample`, :func:`xdownscale.ensemble` and
:func:`xdownscale.train`; ``import xdownscale`` does not import torch.
"""

from ..models.card import ModelCard
from .analytic import GaussianDenoiser, block_mean_matrix, gaussian_posterior
from .device import resolve_device
from .model import DownscalingModel, ModelRef, cache_info, get_model, register_model
from .networks import UNet
from .precondition import ConsistencyModel, EDMDenoiser
from .samplers import (
    sample_conditional,
    sample_consistency,
    sample_euler_maruyama,
    sample_heun,
    sigmas_geometric,
    sigmas_karras,
)

__all__ = [
    "ConsistencyModel",
    "DownscalingModel",
    "EDMDenoiser",
    "GaussianDenoiser",
    "ModelCard",
    "ModelRef",
    "UNet",
    "block_mean_matrix",
    "cache_info",
    "gaussian_posterior",
    "get_model",
    "register_model",
    "resolve_device",
    "sample_conditional",
    "sample_consistency",
    "sample_euler_maruyama",
    "sample_heun",
    "sigmas_geometric",
    "sigmas_karras",
]
