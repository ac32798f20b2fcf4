"""Synthetic Gaussian random fields with a prescribed power spectrum (analytic test oracles)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr


def power_law_field(
    shape: Sequence[int],
    *,
    slope: float,
    amplitude: float = 1.0,
    seed: int = 0,
    spacing: float = 1.0,
    units: str = "km",
) -> xr.DataArray:
    """Gaussian random fields whose expected PSD is ``amplitude**2 * k**slope``.

    Parameters
    ----------
    shape : sequence of int
        ``(ny, nx)`` or ``(n, ny, nx)``; the leading dim is called ``sample``.
    slope : float
        Spectral slope (e.g. -3 for a smooth field, 0 for white noise).
    amplitude : float
        Square root of the PSD at ``k = 1`` cycle per grid cell.
    seed : int
        Seed of the generator (the field is a deterministic function of it).
    spacing : float
        Grid spacing of the ``y``/``x`` coordinates, in ``units``.
    units : str
        Units of the coordinates.

    Returns
    -------
    xarray.DataArray
        Zero-mean fields; with the normalisation of :func:`xdownscale.psd`, the expected ring
        power at wavenumber ``k > 0`` (cycles per grid cell) is ``amplitude**2 * k**slope``.

    Examples
    --------
    >>> f = power_law_field((2, 32, 48), slope=-3.0, seed=1)
    >>> f.dims, f.shape
    (('sample', 'y', 'x'), (2, 32, 48))
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (ny, nx) or (n, ny, nx), got {shape!r}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape)
    ny, nx = shape[-2:]
    k = np.sqrt(np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.fftfreq(nx)[None, :] ** 2)
    with np.errstate(divide="ignore"):
        gain = np.where(k > 0, amplitude * k ** (slope / 2.0), 0.0)
    field = np.fft.ifft2(np.fft.fft2(noise) * gain).real
    dims = ("y", "x") if len(shape) == 2 else ("sample", "y", "x")
    coords = {
        "y": (
            "y",
            (np.arange(ny) + 0.5) * spacing,
            {"units": units, "axis": "Y", "standard_name": "projection_y_coordinate"},
        ),
        "x": (
            "x",
            (np.arange(nx) + 0.5) * spacing,
            {"units": units, "axis": "X", "standard_name": "projection_x_coordinate"},
        ),
    }
    return xr.DataArray(
        field,
        dims=dims,
        coords=coords,
        name="field",
        attrs={"long_name": f"Gaussian field with PSD {amplitude}^2 k^{slope}"},
    )
