"""Radially averaged power spectra and the choice of the preserved scale.

xarray/dask wrappers around :mod:`xdownscale.np_spectra` (Hess et al. 2024, section 4.5;
Bischoff & Deck 2023); see the task page "look at spectra and pick the scale".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xarray as xr

from . import np_spectra
from .checks import check_choice, check_dataarray, check_finite, check_int, grid_info, require_whole
from .grid import lowpass as _lowpass
from .grid import upsample
from .transforms import log_forward
from .units import unit_factors

__all__ = ["NoStructureError", "ScaleChoice", "choose_scale", "psd"]

Transform = Literal["log"] | Callable[[xr.DataArray], xr.DataArray] | None


class NoStructureError(ValueError):
    """The fields have no power at any wavenumber k > 0 (constant, e.g. all dry)."""


def _count_nan(da: xr.DataArray) -> int:
    return int(da.isnull().sum().compute())


def psd(
    da: xr.DataArray,
    *,
    dim: Hashable | Sequence[Hashable] | None = None,
    taper: Literal["hann"] | None = None,
    detrend: Literal["constant", "linear"] | None = None,
    nan_policy: Literal["raise", "fill"] = "raise",
    truncate: bool = True,
    rings: Literal["wavenumber", "index"] = "wavenumber",
    bins: Sequence[float] | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> xr.DataArray:
    """Radially averaged power spectral density of 2-D fields.

    Parameters
    ----------
    da : xarray.DataArray
        Field(s) with two spatial dims; other dims may be dask-chunked (spatial dims must be one
        chunk each). +-inf is refused.
    dim : hashable or sequence of hashable, optional
        The sample dims: non-spatial dims to average the spectra over. Default: all of them;
        ``[]`` keeps one spectrum per field.
    taper : {None, "hann"}
        Window applied before the FFT, scaled so that ``mean(w^2) = 1`` (white noise keeps its
        level). Use it for non-periodic fields with strong edges.
    detrend : {None, "constant", "linear"}
        Remove each field's mean, or its least-squares plane, before the FFT.
    nan_policy : {"raise", "fill"}
        "raise" (default) refuses fields with NaN and says how many; "fill" gives each NaN cell
        the mean of its field's valid cells and divides the spectrum by the valid fraction
        (white noise keeps its level; the mask's edges add some leakage).
    truncate : bool
        Keep only rings inside the Nyquist circle (``k < 0.5``, as pysteps). False keeps the
        corner rings too, so that Parseval holds exactly over the returned rings.
    rings : {"wavenumber", "index"}
        "wavenumber" (default): rings of equal physical wavenumber ``|kappa|`` in cycles per
        grid cell. "index": rings of equal radius in FFT index units, pysteps' ``rapsd``
        convention; identical on square grids, physically mixed on non-square ones.
    bins : sequence of float, optional
        Explicit, increasing bin edges in cycles per grid cell instead of unit rings: bin ``i``
        averages the modes with ``bins[i] < |kappa| <= bins[i+1]`` and is labelled by their
        mean ``|kappa|`` (NaN for an empty bin). Overrides ``truncate`` and ``rings``.
    spatial_dims : (hashable, hashable), optional
        Override the discovered ``(y, x)`` dims.

    Returns
    -------
    xarray.DataArray
        Dim ``wavenumber`` (cycles per grid cell, from 0 to below 0.5), coordinate ``n_modes``
        (modes in each ring) and, when the grid spacing is known and the cells are square,
        ``wavelength`` in the coordinate units (``spacing / k``; inf at k = 0).

    Raises
    ------
    ValueError
        On NaN with ``nan_policy="raise"``, spatial dims split into chunks, unknown options.

    Notes
    -----
    ``P(k) = mean_{ring k} |FFT(u)(kappa)|^2 / (Nx Ny)`` (as pysteps' ``rapsd``): white noise of
    variance ``s^2`` has ``P(k) = s^2``; Parseval: ``sum_kappa |FFT(u)|^2/(Nx Ny) = Nx Ny
    mean(u^2)``, i.e. ``sum_k n_modes(k) P(k) = Nx Ny mean(u^2)`` with ``truncate=False``.
    Ring ``k = r / max(Nx, Ny)`` holds modes with ``|kappa| max(Nx, Ny)`` rounded to ``r``;
    on square grids the values equal pysteps' ``rapsd`` exactly.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> noise = xr.DataArray(rng.normal(0, 2, (50, 64, 64)), dims=("time", "y", "x"))
    >>> p = psd(noise)
    >>> p.sizes["wavenumber"], round(float(p.isel(wavenumber=slice(1, None)).mean()), 1)
    (32, 4.0)
    """
    check_choice(taper, "taper", (None, "hann"))
    check_choice(detrend, "detrend", (None, "constant", "linear"))
    check_choice(rings, "rings", ("wavenumber", "index"))
    check_choice(nan_policy, "nan_policy", ("raise", "fill"))
    edges = None
    if bins is not None:
        edges = tuple(float(b) for b in np.asarray(bins, dtype=np.float64).ravel())
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(
                f"bins must be at least two strictly increasing edges (cycles per grid cell), "
                f"got {bins!r}"
            )
    da = check_finite(check_dataarray(da, "da"), "da")
    info = grid_info(da, spatial_dims)
    y, x = info.y, info.x
    ny, nx = da.sizes[y], da.sizes[x]
    if min(ny, nx) < 4:
        raise ValueError(f"psd needs at least 4 x 4 cells, got {ny} x {nx} along ({y!r}, {x!r})")
    require_whole(da, [y, x], "da", "the FFT needs whole fields")
    others = [d for d in da.dims if d not in (y, x)]
    if dim is None:
        avg = others
    else:
        avg = [dim] if isinstance(dim, (str, bytes)) or not isinstance(dim, Sequence) else list(dim)
        bad = [d for d in avg if d not in others]
        if bad:
            raise ValueError(
                f"dim={dim!r} names {bad}, which are not non-spatial dims of the array; "
                f"choose among {others}"
            )
    if nan_policy == "raise" and da.chunks is None and bool(np.isnan(da.values).any()):
        raise ValueError(
            f"da holds {_count_nan(da)} NaN value(s) of {da.size}; the FFT needs complete fields: "
            "pass nan_policy='fill' (fills with each field's mean, rescales by the valid "
            "fraction) or fill them yourself (da.fillna(...))"
        )
    _, k, count = np_spectra.ring_operator(ny, nx, truncate, rings, edges)
    fill = nan_policy == "fill"
    dtype = da.dtype if np.issubdtype(da.dtype, np.floating) else np.float64

    def _core(a: np.ndarray) -> np.ndarray:
        if not fill and np.isnan(a).any():
            raise ValueError(
                f"a chunk holds {int(np.isnan(a).sum())} NaN value(s); the FFT needs complete "
                "fields: pass nan_policy='fill' or fill them yourself (da.fillna(...))"
            )
        return np_spectra.psd(
            a,
            taper=taper,
            detrend=detrend,
            fill_nan=fill,
            truncate=truncate,
            rings=rings,
            edges=edges,
        )

    spec = xr.apply_ufunc(
        _core,
        da,
        input_core_dims=[[y, x]],
        output_core_dims=[["wavenumber"]],
        dask="parallelized",
        output_dtypes=[dtype],
        dask_gufunc_kwargs={"output_sizes": {"wavenumber": len(k)}},
        keep_attrs=False,
    )
    if avg:
        spec = spec.mean(avg)
    spec = spec.assign_coords(
        wavenumber=(
            "wavenumber",
            k,
            {"long_name": "radial wavenumber", "units": "cycles per grid cell"},
        ),
        n_modes=("wavenumber", count, {"long_name": "number of Fourier modes in the ring"}),
    )
    if info.spacing is not None:
        with np.errstate(divide="ignore"):
            wl = info.spacing / k
        units = str(info.units) if info.units else ""
        spec = spec.assign_coords(wavelength=("wavenumber", wl, {"units": units}))
    data_units = da.attrs.get("units")
    spec.attrs = {
        "long_name": "radially averaged power spectral density",
        "units": f"({data_units})^2" if data_units else "",
        "normalisation": "|FFT|^2/(Nx Ny), ring mean; white noise of variance s^2 -> s^2",
        "taper": str(taper),
        "detrend": str(detrend),
        "nan_policy": nan_policy,
    }
    if da.name is not None:
        spec.name = f"psd_{da.name}"
    return spec


# ----------------------------------------------------------------------------- choose_scale


def _apply_transform(da: xr.DataArray, transform: Transform) -> xr.DataArray:
    if transform is None:
        return da
    if transform == "log":
        return log_forward(da)
    if callable(transform):
        return transform(da)
    raise ValueError(
        f"transform={transform!r} is not supported; use None, 'log' (log(x + 1e-4) - log(1e-4), "
        "Hess et al.) or a callable DataArray -> DataArray"
    )


@dataclass
class ScaleChoice:
    """The preserved scale k* and the noise level sigma* that keeps everything larger.

    Attributes
    ----------
    k_star : float
        Wavenumber (cycles per grid cell of the target grid) from which on the source spectrum
        stays below the target spectrum: scales with ``k < k_star`` are kept, smaller ones are
        regenerated.
    sigma_star : float
        Noise standard deviation whose flat spectrum equals the target spectrum at ``k_star``
        (``sigma_star**2 == P_target(k_star)``), in the transformed space of the spectra.
    wavelength_star : float or None
        ``spacing / k_star`` in ``wavelength_units`` when the target grid spacing is known.
    wavelength_units : str or None
    crossed : bool
        False when the spectra never cross (see :func:`choose_scale`).
    psd_source, psd_target : xarray.DataArray
        The two spectra on the target's wavenumbers, for plotting.
    note : str
        How k* was found, in words.
    """

    k_star: float
    sigma_star: float
    wavelength_star: float | None
    wavelength_units: str | None
    crossed: bool
    psd_source: xr.DataArray = field(repr=False)
    psd_target: xr.DataArray = field(repr=False)
    note: str = ""

    def diffusion_time(
        self,
        schedule: Literal["consistency", "edm", "ve"] = "consistency",
        *,
        sigma_min: float = 0.01,
        sigma_max: float = 500.0,
    ) -> float:
        """Express ``sigma_star`` as a diffusion time.

        ``"consistency"`` and ``"edm"``: ``t = sigma`` (Karras et al., Song et al.);
        ``"ve"``: ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``, so
        ``t = ln(sigma/sigma_min) / ln(sigma_max/sigma_min)`` (Hess et al.: 0.01 to 500).

        Examples
        --------
        >>> import xarray as xr
        >>> s = ScaleChoice(0.0667, 0.468, None, None, True, xr.DataArray(), xr.DataArray())
        >>> round(s.diffusion_time("ve"), 3)
        0.355
        """
        if schedule in ("consistency", "edm"):
            return float(self.sigma_star)
        if schedule == "ve":
            if not (0 < sigma_min < sigma_max):
                raise ValueError(
                    f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, "
                    f"sigma_max={sigma_max}"
                )
            t = np.log(self.sigma_star / sigma_min) / np.log(sigma_max / sigma_min)
            return float(np.clip(t, 0.0, 1.0))
        raise ValueError(
            f"schedule={schedule!r} is not supported; use 'consistency', 'edm' or 've'"
        )

    def _rows(self) -> list[tuple[str, str]]:
        k = f"{self.k_star:.4g} cycles per grid cell"
        if self.wavelength_star is not None:
            k += f" (wavelength {self.wavelength_star:.4g} {self.wavelength_units or ''})".rstrip()
        rows = [("k*", k), ("sigma*", f"{self.sigma_star:.4g}")]
        rows.append(("spectra crossed", "yes" if self.crossed else "no"))
        if self.note:
            rows.append(("how", self.note))
        return rows

    def __repr__(self) -> str:
        """Compact: the choice and how it was found (the spectra are in ``psd_source`` and
        ``psd_target``)."""
        import textwrap

        lines = ["ScaleChoice"]
        for k, v in self._rows():
            wrapped = textwrap.wrap(v, 80) or [""]
            lines.append(f"  {k:<15}  {wrapped[0]}")
            lines += [f"  {'':<15}  {w}" for w in wrapped[1:]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._rows()
        )
        return f"<div class='xdownscale-scale'><p><b>ScaleChoice</b></p><table>{body}</table></div>"

    def to_dataset(self) -> xr.Dataset:
        """Both spectra and the choice as one Dataset (for saving or plotting)."""
        ds = xr.Dataset({"psd_source": self.psd_source, "psd_target": self.psd_target})
        ds.attrs = {
            "k_star": self.k_star,
            "sigma_star": self.sigma_star,
            "crossed": int(self.crossed),
            "note": self.note,
        }
        if self.wavelength_star is not None:
            ds.attrs["wavelength_star"] = self.wavelength_star
            ds.attrs["wavelength_units"] = self.wavelength_units or ""
        return ds

    def plot(self, ax=None):
        """Plot both spectra (log-log) with k* and the noise floor sigma*^2; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        k = self.psd_target.wavenumber.values
        m = k > 0
        ax.loglog(k[m], self.psd_target.values[m], label="target", color="k")
        ax.loglog(k[m], self.psd_source.values[m], label="source", color="C1")
        ax.axvline(self.k_star, color="C3", ls="--", label=f"k* = {self.k_star:.3g}")
        ax.axhline(self.sigma_star**2, color="C2", ls=":", label=f"σ*² = {self.sigma_star**2:.3g}")
        ax.set_xlabel("wavenumber (cycles per grid cell)")
        ax.set_ylabel("PSD")
        ax.legend(fontsize="small")
        return ax


def _as_spectrum(obj: xr.DataArray, name: str, kw: dict, transform: Transform) -> xr.DataArray:
    if "wavenumber" in obj.dims:
        if obj.ndim != 1:
            raise ValueError(
                f"{name} looks like a spectrum (it has a 'wavenumber' dim) but has dims "
                f"{tuple(obj.dims)}; average it to 1-D first, e.g. {name}.mean(...)"
            )
        return obj
    return psd(_apply_transform(obj, transform), **kw).compute()


def choose_scale(
    src: xr.DataArray,
    target: xr.DataArray,
    *,
    factor: int | None = None,
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
    lowpass: float | None = None,
    transform: Transform = None,
    smooth: int = 3,
    tolerance: float = 0.0,
    match_below: float | None = None,
    k_max: float | None = None,
    nan_policy: Literal["raise", "fill"] = "raise",
    taper: Literal["hann"] | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> ScaleChoice:
    """Choose the scale where the source spectrum drops below the target's, and sigma* there.

    Parameters
    ----------
    src : xarray.DataArray
        Source fields (e.g. a climate model), on the target grid or ``factor`` times coarser.
    target : xarray.DataArray
        Target fields (observations / training data of the model), or their spectrum (a 1-D
        DataArray with dim ``wavenumber`` in cycles per target grid cell, e.g. from a model card).
    factor : int, optional
        When given, ``src`` is first upsampled by ``factor`` with ``interpolation``.
    interpolation : {"nearest", "bilinear", "bicubic"}
        Interpolation for ``factor``.
    lowpass : float, optional
        Low-pass cutoff (cycles per fine grid cell) applied to the upsampled source, as in the
        sampling pipeline (``0.5 / factor`` keeps the resolved scales).
    transform : {None, "log"} or callable
        Space in which spectra and sigma* are computed: the model's transformed space.
        ``"log"`` is ``log(x + 1e-4) - log(1e-4)`` (Hess et al.). Applied to fields, never to a
        given spectrum.
    smooth : int
        Width (in bins) of the running mean applied to the log ratio of the spectra before the
        crossing is located (robustness to noisy spectra); 1 disables it.
    tolerance : float
        The source counts as below the target where ``P_src < (1 - tolerance) P_target``, so
        that small deficits at large scales do not count. In [0, 1); the default 0 gives the
        exact crossing.
    match_below : float, optional
        Compare spectral *shapes*: before the comparison, the source spectrum is rescaled so
        that its mean over the rings ``0 < k <= match_below`` equals the target's. Use it when
        source and target differ in overall variance for reasons the sampler should keep (a
        different day, region or season than the model's training data), e.g.
        ``match_below=0.25 / factor``. The rescaled source spectrum is returned.
    k_max : float, optional
        Never put k* beyond this wavenumber (cycles per target grid cell); sigma* is then
        ``sqrt(P_target(k_max))``. For a source ``factor`` times coarser, ``0.5 / factor`` (its
        Nyquist): it resolves nothing smaller, so power it shows there — e.g. a log
        transform's cliffs where interpolated rain tapers to zero — is no information to keep.
        ``sample(scale="auto")`` uses it.
    nan_policy, taper, spatial_dims
        Passed to :func:`psd`.

    Returns
    -------
    ScaleChoice

    Raises
    ------
    ValueError
        If the grids do not match (shape after ``factor``, or grid spacing), the units are
        incompatible (compatible ones are converted to ``src``'s), the fields are constant
        (e.g. all dry), or on bad options.
    TypeError
        If ``src`` or ``target`` is not a DataArray.

    Notes
    -----
    With ``R(k) = log P_src(k) - log P_target(k)`` (k > 0, smoothed), k* is where R falls
    through ``log(1 - tolerance)`` after the last ring where it is above, interpolated linearly
    in log k between that ring and the next: from k* on, the source stays below the target
    "for good". ``P_target(k*)`` is interpolated log-log between the same two rings. A
    single noisy bin above the target is averaged away by ``smooth``; a sustained rise above
    it at smaller scales moves k* past it. White noise of std sigma masks every scale whose
    power is below
    ``sigma^2``; the noise that preserves all scales larger than k* therefore has
    ``sigma*^2 = P_target(k*)`` (Hess et al. 2024, section 4.5; Bischoff & Deck 2023).

    If the spectra never cross, ``crossed`` is False and a warning says which case applies.
    Source below the target at every k > 0 (typical of an interpolated copy of the target):
    k* is the half-power point, where ``P_src = P_target / 2`` for good (the lowest non-zero
    wavenumber if the source never even has half the power). Source at or above the target
    everywhere (nothing to regenerate): k* is the highest ring and sigma* the noise floor
    there, so a sampler only touches the finest scale.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from xdownscale.datasets import power_law_field
    >>> tgt = power_law_field((4, 64, 64), slope=-2.0, seed=0)  # PSD k^-2
    >>> src = power_law_field((4, 64, 64), slope=-4.0, seed=1, amplitude=0.1)  # 0.01 k^-4
    >>> choice = choose_scale(src, tgt)  # analytic crossing at k = 0.1
    >>> choice.crossed, round(choice.k_star, 3), round(choice.diffusion_time("ve"), 3)
    (True, 0.107, 0.626)
    """
    src = check_dataarray(src, "src")
    target = check_dataarray(target, "target")
    check_int(smooth, "smooth", 1)
    if not (0 <= tolerance < 1):
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    for name, v in (("k_max", k_max), ("match_below", match_below)):
        if v is not None and not (0 < v <= 0.5):
            raise ValueError(
                f"{name} must be a wavenumber in (0, 0.5] cycles per grid cell, got {v!r}"
            )
    kw = {"nan_policy": nan_policy, "taper": taper, "spatial_dims": spatial_dims}
    if "wavenumber" not in target.dims and "wavenumber" not in src.dims:
        target = _same_units(target, src)
    if "wavenumber" not in src.dims:
        if factor is not None:
            src = upsample(src, factor, interpolation=interpolation, spatial_dims=spatial_dims)
        if lowpass is not None:
            src = _lowpass(src, lowpass, spatial_dims=spatial_dims)
        if "wavenumber" not in target.dims:
            _same_grid(src, target, factor, spatial_dims)
    p_src = _as_spectrum(src, "src", kw, transform)
    p_tgt = _as_spectrum(target, "target", kw, transform)
    k = p_src.wavenumber.values
    try:
        c = np_spectra.find_crossing(
            k,
            p_src.values,
            p_tgt.values,
            k_target=p_tgt.wavenumber.values,
            smooth=int(smooth),
            tolerance=tolerance,
            match_below=match_below,
            k_max=k_max,
        )
    except ValueError:
        raise NoStructureError(_no_spectrum_message(p_src, p_tgt)) from None
    if not np.array_equal(p_tgt.wavenumber.values, k):
        p_tgt = xr.DataArray(
            c.p_target, dims="wavenumber", coords=p_src.wavenumber.coords, attrs=p_tgt.attrs
        )
    if c.gain is not None:
        p_src = p_src * c.gain
        p_src.attrs["normalized_by"] = c.gain
    note = _NOTES[c.case].format(k=c.k_star, smooth=smooth, tolerance=tolerance)
    if c.case == "crossed" and match_below:
        note = note[:-1] + f", source scaled by {c.gain:.3g} to match k <= {match_below:g})"
    if c.capped:
        note += f"; capped at k_max = {k_max:g}, beyond which the source resolves nothing"
    if c.case != "crossed":
        warnings.warn(note, UserWarning, stacklevel=2)
    wl, wl_units = None, None
    for p in (p_tgt, p_src):
        if "wavelength" in p.coords and np.isfinite(p.wavelength.values[1:]).all():
            spacing = float(p.wavelength.values[1] * k[1])
            wl, wl_units = spacing / c.k_star, p.wavelength.attrs.get("units") or None
            break
    return ScaleChoice(
        k_star=c.k_star,
        sigma_star=float(np.sqrt(c.p_star)),
        wavelength_star=wl,
        wavelength_units=wl_units,
        crossed=c.case == "crossed",
        psd_source=p_src,
        psd_target=p_tgt,
        note=note,
    )


_NOTES = {
    "crossed": (
        "source drops below target for good at k* = {k:.4g} cycles per grid cell "
        "(log-ratio smoothed over {smooth} bins, tolerance {tolerance:g})"
    ),
    "half": (
        "spectra never cross: the source is below the target at every k > 0 (as for a "
        "smoothed copy of the target); k* is the half-power point, where the source "
        "has lost half of the target's power: k* = {k:.4g}"
    ),
    "smooth": (
        "spectra never cross: the source has less than half the target's power at "
        "every k > 0 (too smooth at all scales); k* is the lowest non-zero wavenumber"
    ),
    "rough": (
        "spectra never cross: the source has at least the target's power up to the "
        "highest wavenumber; k* is the highest ring and sigma* the noise floor there, so a "
        "sampler regenerates only the finest scale"
    ),
}


def _no_spectrum_message(p_src: xr.DataArray, p_tgt: xr.DataArray) -> str:
    flat = [
        n
        for n, p in (("src", p_src), ("target", p_tgt))
        if not (np.nan_to_num(p.values[1:]) > 0).any()
    ]
    if flat:
        return (
            f"{' and '.join(flat)} {'has' if len(flat) == 1 else 'have'} no power at any "
            "wavenumber k > 0: the fields are constant (for precipitation: all dry), so there "
            "is no scale to choose; pass the noise level yourself (sample(..., scale=<sigma*>), "
            "e.g. scale=0.5), or pick a time with some structure"
        )
    return (
        "fewer than 2 wavenumbers where both spectra are positive and finite; check that the "
        "fields are not constant or all-NaN"
    )


def _same_units(target: xr.DataArray, src: xr.DataArray) -> xr.DataArray:
    """``target`` in ``src``'s units (converted when compatible; refused when not)."""
    su, tu = src.attrs.get("units"), target.attrs.get("units")
    if su is None and tu is None:
        return target
    if su is None or tu is None:
        has, lacks = ("src", "target") if tu is None else ("target", "src")
        raise ValueError(
            f"{has} has units {su or tu!r} but {lacks} has no 'units' attribute, so the spectra "
            f"cannot be compared; set it, e.g. {lacks}.attrs['units'] = {su or tu!r}"
        )
    scale, offset = unit_factors(str(tu), str(su), "target")
    if (scale, offset) == (1.0, 0.0):
        return target
    out = target * scale + offset
    out.attrs = {**target.attrs, "units": su}
    return out


def _same_grid(src: xr.DataArray, target: xr.DataArray, factor, spatial_dims) -> None:
    si, ti = grid_info(src, spatial_dims), grid_info(target, spatial_dims)
    s_shape, t_shape = (src.sizes[si.y], src.sizes[si.x]), (target.sizes[ti.y], target.sizes[ti.x])
    if s_shape != t_shape:
        hint = (
            f"; pass factor={t_shape[0] // s_shape[0]}"
            if factor is None and t_shape[0] % s_shape[0] == 0
            else ""
        )
        raise ValueError(
            f"src has {s_shape} cells{' after upsampling' if factor else ''} but target "
            f"has {t_shape}: the spectra must be on the same grid{hint}"
        )
    if si.spacing and ti.spacing and abs(si.spacing - ti.spacing) > 0.01 * ti.spacing:
        raise ValueError(
            f"grid spacing of src{' after upsampling' if factor else ''} is "
            f"{si.spacing:.6g} but target's is {ti.spacing:.6g}; check factor="
            f"{factor!r} (it should be about {(si.spacing * (factor or 1)) / ti.spacing:.3g})"
        )
