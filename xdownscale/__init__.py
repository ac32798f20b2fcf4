"""xdownscale: high-resolution, bias-corrected, probabilistic fields from coarse model output.

``import xdownscale`` registers the ``.downscale`` DataArray accessor. Torch and POT are imported
only when a verb that needs them runs.
"""

from . import datasets, metrics
from ._version import __version__
from .accessor import DownscaleAccessor
from .grid import GridInfo, coarsen, find_spatial_dims, find_time_dim, grid_info, lowpass, upsample
from .qdm import QuantileDeltaMapping, qdm
from .sampling import ensemble, sample  # torch imported lazily inside
from .spectra import ScaleChoice, choose_scale, psd
from .transport import ConvergenceWarning, OptimalTransportDebiaser, debias  # POT/torch: lazy

__all__ = [
    "ConvergenceWarning",
    "DownscaleAccessor",
    "GridInfo",
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
    "upsample",
]
