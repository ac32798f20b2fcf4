"""The memory budget of a request, checked before anything large is allocated.

No xarray here: the numpy cores (e.g. :mod:`xdownscale.np_transport`) use it too.
"""

from __future__ import annotations

import os

__all__ = [
    "MemoryBudgetError",
    "available_memory",
    "check_memory",
    "format_bytes",
    "memory_budget",
]


class MemoryBudgetError(MemoryError, ValueError):
    """A request that would need more memory than the machine (or ``max_memory``) has.

    Raised before anything is allocated; a :class:`MemoryError` and a :class:`ValueError`.
    Importable as ``xdownscale.MemoryBudgetError``.
    """

    __module__ = "xdownscale"


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps 3 significant digits.

    Examples
    --------
    >>> format_bytes(1536), format_bytes(3 * 2**30)
    ('1.50 KiB', '3.00 GiB')
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} bytes"


def memory_budget(max_memory: int | None = None, free: int | None = None) -> int:
    """Bytes one request may use: ``max_memory``, else 80 % of the available memory."""
    if max_memory is not None:
        return int(max_memory)
    free = available_memory() if free is None else free
    return int(0.8 * free) if free is not None else 1 << 62


def check_memory(
    nbytes: float, what: str, fix: str, *, max_memory: int | None = None, free: int | None = None
) -> None:
    """Refuse a request of ``nbytes`` that exceeds :func:`memory_budget`, naming the fix.

    Examples
    --------
    >>> check_memory(2**40, "the ensemble", "chunk the input", max_memory=2**30)
    Traceback (most recent call last):
    ...
    xdownscale.MemoryBudgetError: the ensemble needs about 1.00 TiB, more than the ...
    """
    budget = memory_budget(max_memory, free)
    if nbytes > budget:
        raise MemoryBudgetError(
            f"{what} needs about {format_bytes(nbytes)}, more than the "
            f"{format_bytes(budget)} available; {fix}"
        )
