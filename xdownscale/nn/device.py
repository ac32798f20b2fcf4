"""Torch device selection on top of the one resolver, :func:`xdownscale.checks.resolve_device`."""

from __future__ import annotations

import torch

from ..checks import resolve_device as _resolve_name

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device request into a :class:`torch.device`, failing clearly when it is absent.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        ``"auto"`` picks the first visible CUDA device when one is present (a worker whose
        ``CUDA_VISIBLE_DEVICES`` names one GPU gets that GPU), else the CPU.

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
    name = _resolve_name(str(device) if isinstance(device, torch.device) else device)
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "built without CUDA" if torch.version.cuda is None else "no GPU visible"
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available (torch "
            f"{torch.__version__}, {build}); pass device='cpu', or device='auto' to use "
            "a GPU only when one is present"
        )
    index = name.partition(":")[2]
    if index and int(index) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(
            f"device={device!r} was requested but only {n} CUDA device(s) are visible "
            f"(cuda:0 to cuda:{n - 1}; CUDA_VISIBLE_DEVICES="
            f"{__import__('os').environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); pass one of "
            "those or device='auto'"
        )
    return torch.device(name)
