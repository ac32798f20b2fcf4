"""Data for examples, tests and benchmarks: the embedded radar sample and synthetic fields."""

from .sample import SAMPLE_SHA256, open_sample
from .synthetic import power_law_field

__all__ = ["SAMPLE_SHA256", "open_sample", "power_law_field"]
