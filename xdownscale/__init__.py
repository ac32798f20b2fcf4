"""xdownscale: high-resolution, bias-corrected, probabilistic fields from coarse model output.

``import xdownscale`` registers the ``.downscale`` DataArray accessor. Torch and POT are imported
only when a verb that needs them runs.
"""

from . import datasets, metrics
from ._version import __version__
from .accessor import DownscaleAccessor
from .grid import GridInfo, coarsen, find_spatial_dims, find_time_dim, grid_info, lowpass, upsample
from .spectra import ScaleChoice, choose_scale, psd

__all__ = [
    "DownscaleAccessor",
    "GridInfo",
    "QuantileDeltaMapping",
    "ScaleChoice",
    "__version__",
    "choose_scale",
    "coarsen",
    "datasets",
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

# --- qdm (issue 3) ---
from .qdm import QuantileDeltaMapping, qdm

# --- debias (issue 4) ---

# --- sample / ensemble (issue 5) ---
from .sampling import ensemble, sample  # torch imported lazily inside
