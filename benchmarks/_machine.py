"""Machine description shared by the benchmark scripts (written into the docs with results)."""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def proc_status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (e.g. ``VmRSS``, ``VmHWM``); None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_kb() -> int:
    """Peak resident set of this process image (``VmHWM``), in kB.

    Not ``ru_maxrss`` where VmHWM exists: Linux carries ``ru_maxrss`` over from the parent
    through fork and exec, so a child started by a big parent would report the parent's peak.
    """
    peak = proc_status_kb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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
