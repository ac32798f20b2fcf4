"""The ``.downscale`` DataArray accessor: one documented method per verb, no state.

Each method is a thin, explicit call into the xarray wrapper of the same name; see the wrapper
for the full documentation (Notes, References).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Literal

import xarray as xr

from . import grid, spectra

if TYPE_CHECKING:
    from .spectra import ScaleChoice


@xr.register_dataarray_accessor("downscale")
class DownscaleAccessor:
    """Downscaling verbs on a DataArray: ``da.downscale.<verb>(...)``."""

    def __init__(self, da: xr.DataArray) -> None:
        self._obj = da

    # --- grid -----------------------------------------------------------------------------
    def coarsen(
        self, factor: int | tuple[int, int], *, spatial_dims: Sequence[Hashable] | None = None
    ) -> xr.DataArray:
        """NaN-aware block mean by an integer factor (C'); see :func:`xdownscale.coarsen`."""
        return grid.coarsen(self._obj, factor, spatial_dims=spatial_dims)

    def upsample(
        self,
        factor: int | tuple[int, int],
        *,
        method: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        conservative: bool = False,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """Interpolate onto a finer cell-centred grid; see :func:`xdownscale.upsample`."""
        return grid.upsample(
            self._obj, factor, method=method, conservative=conservative, spatial_dims=spatial_dims
        )

    def lowpass(
        self,
        cutoff: float | None = None,
        *,
        wavelength: float | None = None,
        order: int | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """Radial spectral low-pass filter; see :func:`xdownscale.lowpass`."""
        return grid.lowpass(
            self._obj, cutoff, wavelength=wavelength, order=order, spatial_dims=spatial_dims
        )

    # --- spectra --------------------------------------------------------------------------
    def psd(
        self,
        *,
        dim: Hashable | Sequence[Hashable] | None = None,
        window: Literal["hann"] | None = None,
        detrend: Literal["constant", "linear"] | None = None,
        nan_policy: Literal["raise", "fill"] = "raise",
        truncate: bool = True,
        rings: Literal["wavenumber", "index"] = "wavenumber",
        bins: Sequence[float] | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """Radially averaged power spectral density; see :func:`xdownscale.psd`.

        Examples
        --------
        >>> import xdownscale
        >>> pr = xdownscale.datasets.open_sample()
        >>> pr.downscale.psd().dims
        ('wavenumber',)
        """
        return spectra.psd(
            self._obj,
            dim=dim,
            window=window,
            detrend=detrend,
            nan_policy=nan_policy,
            truncate=truncate,
            rings=rings,
            bins=bins,
            spatial_dims=spatial_dims,
        )

    def choose_scale(
        self,
        target: xr.DataArray,
        *,
        factor: int | None = None,
        method: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        lowpass: float | None = None,
        transform: Literal["log"] | Callable[[xr.DataArray], xr.DataArray] | None = None,
        smooth: int = 3,
        tolerance: float = 0.0,
        normalize: float | None = None,
        nan_policy: Literal["raise", "fill"] = "raise",
        window: Literal["hann"] | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> ScaleChoice:
        """Scale k* where this (source) spectrum drops below ``target``'s, and sigma*.

        See :func:`xdownscale.choose_scale`.
        """
        return spectra.choose_scale(
            self._obj,
            target,
            factor=factor,
            method=method,
            lowpass=lowpass,
            transform=transform,
            smooth=smooth,
            tolerance=tolerance,
            normalize=normalize,
            nan_policy=nan_policy,
            window=window,
            spatial_dims=spatial_dims,
        )

    # --- qdm (issue 3) --------------------------------------------------------------------
    def qdm(
        self,
        ref: xr.DataArray,
        hist: xr.DataArray,
        *,
        kind: Literal["additive", "multiplicative"] = "additive",
        n_quantiles: int = 50,
        group: Literal["time", "time.season", "time.month", "time.dayofyear"] = "time",
        window: int | None = None,
        interp: Literal["nearest", "linear"] = "nearest",
        extrapolation: Literal["constant", "nan"] = "constant",
        dry_threshold: float | str | None = None,
        seed: int = 0,
        units: str | None = None,
        dim: Hashable | None = None,
    ) -> xr.DataArray:
        """Bias-adjust this (sim) series by quantile delta mapping; see :func:`xdownscale.qdm`.

        Examples
        --------
        >>> import numpy as np, pandas as pd, xarray as xr
        >>> t = pd.date_range("2000-01-01", periods=365)
        >>> da = lambda mu: xr.DataArray(np.random.default_rng(0).normal(mu, 1, (2, 365)),
        ...                              dims=("x", "time"), coords={"time": t},
        ...                              attrs={"units": "degC"})
        >>> out = da(2.0).downscale.qdm(da(1.0), da(0.0), units="K")
        >>> round(float(out.mean()), 1), out.attrs["units"]
        (276.1, 'K')
        """
        from .qdm import qdm as _qdm

        return _qdm(
            self._obj,
            ref,
            hist,
            kind=kind,
            n_quantiles=n_quantiles,
            group=group,
            window=window,
            interp=interp,
            extrapolation=extrapolation,
            dry_threshold=dry_threshold,
            seed=seed,
            units=units,
            dim=dim,
        )


    # --- debias (issue 4) -----------------------------------------------------------------
    def debias(
        self,
        ref: xr.DataArray,
        hist: xr.DataArray | None = None,
        *,
        reg: float = 0.002,
        max_iter: int = 5000,
        tol: float = 1e-4,
        n_samples: int | None = None,
        seed: int = 0,
        device: str = "auto",
        standardize: Literal["global", "cell"] = "global",
        max_memory: int | None = None,
        dim: Hashable | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """Entropic optimal-transport debiasing of whole fields; see :func:`xdownscale.debias`."""
        from . import transport

        return transport.debias(
            self._obj,
            ref,
            hist,
            reg=reg,
            max_iter=max_iter,
            tol=tol,
            n_samples=n_samples,
            seed=seed,
            device=device,
            standardize=standardize,
            max_memory=max_memory,
            dim=dim,
            spatial_dims=spatial_dims,
        )


    # --- sample / ensemble (issue 5) ------------------------------------------------------
    def sample(
        self,
        model: object = None,
        *,
        factor: int | None = None,
        scale: float | ScaleChoice | Literal["auto"] = "auto",
        method: Literal["consistency", "heun", "sde", "conditional"] | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        device: str = "auto",
        precision: Literal["float32", "bfloat16"] = "float32",
        gamma: float = 0.1,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        conserve: Literal["auto", "none", "additive", "multiplicative"] = "auto",
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """Downscale with a generative model, one fine field per input; see :func:`xdownscale.sample`."""
        from . import sampling

        return sampling.sample(
            self._obj,
            model,
            factor=factor,
            scale=scale,
            method=method,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            device=device,
            precision=precision,
            gamma=gamma,
            interpolation=interpolation,
            conserve=conserve,
            spatial_dims=spatial_dims,
        )

    def ensemble(
        self,
        n: int,
        model: object = None,
        *,
        reduce: str | Sequence[str] | None = None,
        threshold: float | Sequence[float] | None = None,
        q: float | Sequence[float] | None = None,
        member_chunk: int | None = None,
        factor: int | None = None,
        scale: float | ScaleChoice | Literal["auto"] = "auto",
        method: Literal["consistency", "heun", "sde", "conditional"] | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        device: str = "auto",
        precision: Literal["float32", "bfloat16"] = "float32",
        gamma: float = 0.1,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        conserve: Literal["auto", "none", "additive", "multiplicative"] = "auto",
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray | xr.Dataset:
        """``n`` downscaled members (dim ``realization``) or streaming statistics over them.

        See :func:`xdownscale.ensemble`.
        """
        from . import sampling

        return sampling.ensemble(
            self._obj,
            n,
            model,
            reduce=reduce,
            threshold=threshold,
            q=q,
            member_chunk=member_chunk,
            factor=factor,
            scale=scale,
            method=method,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            device=device,
            precision=precision,
            gamma=gamma,
            interpolation=interpolation,
            conserve=conserve,
            spatial_dims=spatial_dims,
        )
