"""Pictures for judging a downscaling: spectra, an ensemble panel, a map of one field.

Each function returns a :class:`matplotlib.figure.Figure` and never calls ``show()`` (Jupyter
displays the returned figure; a script saves it with ``fig.savefig``). Matplotlib (the ``plot``
extra) is imported when a function runs, not with the module. Lazy (dask) input is fine: only
the slices drawn and the spectra are computed.

Spectra of fields on different grids are compared in physical units: the wavenumber in cycles
per coordinate unit (``1 / wavelength``) and the density multiplied by the cell area, so that
a coarse field and a fine one agree at the scales both resolve.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from .checks import check_dataarray, find_spatial_dims, grid_info
from .spectra import ScaleChoice, Transform, _apply_transform, psd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ensemble", "field", "spectra"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "xdownscale.plot needs matplotlib: pip install 'xdownscale[plot]'"
        ) from err
    return plt


_DEGREES = {
    "degrees_east": "°E",
    "degree_east": "°E",
    "degrees_north": "°N",
    "degree_north": "°N",
    "degrees": "°",
    "degree": "°",
}


def _pretty_units(units: Any) -> str:
    return _DEGREES.get(str(units), str(units)) if units else ""


def _label(obj: xr.DataArray, fallback: str = "") -> str:
    """'name (units)' from CF attributes: a short long_name, else the standard name, else the
    variable's name."""
    long_name = str(obj.attrs.get("long_name", ""))
    if long_name and len(long_name) <= 32:
        name = long_name
    elif obj.attrs.get("standard_name"):
        name = str(obj.attrs["standard_name"]).replace("lwe_", "").replace("_", " ")
    else:
        name = str(obj.name) if obj.name is not None else (long_name or fallback)
    units = _pretty_units(obj.attrs.get("units"))
    return f"{name} ({units})" if units else name


def _figure(ax: Axes) -> Figure:
    return ax.figure  # type: ignore[return-value]  # a SubFigure draws the same


def _select(da: xr.DataArray, keep: Sequence[Hashable]) -> tuple[xr.DataArray, str]:
    """Index 0 of every dim not in ``keep`` (still lazy), and words for what was picked."""
    sel = {d: 0 for d in da.dims if d not in keep}
    picked = da.isel(sel) if sel else da
    where = []
    for d in sel:
        value: Any = picked.coords[d].values if d in picked.coords else 0
        if np.issubdtype(np.asarray(value).dtype, np.datetime64):
            text = np.datetime_as_string(value, unit="m").replace("T", " ")
        else:
            text = f"{value}"
        where.append(f"{d} = {text}")
    return picked, ", ".join(where)


def _one_field(da: xr.DataArray, name: str, spatial_dims: Sequence[Hashable] | None):
    """The first 2-D slice of ``da`` (index 0 of every other dim), computed, and its words."""
    check_dataarray(da, name)
    y, x = find_spatial_dims(da, spatial_dims)
    picked, where = _select(da, (y, x))
    return picked.transpose(y, x).compute(), y, x, where


def _draw(ax: Axes, f: xr.DataArray, y: Hashable, x: Hashable, **kw: Any) -> Any:
    """pcolormesh on the coordinates (or indices), with labelled physical axes."""
    xs = f[x] if x in f.coords else xr.DataArray(np.arange(f.sizes[x]), dims=(x,), name=f"{x}")
    ys = f[y] if y in f.coords else xr.DataArray(np.arange(f.sizes[y]), dims=(y,), name=f"{y}")
    im = ax.pcolormesh(xs.values, ys.values, f.values, shading="nearest", **kw)
    info = grid_info(f, (y, x))
    xlabel, ylabel = _label(xs, str(x)), _label(ys, str(y))
    if info.units is None and x not in f.coords:
        xlabel, ylabel = f"{x} (grid cells)", f"{y} (grid cells)"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if str(info.units or "").startswith("degree"):  # keep shapes on a lat-lon grid
        lat = float(np.nanmean(ys.values))
        ax.set_aspect(1.0 / max(np.cos(np.deg2rad(lat)), 0.1))
    else:
        ax.set_aspect("equal")
    return im


def _panel_ratio(f: xr.DataArray, y: Hashable, x: Hashable) -> float:
    """Width / height of a map of ``f`` as :func:`_draw` shapes it."""
    info = grid_info(f, (y, x))
    if info.dx is None or info.dy is None:
        return f.sizes[x] / f.sizes[y]
    ratio = (info.dx * f.sizes[x]) / (info.dy * f.sizes[y])
    if str(info.units or "").startswith("degree") and y in f.coords:
        ratio *= max(np.cos(np.deg2rad(float(np.nanmean(f[y].values)))), 0.1)
    return float(np.clip(ratio, 0.3, 3.0))


def field(
    da: xr.DataArray,
    *,
    ax: Axes | None = None,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> Figure:
    """A map of one field with its coordinates and units in the labels.

    Parameters
    ----------
    da : xarray.DataArray
        A field with two spatial dims; of any other dims the first index is drawn (and named
        in the title).
    ax : matplotlib.axes.Axes, optional
        Draw here instead of a new figure.
    cmap : str, optional
        Colour map (default ``"viridis"``; ``"turbo"`` suits precipitation).
    vmin, vmax : float, optional
        Colour range (default the minimum and the 99.5th percentile, NaN ignored; the colour
        bar extends past vmax).
    title : str, optional
        Default the variable's name and the slice drawn.
    spatial_dims : (y, x), optional
        Override the discovery of the spatial dims.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import xdownscale, xdownscale.plot
    >>> fig = xdownscale.plot.field(xdownscale.datasets.open_sample())
    >>> fig.axes[0].get_xlabel(), fig.axes[1].get_ylabel()
    ('longitude (°E)', 'precipitation rate (mm h-1)')
    """
    plt = _pyplot()
    f, y, x, where = _one_field(da, "da", spatial_dims)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5), constrained_layout=True)
    fig = _figure(ax)
    finite = f.values[np.isfinite(f.values)]
    if vmin is None and finite.size:
        vmin = float(finite.min())
    if vmax is None and finite.size:
        vmax = float(np.percentile(finite, 99.5))  # a few extreme cells do not wash it out
    im = _draw(ax, f, y, x, cmap=cmap or "viridis", vmin=vmin, vmax=vmax)
    fig.colorbar(im, ax=ax, label=_label(da, "value"), shrink=0.9, extend="max")
    name = "" if da.name is None else str(da.name)
    ax.set_title(
        title if title is not None else ", ".join(t for t in (name, where) if t), fontsize=10
    )
    return fig


def _spectrum(obj: xr.DataArray, label: str, transform: Transform, spatial_dims) -> xr.DataArray:
    if "wavenumber" in obj.dims:
        if obj.ndim != 1:
            raise ValueError(
                f"the spectrum {label!r} has dims {tuple(obj.dims)}; average it to 1-D first"
            )
        return obj
    check_dataarray(obj, label)
    return psd(_apply_transform(obj, transform), spatial_dims=spatial_dims).compute()


def _physical(spec: xr.DataArray) -> tuple[np.ndarray, np.ndarray, float | None, str]:
    """(k, density, spacing, units): physical when the spectrum knows its grid spacing."""
    k = spec.wavenumber.values
    p = np.asarray(spec.values, dtype=float)
    if "wavelength" in spec.coords and len(k) > 1 and np.isfinite(spec.wavelength.values[1]):
        spacing = float(spec.wavelength.values[1] * k[1])
        units = str(spec.wavelength.attrs.get("units", ""))
        return (
            k / spacing,
            p * spacing**2,
            spacing,
            "degree" if units.startswith("degree") else units,
        )
    return k, p, None, ""


def spectra(
    fields: Mapping[str, xr.DataArray] | Sequence[xr.DataArray] | xr.DataArray,
    *,
    choice: ScaleChoice | None = None,
    coarse: xr.DataArray | float | None = None,
    transform: Transform = None,
    ax: Axes | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> Figure:
    """Radially averaged spectra of any number of fields, with k* and the coarse Nyquist.

    Parameters
    ----------
    fields : mapping of label to DataArray, sequence of DataArray, or DataArray
        Fields (each averaged over its non-spatial dims) or spectra from
        :func:`xdownscale.psd`. Labels default to the names. Fields on different grids are
        drawn against physical wavenumber when their spacing is known.
    choice : ScaleChoice, optional
        Marks k* (and the wavelength it stands for) from :func:`xdownscale.choose_scale`.
    coarse : DataArray or float, optional
        The coarse field (or its grid spacing) whose Nyquist wavenumber ``0.5 / spacing`` is
        marked; default the coarsest grid among ``fields`` when they are on several grids.
    transform : None, "log" or callable
        Applied to each field before its spectrum (as in :func:`xdownscale.choose_scale`).
    ax : matplotlib.axes.Axes, optional
    spatial_dims : (y, x), optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the fields mix grids without a known spacing (the curves could not be compared).

    Examples
    --------
    >>> import xdownscale, xdownscale.plot
    >>> fine = xdownscale.datasets.open_sample()
    >>> fig = xdownscale.plot.spectra({"radar": fine, "8x coarser": fine.downscale.coarsen(8)})
    >>> fig.axes[0].get_xlabel()
    'wavenumber (cycles per degree)'
    """
    plt = _pyplot()
    if isinstance(fields, xr.DataArray):
        fields = [fields]
    if not isinstance(fields, Mapping):
        fields = {
            str(f.name) if f.name is not None else f"field {i}": f for i, f in enumerate(fields)
        }
    if not fields:
        raise ValueError("fields is empty; pass at least one DataArray")
    curves = {
        lab: _physical(_spectrum(f, lab, transform, spatial_dims)) for lab, f in fields.items()
    }
    spacings = {c[2] for c in curves.values()}
    physical = None not in spacings
    if not physical and len({len(c[0]) for c in curves.values()}) > 1:
        raise ValueError(
            f"the fields {list(fields)} are on different grids but not all have a regular, "
            "square grid spacing from their coordinates, so their spectra cannot be put on one "
            "wavenumber axis; give them x/y coordinates with units"
        )
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    fig = _figure(ax)
    units = next(c[3] for c in curves.values())
    for i, (lab, (k, p, _, _)) in enumerate(curves.items()):
        m = k > 0
        ax.loglog(k[m], p[m], color="k" if i == 0 else f"C{i - 1}", label=lab)
    if coarse is None and physical and len(spacings) > 1:
        coarse = max(s for s in spacings if s is not None)
    if isinstance(coarse, xr.DataArray):
        coarse = grid_info(coarse, spatial_dims).spacing
        if coarse is None or not physical:
            raise ValueError("coarse has no regular square grid spacing to mark its Nyquist")
    if coarse is not None:
        nyq = 0.5 / float(coarse) if physical else 0.5
        ax.axvline(
            nyq,
            color="0.5",
            ls=":",
            label=f"coarse Nyquist (λ = {_length(2 * float(coarse), units)})",
        )
    if choice is not None:
        if physical and choice.wavelength_star:
            ks, text = 1.0 / choice.wavelength_star, f"λ = {_length(choice.wavelength_star, units)}"
        else:
            ks, text = choice.k_star, f"{choice.k_star:.3g} cycles per cell"
        ax.axvline(ks, color="C3", ls="--", label=f"k* ({text})")
    first = next(iter(fields.values()))
    quantity = _label(first, "field")
    if transform is not None:  # the transformed field has no units
        unitless = first.copy(deep=False)
        unitless.attrs = {k: v for k, v in first.attrs.items() if k != "units"}
        bare = _label(unitless, "field")
        quantity = f"{'log' if transform == 'log' else 'transformed'} {bare}"
    if physical:
        ax.set_xlabel(f"wavenumber (cycles per {units})")
        ax.set_ylabel(f"PSD of {quantity} × {units}²")
        top = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
        top.set_xlabel(f"wavelength ({units})")
    else:
        ax.set_xlabel("wavenumber (cycles per grid cell)")
        ax.set_ylabel(f"PSD of {quantity}")
    ax.legend(fontsize="small")
    return fig


def _length(value: float, units: str) -> str:
    return f"{value:.3g}°" if units == "degree" else f"{value:.3g} {units}".strip()


def _inverse(v: Any) -> Any:
    with np.errstate(divide="ignore"):
        return 1.0 / np.asarray(v, dtype=float)


def ensemble(
    members: xr.DataArray,
    coarse: xr.DataArray | None = None,
    *,
    n: int = 3,
    statistic: Literal["spread", "exceedance"] = "spread",
    threshold: float | None = None,
    cmap: str | None = None,
    spatial_dims: Sequence[Hashable] | None = None,
) -> Figure:
    """Coarse input, a few members, the ensemble mean and the spread (or exceedance) side by side.

    The coarse input, the members and the mean share one colour scale; the spread (standard
    deviation across members, same units) or the probability of exceeding ``threshold`` has
    its own. All panels are on the physical coordinates.

    Parameters
    ----------
    members : xarray.DataArray
        An ensemble with a ``realization`` dim (from :func:`xdownscale.ensemble`); of other
        non-spatial dims the first index is drawn.
    coarse : xarray.DataArray, optional
        The coarse input, drawn first on its own grid.
    n : int
        How many members to draw (the first ``n``; mean and spread use all of them).
    statistic : {"spread", "exceedance"}
        The last panel: the standard deviation across members, or P(member > threshold).
    threshold : float, optional
        Needed for ``statistic="exceedance"``, in the members' units.
    cmap : str, optional
        Colour map of the field panels (default ``"turbo"``).
    spatial_dims : (y, x), optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per panel and one per colour bar.
    """
    plt = _pyplot()
    check_dataarray(members, "members")
    if "realization" not in members.dims:
        raise ValueError(
            f"members has dims {tuple(members.dims)} but no 'realization' dim; pass the "
            "members from xdownscale.ensemble(..., reduce=None)"
        )
    if statistic not in ("spread", "exceedance"):
        raise ValueError(f"statistic={statistic!r} is not supported; use 'spread' or 'exceedance'")
    if statistic == "exceedance" and threshold is None:
        raise ValueError(
            "statistic='exceedance' needs threshold=, in the members' units "
            f"({members.attrs.get('units', 'no units')}), e.g. threshold=1.0"
        )
    n_all = members.sizes["realization"]
    if not (isinstance(n, (int, np.integer)) and 1 <= n):
        raise ValueError(f"n={n!r} must be a positive int (the number of members to draw)")
    n = min(int(n), n_all)
    y, x = find_spatial_dims(members, spatial_dims)
    ens, where = _select(members, (y, x, "realization"))
    ens = ens.transpose("realization", y, x).compute()  # only the slice drawn
    mean = ens.mean("realization", keep_attrs=True)
    if statistic == "spread":
        last = ens.std("realization", keep_attrs=True)
        last_title, last_cmap = f"spread (std of {n_all})", "magma"
        last_label = f"std of {_label(members, 'value')}"
        finite = last.values[np.isfinite(last.values)]
        # a few extreme cells must not wash out the rest (the bar extends past vmax)
        last_kw: dict[str, Any] = {"vmin": 0.0}
        if finite.size:
            last_kw["vmax"] = float(np.percentile(finite, 99.5)) or None
    else:
        valid = ens.notnull().all("realization")
        last = (ens > threshold).mean("realization").where(valid)
        last_title = f"P(> {threshold:g} {members.attrs.get('units', '')})".replace(" )", ")")
        last_label, last_cmap, last_kw = "probability", "Blues", {"vmin": 0.0, "vmax": 1.0}
    panels: list[tuple[str, xr.DataArray]] = []
    if coarse is not None:
        c, cy, cx, _ = _one_field(coarse, "coarse", spatial_dims)
        panels.append(("coarse input", c.rename({cy: y, cx: x}) if (cy, cx) != (y, x) else c))
    panels += [(f"member {int(i)}", ens.isel(realization=i)) for i in range(n)]
    panels.append((f"ensemble mean ({n_all})", mean))
    values = np.concatenate([np.ravel(p.values) for _, p in panels])
    values = values[np.isfinite(values)]
    vmin, vmax = (
        (float(np.min(values)), float(np.percentile(values, 99.5))) if values.size else (0, 1)
    )
    width = len(panels) + 1
    ratio = _panel_ratio(ens.isel(realization=0), y, x)  # width / height of one map
    fig, axes = plt.subplots(
        1,
        width,
        figsize=(width * (2.8 * ratio + 0.5) + 2.0, 3.7),
        constrained_layout=True,
        sharex=True,
        sharey=True,
    )
    im = None
    for ax, (title, p) in zip(axes[:-1], panels, strict=True):
        im = _draw(ax, p, y, x, cmap=cmap or "turbo", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=10)
    # the shared colour bar sits beside the mean (it holds for every panel left of it)
    fig.colorbar(im, ax=axes[-2], label=_label(members, "value"), shrink=0.85, extend="max")
    im2 = _draw(axes[-1], last, y, x, cmap=last_cmap, **last_kw)
    axes[-1].set_title(last_title, fontsize=10)
    fig.colorbar(
        im2,
        ax=axes[-1],
        label=last_label,
        shrink=0.85,
        extend="max" if statistic == "spread" else "neither",
    )
    for ax in axes[1:]:
        ax.set_ylabel("")
    if where:
        fig.suptitle(where, fontsize=10)
    return fig
