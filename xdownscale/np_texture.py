"""The fine-scale texture of a reference product, as a radial spectral gain (numpy core).

A network trained on one radar network reproduces that network's texture below the coarse
grid's resolution: MeteoSwiss composites are ten times smoother at 2 km than FMI's or MRMS's,
and an 8 km field cannot tell which texture is wanted. Given a few fine fields of the product
the user wants (the *reference*), :func:`xdownscale.sample` coarsens them, downscales them with
the model and compares the radially averaged spectra of the reference and of its downscaled
copy, in physical units. Half the log of their ratio, at the scales the coarse grid does not
resolve, is the log amplitude gain :func:`log_gain` that turns the model's texture into the
reference's; every sample is then filtered with it (:func:`gain_grid` gives the filter on a
mirror-padded field) before clipping and conservation. The gain is ramped in from the coarse
Nyquist wavenumber ``0.5 / factor`` to ``1 / factor`` cycles per fine cell, so the scales the
input resolves are never touched.

Arrays in, arrays out; wavenumbers in cycles per fine grid cell.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import np_spectra

__all__ = ["gain_grid", "log_gain", "ring_spectrum"]

#: The largest amplitude change the gain may make at any wavenumber: e^3 (about 20x).
LIMIT = 3.0


def ring_spectrum(fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of fields ``(n, ny, nx)``, averaged over the fields.

    NaN cells are filled with their field's mean (:func:`xdownscale.np_spectra.psd`).

    Returns
    -------
    k : ndarray
        Ring wavenumbers, cycles per grid cell.
    power : ndarray
    """
    fields = np.asarray(fields, dtype=np.float64)
    ny, nx = fields.shape[-2:]
    power = np_spectra.psd(fields.reshape(-1, ny, nx), fill_nan=True)
    _, k, _ = np_spectra.ring_operator(ny, nx)
    with np.errstate(invalid="ignore"):
        return k, np.nanmean(power, axis=0)


def log_gain(
    k: np.ndarray,
    p_ref: np.ndarray,
    p_gen: np.ndarray,
    factor: int,
    *,
    smooth: int = 5,
    limit: float = LIMIT,
) -> np.ndarray:
    """ln of the amplitude gain that takes spectrum ``p_gen`` to ``p_ref``, per wavenumber.

    ``0.5 * ln(p_ref / p_gen)``, averaged over ``smooth`` neighbouring rings, clipped to
    ``[-limit, limit]``, and multiplied by a ramp that is 0 up to the coarse Nyquist
    ``0.5 / factor`` and 1 from ``1 / factor`` cycles per cell on. Rings where either spectrum
    is not positive get no gain.

    Examples
    --------
    >>> k = np.arange(33) / 64
    >>> g = log_gain(k, 4 * np.ones(33), np.ones(33), 8)
    >>> float(g[0]), round(float(g[-1]), 4)  # untouched below 1/16, ln 2 from 1/8 on
    (0.0, 0.6931)
    """
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = 0.5 * (np.log(np.asarray(p_ref, float)) - np.log(np.asarray(p_gen, float)))
    g = np.where(np.isfinite(g), g, 0.0)
    if smooth > 1:
        h = smooth // 2
        g = np.convolve(np.pad(g, h, mode="edge"), np.ones(smooth) / smooth, mode="valid")
    ramp = np.clip((k - 0.5 / factor) / (0.5 / factor), 0.0, 1.0)
    return ramp * np.clip(g, -limit, limit)


@lru_cache(maxsize=16)
def _radius(ny: int, nx: int) -> np.ndarray:
    return np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :])


def gain_grid(shape: tuple[int, int], k: tuple[float, ...], logg: tuple[float, ...]) -> np.ndarray:
    """The amplitude gain ``exp(logg(|kappa|))`` on the FFT grid of a field of ``shape``.

    ``shape`` is the (padded) field the FFT runs on; ``k`` and ``logg`` are the gain's
    wavenumbers (cycles per cell) and log gains, interpolated linearly and held constant beyond
    the last wavenumber (the corners of the spectrum).

    Examples
    --------
    >>> gain_grid((4, 4), (0.0, 0.5), (0.0, float(np.log(2)))).round(2)[0]
    array([1.  , 1.41, 2.  , 1.41], dtype=float32)
    """
    r = _radius(*shape)
    return np.exp(np.interp(r, np.asarray(k, float), np.asarray(logg, float))).astype(np.float32)
