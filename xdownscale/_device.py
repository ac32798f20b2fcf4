"""The one device resolver: device names for every verb (no xarray, no torch at import)."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

__all__ = ["check_device", "resolve_device"]

_DEVICES = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def check_device(device: Any = "auto") -> str:
    """Validate a device request and normalise its spelling; ``"auto"`` stays ``"auto"``.

    Wrappers keep ``"auto"`` in the work they hand to dask, so that each worker resolves it
    itself (a worker with a GPU takes it; ``CUDA_VISIBLE_DEVICES`` is respected).

    Examples
    --------
    >>> check_device(" CUDA:1 "), check_device("auto")
    ('cuda:1', 'auto')
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device='gpu' is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'
    """
    name = str(device) if type(device).__name__ == "device" else device
    if not isinstance(name, str):
        raise TypeError(
            f"device must be a string ({_DEVICES}), got {type(device).__name__} {device!r}"
        )
    name = name.strip().lower()
    if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ValueError(f"device={device!r} is not supported; use {_DEVICES}")


def resolve_device(device: Any = "auto") -> str:
    """Validate a device request and resolve ``"auto"`` in this process.

    ``"auto"`` is ``"cuda"`` when torch sees a GPU, else ``"cpu"``; torch is only imported for
    that question when an NVIDIA driver is present or torch is already loaded. Whether a
    named GPU exists is checked by :func:`xdownscale.nn.resolve_device` when the network runs.

    Examples
    --------
    >>> resolve_device(" CPU ")
    'cpu'
    """
    name = check_device(device)
    if name != "auto":
        return name
    if os.path.exists("/proc/driver/nvidia") or "torch" in sys.modules:
        if importlib.util.find_spec("torch") is not None:
            import torch

            if torch.cuda.is_available():
                return "cuda"
    return "cpu"
