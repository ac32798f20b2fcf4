"""Torch device selection: ``"auto"``, ``"cpu"``, ``"cuda"`` / ``"cuda:N"``."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]

_ALLOWED = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device request into a :class:`torch.device`, failing clearly when it is absent.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        ``"auto"`` picks the first CUDA device when one is present, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string is not one of the allowed forms, or CUDA (or device N) is requested
        but not present.
    TypeError
        If ``device`` is neither a string nor a :class:`torch.device`.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower()
    else:
        raise TypeError(f"device must be a string ({_ALLOWED}) or a torch.device, got {device!r}")
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise ValueError(f"device={device!r} is not understood; use {_ALLOWED}")
        if not torch.cuda.is_available():
            build = "built without CUDA" if torch.version.cuda is None else "no GPU visible"
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available (torch "
                f"{torch.__version__}, {build}); pass device='cpu', or device='auto' to use "
                "a GPU only when one is present"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} CUDA "
                f"device(s) are visible (cuda:0 to cuda:{torch.cuda.device_count() - 1}); "
                "pass one of those or device='auto'"
            )
        return torch.device(name)
    raise ValueError(f"device={device!r} is not supported; use {_ALLOWED}")
