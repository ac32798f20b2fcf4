"""xdownscale: high-resolution, bias-corrected, probabilistic fields from coarse model output.

``import xdownscale`` registers the ``.downscale`` accessor on DataArrays and Datasets. Torch
and POT are imported only when a verb that needs them runs.
"""

from . import datasets, metrics
from ._version import __version__
from .accessor import DatasetDownscaleAccessor, DownscaleAccessor
from .checks import GridInfo, MemoryBudgetError, find_spatial_dims, find_time_dim, grid_info
from .grid import coarsen, lowpass, upsample
from .qdm import QuantileDeltaMapping, qdm
from .sampling import ensemble, sample  # torch imported lazily inside
from .spectra import ScaleChoice, choose_scale, psd
from .train import train  # torch imported lazily inside
from .transport import ConvergenceWarning, OptimalTransportDebiaser, debias

__all__ = [
    "ConvergenceWarning",
    "DatasetDownscaleAccessor",
    "DownscaleAccessor",
    "GridInfo",
    "MemoryBudgetError",
    "OptimalTransportDebiaser",
    "QuantileDeltaMapping",
    "ScaleChoice",
    "__version__",
    "choose_scale",
    "coarsen",
    "datasets",
    "debias",
    "ensemble",
    "find_spatial_dims",
    "find_time_dim",
    "grid_info",
    "lowpass",
    "metrics",
    "psd",
    "qdm",
    "sample",
    "train",
    "upsample",
]
