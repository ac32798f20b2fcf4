"""The fine-scale texture of a reference product, as a per-field radial gain (numpy core).

A network trained on one radar network reproduces that network's texture below the coarse
grid's resolution: MeteoSwiss composites are ten times smoother at 2 km than FMI's or MRMS's,
and an 8 km field cannot tell which texture is wanted. Given a few fine fields of the product
the user wants (the *reference*), :func:`xdownscale.sample` gives every sample the *shape* of
the reference's radially averaged spectrum below the coarse grid, anchored at the sample's own
power at :data:`ANCHOR` times the coarse Nyquist wavenumber ``0.5 / factor``: at wavenumbers
``k`` above the anchor ``k_a`` the sample's power becomes

    ``P_sample(k_a) * P_reference(k) / P_reference(k_a)``,

a radial amplitude gain per field (:func:`shape_gain`) that keeps the sample's phases and its
larger scales. The reference thus supplies how power falls off towards the grid scale (the
product's processing), the sample how much power the weather of the moment has at the scales
the coarse field resolves. Spectra of samples and reference are taken the same way: the
field minus its mean, mirror-padded (no wrap-around at the edges; circular along a periodic
x), ring averages of the half-plane FFT (:func:`rings`, :func:`reference_spectrum`).

Arrays in, arrays out; wavenumbers in cycles per grid cell.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import np_spectra

__all__ = [
    "ANCHOR",
    "LIMIT",
    "padded",
    "reference_spectrum",
    "ring_spectrum",
    "rings",
    "shape_gain",
]

#: The largest amplitude change the gain may make at any wavenumber: e^3 (about 20x).
LIMIT = 3.0
#: Where the reference's spectral shape is anchored to the sample's power, as a fraction of
#: the coarse Nyquist wavenumber: low enough that the coarse field resolves it well, high
#: enough that the sample's power there reflects the weather of the moment.
ANCHOR = 0.75


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


def padded(shape: tuple[int, int], periodic_x: bool) -> tuple[int, int]:
    """The shape a field of ``shape`` has after mirror padding (y and, unless periodic, x)."""
    h, w = shape
    return 2 * h, w if periodic_x else 2 * w


@lru_cache(maxsize=16)
def rings(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ring index of every cell of the half-plane FFT (``rfft2``) of a field of ``shape``.

    Rings are ``1 / min(shape)`` cycles per cell wide, centred on multiples of it.

    Returns
    -------
    index : ndarray of int64, shape ``(ny, nx // 2 + 1)``
    k : ndarray
        Ring centres, cycles per cell.
    count : ndarray
        Cells per ring (rings without a cell are 0).

    Examples
    --------
    >>> index, k, count = rings((8, 8))
    >>> index.shape, k[:3].tolist(), int(count[0])
    ((8, 5), [0.0, 0.125, 0.25], 1)
    """
    ny, nx = shape
    r = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :])
    dk = 1.0 / min(ny, nx)
    index = np.rint(r / dk).astype(np.int64)
    count = np.bincount(index.ravel()).astype(np.float64)
    return index, np.arange(len(count)) * dk, count


def _mirror(field: np.ndarray, periodic_x: bool) -> np.ndarray:
    z = np.concatenate([field, field[..., ::-1, :]], axis=-2)
    return z if periodic_x else np.concatenate([z, z[..., ::-1]], axis=-1)


def reference_spectrum(
    fields: np.ndarray, periodic_x: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(k, ln power)`` of fields ``(n, ny, nx)``: mirror-padded ring spectrum, field-averaged.

    Each field minus its mean (NaN filled with it), mirror-padded as the samples are
    (:func:`padded`), half-plane FFT, ring averages (:func:`rings`); the power is averaged
    over the fields; rings with power (beyond round-off) and beyond ``k = 0`` are returned.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> k, lnp = reference_spectrum(rng.normal(size=(8, 32, 32)))
    >>> bool(np.std(lnp[k <= 0.5]) < 0.3)  # white noise: flat
    True
    """
    f = np.asarray(fields, dtype=np.float64)
    f = f.reshape(-1, *f.shape[-2:])
    mean = np.nanmean(f, axis=(-2, -1), keepdims=True)
    f = np.where(np.isnan(f), mean, f) - mean
    shape = padded(f.shape[-2:], periodic_x)
    index, k, count = rings(shape)
    power = np.abs(np.fft.rfft2(_mirror(f, periodic_x))) ** 2
    total = np.bincount(index.ravel(), power.mean(axis=0).ravel(), minlength=len(k))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = total / count
    # the mean is removed (no ring 0); mirror padding cancels the Nyquist modes, leaving
    # round-off there
    keep = np.isfinite(p) & (k > 0)
    keep &= p > 1e-12 * (p[keep].max() if keep.any() else 0.0)
    return k[keep], np.log(p[keep])


def shape_gain(
    k: np.ndarray,
    power: np.ndarray,
    k_ref: np.ndarray,
    ln_ref: np.ndarray,
    factor: int,
    *,
    anchor: float = ANCHOR,
    limit: float = LIMIT,
) -> np.ndarray:
    """ln of the amplitude gain per ring that gives one field the reference's spectral shape.

    Parameters
    ----------
    k, power : ndarray
        Ring centres (cycles per cell) and the field's ring-averaged power.
    k_ref, ln_ref : ndarray
        The reference's ring centres and ln power (:func:`reference_spectrum`); interpolated
        linearly in ``k`` and held beyond its last ring.
    factor : int
        The coarse grid's factor: the anchor is ``anchor * 0.5 / factor`` cycles per cell.

    Returns
    -------
    ndarray
        ``0.5 * (ln P(k_a) + ln R(k) - ln R(k_a) - ln P(k))`` above the anchor ring ``k_a``
        (the last ring with power at or below ``anchor * 0.5 / factor``), 0 at and below it,
        clipped to ``[-limit, limit]``; 0 wherever the field has no power (an all-dry field
        stays dry).

    Examples
    --------
    >>> k = np.arange(33) / 64
    >>> g = shape_gain(k, np.ones(33), k, np.log(1.0 / (1 + 64 * k)), 4)  # reference: red
    >>> float(g[6]), round(float(g[32]), 3)  # untouched up to 6/64, then -0.5 ln(33/7)
    (0.0, -0.775)
    """
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lnp = np.log(np.asarray(power, dtype=np.float64))
    ok = np.isfinite(lnp)
    below = np.flatnonzero(ok & (k <= anchor * 0.5 / factor))
    if not len(below) or not len(k_ref):
        return np.zeros_like(k)
    a = below[-1]  # never changed by the gain: a second pass keeps the same level
    k_a = k[a]
    ln_pa = lnp[a]
    lnr = np.interp(k, k_ref, ln_ref) - np.interp(k_a, k_ref, ln_ref)
    with np.errstate(invalid="ignore"):
        g = 0.5 * (ln_pa + lnr - lnp)
    g = np.where((k > k_a) & ok & np.isfinite(g), g, 0.0)
    return np.clip(g, -limit, limit)
