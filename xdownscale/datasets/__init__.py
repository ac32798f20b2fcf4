"""Data for examples, tests and benchmarks: the embedded radar sample and synthetic fields."""

from .kolmogorov import kolmogorov_dataset, kolmogorov_flow, kolmogorov_flow_lowfi  # torch: lazy
from .sample import SAMPLE_SHA256, open_sample
from .synthetic import power_law_field

__all__ = [
    "SAMPLE_SHA256",
    "kolmogorov_dataset",
    "kolmogorov_flow",
    "kolmogorov_flow_lowfi",
    "open_sample",
    "power_law_field",
]
