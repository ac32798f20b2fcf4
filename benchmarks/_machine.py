"""Machine description shared by the benchmark scripts (written into the docs with results)."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe(packages: list[str]) -> str:
    """One line: CPU, cores, Python and package versions."""
    versions = []
    for p in packages:
        try:
            versions.append(f"{p} {metadata.version(p)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{p} (not installed)")
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        + ", ".join(versions)
    )
