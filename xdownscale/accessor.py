"""The ``.downscale`` accessor: one documented method per verb, no state.

Each method is one explicit call into the xarray wrapper of the same name, with the same
parameters and defaults (a test compares the signatures); see the wrapper for the full
documentation (Notes, References). Torch and POT are imported only by the verbs that need them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from . import dataset, grid, qdm, sampling, spectra, transport

if TYPE_CHECKING:
    from .qdm import Extrapolation, Group, Interp, Kind
    from .sampling import Conserve, Interpolation, Sampler, Statistic
    from .spectra import ScaleChoice, Transform

__all__ = ["DatasetDownscaleAccessor", "DownscaleAccessor"]


@xr.register_dataarray_accessor("downscale")
class DownscaleAccessor:
    """Downscaling verbs on a DataArray: ``da.downscale.<verb>(...)``."""

    def __init__(self, da: xr.DataArray) -> None:
        self._obj = da

    def coarsen(
        self,
        factor: int | tuple[int, int],
        *,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """NaN-aware block mean by an integer factor (the coarsening map C').

        See :func:`xdownscale.coarsen` for the parameters.
        """
        return grid.coarsen(
            self._obj,
            factor,
            spatial_dims=spatial_dims,
        )

    def upsample(
        self,
        factor: int | tuple[int, int],
        *,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        conservative: bool = False,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """Interpolate onto a grid ``factor`` times finer (cell-centred).

        See :func:`xdownscale.upsample` for the parameters.
        """
        return grid.upsample(
            self._obj,
            factor,
            interpolation=interpolation,
            conservative=conservative,
            spatial_dims=spatial_dims,
        )

    def lowpass(
        self,
        cutoff: float | None = None,
        *,
        wavelength: float | None = None,
        order: int | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
    ) -> xr.DataArray:
        """Remove scales smaller than a cutoff with a radial spectral filter.

        See :func:`xdownscale.lowpass` for the parameters.
        """
        return grid.lowpass(
            self._obj,
            cutoff,
            wavelength=wavelength,
            order=order,
            spatial_dims=spatial_dims,
        )

    def psd(
        self,
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
        """Radially averaged power spectral density.

        See :func:`xdownscale.psd` for the parameters.

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
            taper=taper,
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
        """Scale k* where this (source) spectrum drops below ``target``'s, and sigma*.

        See :func:`xdownscale.choose_scale` for the parameters.
        """
        return spectra.choose_scale(
            self._obj,
            target,
            factor=factor,
            interpolation=interpolation,
            lowpass=lowpass,
            transform=transform,
            smooth=smooth,
            tolerance=tolerance,
            match_below=match_below,
            k_max=k_max,
            nan_policy=nan_policy,
            taper=taper,
            spatial_dims=spatial_dims,
        )

    def qdm(
        self,
        ref: xr.DataArray,
        hist: xr.DataArray,
        *,
        kind: Kind = "additive",
        n_quantiles: int = 50,
        group: Group = "time",
        window: int | None = None,
        interp: Interp = "nearest",
        extrapolation: Extrapolation = "constant",
        dry_threshold: float | str | None = None,
        seed: int = 0,
        units: str | None = None,
        dim: Hashable | None = None,
        progress: bool = False,
    ) -> xr.DataArray:
        """Bias-adjust this (sim) series by quantile delta mapping against ``ref`` and ``hist``.

        See :func:`xdownscale.qdm` for the parameters.

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
        return qdm.qdm(
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
            progress=progress,
        )

    def debias(
        self,
        ref: xr.DataArray,
        hist: xr.DataArray | None = None,
        *,
        reg: float = 0.002,
        max_iter: int = 5000,
        tol: float = 0.0001,
        n_samples: int | None = None,
        seed: int = 0,
        device: str = "auto",
        standardize: Literal["global", "cell"] = "global",
        max_memory: int | None = None,
        dim: Hashable | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        progress: bool = False,
    ) -> xr.DataArray:
        """Debias these (sim) fields with an entropic optimal-transport map to ``ref``.

        See :func:`xdownscale.debias` for the parameters.
        """
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
            progress=progress,
        )

    def sample(
        self,
        model: Any = None,
        *,
        factor: int | None = None,
        scale: float | ScaleChoice | Literal["auto"] = "auto",
        reference: xr.DataArray | None = None,
        sampler: Sampler | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        device: str = "auto",
        precision: Literal["float32", "bfloat16"] = "float32",
        gamma: float = 0.1,
        interpolation: Interpolation = "bilinear",
        conserve: Conserve = "auto",
        units: str | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        progress: bool = False,
        resources: dict[str, float] | None = None,
    ) -> xr.DataArray:
        """Downscale with a generative model: one fine field per input.

        See :func:`xdownscale.sample` for the parameters.
        """
        return sampling.sample(
            self._obj,
            model,
            factor=factor,
            scale=scale,
            reference=reference,
            sampler=sampler,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            device=device,
            precision=precision,
            gamma=gamma,
            interpolation=interpolation,
            conserve=conserve,
            units=units,
            spatial_dims=spatial_dims,
            progress=progress,
            resources=resources,
        )

    def ensemble(
        self,
        n: int,
        model: Any = None,
        *,
        reduce: str | Sequence[Statistic] | None = None,
        threshold: float | str | Sequence[float | str] | None = None,
        q: float | Sequence[float] | None = None,
        member_chunk: int | None = None,
        factor: int | None = None,
        scale: float | ScaleChoice | Literal["auto"] = "auto",
        reference: xr.DataArray | None = None,
        sampler: Sampler | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        device: str = "auto",
        precision: Literal["float32", "bfloat16"] = "float32",
        gamma: float = 0.1,
        interpolation: Interpolation = "bilinear",
        conserve: Conserve = "auto",
        units: str | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        progress: bool = False,
        resources: dict[str, float] | None = None,
    ) -> xr.DataArray | xr.Dataset:
        """``n`` downscaled members (dim ``realization``) or streaming statistics over them.

        See :func:`xdownscale.ensemble` for the parameters.
        """
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
            reference=reference,
            sampler=sampler,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            device=device,
            precision=precision,
            gamma=gamma,
            interpolation=interpolation,
            conserve=conserve,
            units=units,
            spatial_dims=spatial_dims,
            progress=progress,
            resources=resources,
        )


@xr.register_dataset_accessor("downscale")
class DatasetDownscaleAccessor:
    """Downscaling verbs on a Dataset: ``ds.downscale.<verb>(..., variables=None)``.

    Each verb is applied to the data variables that can take it (see
    :func:`xdownscale.dataset.apply`) and returns a Dataset that keeps the other variables
    and the global attributes; ``choose_scale`` returns one choice per variable.

    Examples
    --------
    >>> import xdownscale
    >>> ds = xdownscale.datasets.open_sample().to_dataset()
    >>> list(ds.downscale.coarsen(2).data_vars)
    ['precip']
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._obj = ds

    def coarsen(
        self,
        factor: int | tuple[int, int],
        *,
        spatial_dims: Sequence[Hashable] | None = None,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """NaN-aware block mean by an integer factor (the coarsening map C').

        Applied to each data variable that can take it; see :func:`xdownscale.coarsen` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        """
        return dataset.apply(
            self._obj,
            "coarsen",
            partial(
                grid.coarsen,
                factor=factor,
                spatial_dims=spatial_dims,
            ),
            variables=variables,
        )

    def upsample(
        self,
        factor: int | tuple[int, int],
        *,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear",
        conservative: bool = False,
        spatial_dims: Sequence[Hashable] | None = None,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """Interpolate onto a grid ``factor`` times finer (cell-centred).

        Applied to each data variable that can take it; see :func:`xdownscale.upsample` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        """
        return dataset.apply(
            self._obj,
            "upsample",
            partial(
                grid.upsample,
                factor=factor,
                interpolation=interpolation,
                conservative=conservative,
                spatial_dims=spatial_dims,
            ),
            variables=variables,
        )

    def lowpass(
        self,
        cutoff: float | None = None,
        *,
        wavelength: float | None = None,
        order: int | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """Remove scales smaller than a cutoff with a radial spectral filter.

        Applied to each data variable that can take it; see :func:`xdownscale.lowpass` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        """
        return dataset.apply(
            self._obj,
            "lowpass",
            partial(
                grid.lowpass,
                cutoff=cutoff,
                wavelength=wavelength,
                order=order,
                spatial_dims=spatial_dims,
            ),
            variables=variables,
        )

    def psd(
        self,
        *,
        dim: Hashable | Sequence[Hashable] | None = None,
        taper: Literal["hann"] | None = None,
        detrend: Literal["constant", "linear"] | None = None,
        nan_policy: Literal["raise", "fill"] = "raise",
        truncate: bool = True,
        rings: Literal["wavenumber", "index"] = "wavenumber",
        bins: Sequence[float] | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """Radially averaged power spectral density.

        Applied to each data variable that can take it; see :func:`xdownscale.psd` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        """
        return dataset.apply(
            self._obj,
            "psd",
            partial(
                spectra.psd,
                dim=dim,
                taper=taper,
                detrend=detrend,
                nan_policy=nan_policy,
                truncate=truncate,
                rings=rings,
                bins=bins,
                spatial_dims=spatial_dims,
            ),
            variables=variables,
        )

    def choose_scale(
        self,
        target: xr.Dataset | xr.DataArray,
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
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> dict[Hashable, ScaleChoice]:
        """Scale k* where this (source) spectrum drops below ``target``'s, and sigma*.

        Applied to each data variable that can take it; see :func:`xdownscale.choose_scale` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        target : xarray.Dataset or xarray.DataArray
            A Dataset is matched by variable name; a DataArray serves every variable.
        """
        return dataset.apply(
            self._obj,
            "choose_scale",
            partial(
                spectra.choose_scale,
                factor=factor,
                interpolation=interpolation,
                lowpass=lowpass,
                transform=transform,
                smooth=smooth,
                tolerance=tolerance,
                match_below=match_below,
                k_max=k_max,
                nan_policy=nan_policy,
                taper=taper,
                spatial_dims=spatial_dims,
            ),
            variables=variables,
            target=target,
        )

    def qdm(
        self,
        ref: xr.Dataset | xr.DataArray,
        hist: xr.Dataset | xr.DataArray,
        *,
        kind: Kind = "additive",
        n_quantiles: int = 50,
        group: Group = "time",
        window: int | None = None,
        interp: Interp = "nearest",
        extrapolation: Extrapolation = "constant",
        dry_threshold: float | str | None = None,
        seed: int = 0,
        units: str | None = None,
        dim: Hashable | None = None,
        progress: bool = False,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """Bias-adjust this (sim) series by quantile delta mapping against ``ref`` and ``hist``.

        Applied to each data variable that can take it; see :func:`xdownscale.qdm` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        ref, hist : xarray.Dataset or xarray.DataArray
            A Dataset is matched by variable name; a DataArray serves every variable.
        """
        return dataset.apply(
            self._obj,
            "qdm",
            partial(
                qdm.qdm,
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
                progress=progress,
            ),
            variables=variables,
            ref=ref,
            hist=hist,
        )

    def debias(
        self,
        ref: xr.Dataset | xr.DataArray,
        hist: xr.Dataset | xr.DataArray | None = None,
        *,
        reg: float = 0.002,
        max_iter: int = 5000,
        tol: float = 0.0001,
        n_samples: int | None = None,
        seed: int = 0,
        device: str = "auto",
        standardize: Literal["global", "cell"] = "global",
        max_memory: int | None = None,
        dim: Hashable | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        progress: bool = False,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """Debias these (sim) fields with an entropic optimal-transport map to ``ref``.

        Applied to each data variable that can take it; see :func:`xdownscale.debias` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        ref, hist : xarray.Dataset or xarray.DataArray
            A Dataset is matched by variable name; a DataArray serves every variable.
        """
        return dataset.apply(
            self._obj,
            "debias",
            partial(
                transport.debias,
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
                progress=progress,
            ),
            variables=variables,
            ref=ref,
            hist=hist,
        )

    def sample(
        self,
        model: Any = None,
        *,
        factor: int | None = None,
        scale: float | ScaleChoice | Literal["auto"] = "auto",
        reference: xr.Dataset | xr.DataArray | None = None,
        sampler: Sampler | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        device: str = "auto",
        precision: Literal["float32", "bfloat16"] = "float32",
        gamma: float = 0.1,
        interpolation: Interpolation = "bilinear",
        conserve: Conserve = "auto",
        units: str | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        progress: bool = False,
        resources: dict[str, float] | None = None,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """Downscale with a generative model: one fine field per input.

        Applied to each data variable that can take it; see :func:`xdownscale.sample` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        model : model, name, or mapping of variable name to model, optional
            One model for every variable, or ``{variable: model}`` (then the default
            ``variables`` are the mapping's keys).
        reference : xarray.Dataset or xarray.DataArray, optional
            A Dataset is matched by variable name (a variable without one keeps the model's
            texture); a DataArray serves every variable.
        """
        return dataset.apply(
            self._obj,
            "sample",
            partial(
                sampling.sample,
                factor=factor,
                scale=scale,
                sampler=sampler,
                steps=steps,
                seed=seed,
                batch_size=batch_size,
                device=device,
                precision=precision,
                gamma=gamma,
                interpolation=interpolation,
                conserve=conserve,
                units=units,
                spatial_dims=spatial_dims,
                progress=progress,
                resources=resources,
            ),
            variables=variables,
            model=model,
            reference=reference,
        )

    def ensemble(
        self,
        n: int,
        model: Any = None,
        *,
        reduce: str | Sequence[Statistic] | None = None,
        threshold: float | str | Sequence[float | str] | None = None,
        q: float | Sequence[float] | None = None,
        member_chunk: int | None = None,
        factor: int | None = None,
        scale: float | ScaleChoice | Literal["auto"] = "auto",
        reference: xr.Dataset | xr.DataArray | None = None,
        sampler: Sampler | None = None,
        steps: int | None = None,
        seed: int = 0,
        batch_size: int = 32,
        device: str = "auto",
        precision: Literal["float32", "bfloat16"] = "float32",
        gamma: float = 0.1,
        interpolation: Interpolation = "bilinear",
        conserve: Conserve = "auto",
        units: str | None = None,
        spatial_dims: Sequence[Hashable] | None = None,
        progress: bool = False,
        resources: dict[str, float] | None = None,
        variables: Hashable | Sequence[Hashable] | None = None,
    ) -> xr.Dataset:
        """``n`` downscaled members (dim ``realization``) or streaming statistics over them.

        Applied to each data variable that can take it; see :func:`xdownscale.ensemble` for the
        parameters and :func:`xdownscale.dataset.apply` for how variables are chosen.

        Parameters
        ----------
        variables : hashable or sequence of hashable, optional
            The data variables to process (default: every one that can take it).
        model : model, name, or mapping of variable name to model, optional
            One model for every variable, or ``{variable: model}`` (then the default
            ``variables`` are the mapping's keys).
        reference : xarray.Dataset or xarray.DataArray, optional
            A Dataset is matched by variable name (a variable without one keeps the model's
            texture); a DataArray serves every variable.
        """
        return dataset.apply(
            self._obj,
            "ensemble",
            partial(
                sampling.ensemble,
                n=n,
                reduce=reduce,
                threshold=threshold,
                q=q,
                member_chunk=member_chunk,
                factor=factor,
                scale=scale,
                sampler=sampler,
                steps=steps,
                seed=seed,
                batch_size=batch_size,
                device=device,
                precision=precision,
                gamma=gamma,
                interpolation=interpolation,
                conserve=conserve,
                units=units,
                spatial_dims=spatial_dims,
                progress=progress,
                resources=resources,
            ),
            variables=variables,
            model=model,
            reference=reference,
        )
