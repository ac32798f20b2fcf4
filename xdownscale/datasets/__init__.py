"""Data for examples, tests and benchmarks: the embedded radar sample, synthetic fields,
Kolmogorov flow, and the real sample data through a pooch registry."""

from .kolmogorov import kolmogorov_dataset, kolmogorov_flow, kolmogorov_flow_lowfi  # torch: lazy
from .registry import DATA_FILES, data_names, fetch_data, open_data
from .sample import SAMPLE_SHA256, open_sample
from .synthetic import power_law_field

__all__ = [
    "DATA_FILES",
    "SAMPLE_SHA256",
    "data_names",
    "fetch_data",
    "kolmogorov_dataset",
    "kolmogorov_flow",
    "kolmogorov_flow_lowfi",
    "open_data",
    "open_sample",
    "power_law_field",
]
