"""Quantile delta mapping (QDM, Cannon et al. 2015): the xarray/dask layer of :mod:`np_qdm`.

:func:`qdm` adjusts ``sim`` in one call; :class:`QuantileDeltaMapping` is fitted once on
(ref, hist), applied to many ``sim`` and saved to netCDF or zarr (the convention of the fitted
objects: :mod:`xdownscale.fitted`). See the task page "bias-adjust with QDM" for the
conventions shared with xsdba and where they differ.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from typing import Any, Literal

import numpy as np
import xarray as xr

from . import np_qdm, np_qdm_groups
from . import progress as _progress
from ._version import __version__
from .attrs import add_history
from .checks import check_choice, check_dataarray, check_finite, check_int, find_time_dim
from .fitted import Fitted
from .units import convert_units, parse_quantity

__all__ = ["QuantileDeltaMapping", "qdm"]

Kind = Literal["additive", "multiplicative"]
Group = Literal["time", "time.season", "time.month", "time.dayofyear"]
Interp = Literal["nearest", "linear"]
Extrapolation = Literal["constant", "nan"]
_KINDS = ("additive", "multiplicative")
_PROPS = {"": None, "season": "season", "month": "month", "dayofyear": "dayofyear"}
_GROUPS = ("time", "time.season", "time.month", "time.dayofyear")
_SEASONS = "DJF MAM JJA SON"
_T_REF, _T_HIST, _T_SIM = "_qdm_t_ref", "_qdm_t_hist", "_qdm_t_sim"
DEFAULT_DOY_WINDOW = 31


# ----------------------------------------------------------------------------- validation


def _parse_group(group: Any) -> str | None:
    if not isinstance(group, str) or group not in _GROUPS:
        raise ValueError(
            f"group={group!r} is not supported; use one of {list(_GROUPS)} (the prefix is always "
            "'time', whatever the name of the time dim; pass dim= for that)"
        )
    return _PROPS[group.partition(".")[2]]


def _check_window(window: int | None, prop: str | None) -> int:
    if window is None:
        return DEFAULT_DOY_WINDOW if prop == "dayofyear" else 1
    ok = isinstance(window, (int, np.integer)) and not isinstance(window, bool)
    if not ok or window < 1 or window % 2 == 0:
        raise ValueError(
            f"window must be a positive odd integer number of time steps, got {window!r}; "
            f"e.g. window={DEFAULT_DOY_WINDOW}"
        )
    if window > 1 and prop != "dayofyear":
        raise ValueError(
            f"window={window} is only used with group='time.dayofyear'; got group with "
            f"{'no' if prop is None else repr(prop)} grouping — drop window= or use "
            "group='time.dayofyear'"
        )
    return int(window)


def _labels(da: xr.DataArray, tdim: Hashable, prop: str | None, name: str) -> np.ndarray:
    n = da.sizes[tdim]
    if prop is None:
        return np.zeros(n, dtype=np.int64)
    coord = da.coords.get(tdim)
    ok = coord is not None and (
        np.issubdtype(coord.dtype, np.datetime64)
        or (coord.dtype == object and n > 0 and hasattr(coord.values[0], "calendar"))
    )
    if not ok:
        raise ValueError(
            f"group 'time.{prop}' needs dates along dim {tdim!r} of {name}, which has "
            f"{'no coordinate' if coord is None else f'a coordinate of dtype {coord.dtype}'}; "
            "assign datetime64 or cftime dates (xr.open_dataset(..., use_cftime=True)) or use "
            "group='time'"
        )
    assert coord is not None
    month = coord.dt.month.values.astype(np.int64)
    if prop == "month":
        return month
    if prop == "season":
        return month % 12 // 3  # 0 DJF, 1 MAM, 2 JJA, 3 SON
    return coord.dt.dayofyear.values.astype(np.int64)


def _group_coord(da: xr.DataArray, tdim: Hashable, prop: str | None) -> np.ndarray | None:
    """Fractional month or season coordinate of each step (xsdba's convention), else None."""
    if prop not in ("month", "season"):
        return None
    t = da.coords[tdim]
    if prop == "month":
        return np_qdm_groups.group_coord(
            "month",
            month=t.dt.month.values,
            day=t.dt.day.values,
            days_in_month=t.dt.days_in_month.values,
        )
    calendar = t.dt.calendar
    n = t.size
    if calendar == "360_day":
        year_length = np.full(n, 360)
    elif calendar in ("noleap", "365_day"):
        year_length = np.full(n, 365)
    elif calendar in ("all_leap", "366_day"):
        year_length = np.full(n, 366)
    else:
        year_length = 365 + t.dt.is_leap_year.values.astype(int)
    return np_qdm_groups.group_coord(
        "season", dayofyear=t.dt.dayofyear.values, days_in_year=year_length
    )


_PERIOD = {"month": 12, "season": 4, "dayofyear": 366}
_NAMES = {"month": "month", "season": "season", "dayofyear": "day of year"}


def _warn_empty_groups(prop, groups, ref_l, hist_l) -> None:
    if prop is None:
        return
    empty = [
        (int(g), name)
        for name, lab in (("ref", ref_l), ("hist", hist_l))
        for g in groups
        if not np.any(lab == g)
    ]
    if not empty:
        return
    labels = _SEASONS.split() if prop == "season" else None
    show = sorted({g for g, _ in empty})
    text = ", ".join(
        f"{labels[g] if labels else g} (no data in {' and '.join(n for h, n in empty if h == g)})"
        for g in show
    )
    warnings.warn(
        f"{len(show)} {_NAMES[prop]} group(s) are empty: {text}; each borrows the factors "
        f"of the nearest {_NAMES[prop]} with data (the earlier one on a tie), as xsdba does. "
        "Calibrate on a period that covers every group, or use a coarser group= to avoid this",
        UserWarning,
        stacklevel=3,
    )


def _check_ratio_scale(da: xr.DataArray, name: str, units: str | None) -> xr.DataArray:
    """Multiplicative QDM needs data on a ratio scale: no offset units, no negative values."""
    if units is not None:
        from .units import unit_factors

        base = None
        try:
            from cf_xarray.units import units as ureg

            base = f"{ureg.Quantity(1.0, units).to_base_units().units:~}"
        except Exception:  # pint raises several error types; convert_units reports bad units
            pass
        if base and unit_factors(units, base, name)[1] != 0.0:
            raise ValueError(
                f"kind='multiplicative' takes ratios of values, but {name} is in {units!r}, a "
                f"unit with an offset (0 {units} is not zero); convert to {base!r} first "
                f"({name}.downscale... or xdownscale.units.convert_units), or use "
                "kind='additive' (temperature)"
            )
    if da.chunks is None:
        n = int((da < 0).sum())
        if n:
            raise ValueError(
                f"kind='multiplicative' needs non-negative values, but {name} holds {n} "
                f"negative value(s) of {da.size} (min {float(da.min()):.4g}); multiplicative "
                "adjustment of such data gives nonsense. Use kind='additive', or clip the "
                f"values if they are noise around zero ({name}.clip(min=0))"
            )
        return da
    return da.copy(data=da.data.map_blocks(_raise_if_negative, label=name, dtype=da.dtype))


def _raise_if_negative(block: np.ndarray, label: str) -> np.ndarray:
    n = int((block < 0).sum())
    if n:
        raise ValueError(
            f"kind='multiplicative' needs non-negative values, but a chunk of {label} holds "
            f"{n} negative value(s) of {block.size}; use kind='additive', or clip the values "
            f"if they are noise around zero ({label}.clip(min=0))"
        )
    return block


def _cell_dims(da: xr.DataArray, tdim: Hashable) -> list[Hashable]:
    return [d for d in da.dims if d != tdim]


def _cell_ids(da: xr.DataArray, dims: list[Hashable]) -> xr.DataArray:
    """Global integer id of each series, chunked like ``da`` (chunk-independent jitter)."""
    shape = tuple(da.sizes[d] for d in dims)
    ids = xr.DataArray(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape), dims=dims)
    if da.chunks is not None:
        ids = ids.chunk({d: da.chunksizes[d] for d in dims})
    return ids


def _whole_time(da: xr.DataArray, tdim: Hashable) -> xr.DataArray:
    """One chunk along time (each spatial block holds its series), time stored last.

    Storing time last here, with a slab-wise transpose per block, spares apply_ufunc the slow
    element-wise transpose it would otherwise do to bring its core dim last.
    """
    if da.chunks is not None and len(da.chunksizes[tdim]) > 1:
        da = da.chunk({tdim: -1})
    axis = da.get_axis_num(tdim)
    if axis == da.ndim - 1:
        return da
    dims = [d for d in da.dims if d != tdim] + [tdim]
    if da.chunks is None:
        data = np_qdm.move_axis_last(da.values, axis)
    else:
        import dask.array

        ind = tuple(range(da.ndim))
        out_ind = (*(i for i in ind if i != axis), axis)
        data = dask.array.blockwise(
            np_qdm.move_axis_last,
            out_ind,
            da.data,
            ind,
            axis=axis,
            dtype=da.dtype,
            meta=np.array((), da.dtype),
        )
    coords = {k: c for k, c in da.coords.items()}
    return xr.DataArray(data, dims=dims, coords=coords, attrs=da.attrs, name=da.name)


def _common_units(ref: xr.DataArray, hist: xr.DataArray) -> str | None:
    ru, hu = ref.attrs.get("units"), hist.attrs.get("units")
    if ru is None and hu is None:
        return None
    if ru is None or hu is None:
        has, lacks = ("hist", "ref") if ru is None else ("ref", "hist")
        raise ValueError(
            f"{has} has units {ru or hu!r} but {lacks} has no 'units' attribute; set it, e.g. "
            f"{lacks}.attrs['units'] = {ru or hu!r}"
        )
    return str(ru)


def _group_values(prop: str | None, ref_l: np.ndarray, hist_l: np.ndarray) -> np.ndarray:
    if prop is None:
        return np.array([0])
    if prop == "month":
        return np.arange(1, 13)
    if prop == "season":
        return np.arange(4)
    return np.union1d(np.unique(ref_l), np.unique(hist_l))


# ----------------------------------------------------------------------------- the fitted object


class QuantileDeltaMapping(Fitted):
    """Quantile delta mapping fitted once on (ref, hist), applied to any ``sim``.

    Parameters
    ----------
    kind : {"additive", "multiplicative"}
        Additive for temperature-like, multiplicative for precipitation-like variables.
    n_quantiles : int
        Number of nodes ``(k + 1/2) / n`` (xsdba ``equally_spaced_nodes``; xsdba's default is
        20, Hess et al. 2024 use 500).
    group : {"time", "time.season", "time.month", "time.dayofyear"}
        Fit separately per season, month or day of year.
    window : int, optional
        Odd window in time steps for day-of-year groups (default 31; xsdba's default is 1).
    dry_threshold : float or str, optional
        Multiplicative only: values below it (e.g. ``"0.1 mm/day"``; a number is in ref's
        units) are replaced by seeded uniform noise in (0, threshold) in ref, hist and sim,
        and adjusted values below it are set to 0.
    seed : int
        Seed of that noise (counter-based: independent of chunking and workers).

    Attributes
    ----------
    state_ : xarray.Dataset or None
        The fitted state: variables ``af``, ``hist_q``, ``ref_q`` (cell dims, ``group``,
        ``quantiles``) and the options and ``units`` in its attributes.

    Notes
    -----
    For each group and node ``tau_k = (k + 1/2) / n``, :meth:`fit` stores the type-7 quantiles
    ``F_ref^-1(tau_k)``, ``F_hist^-1(tau_k)`` and the factor
    ``af_k = F_ref^-1 - F_hist^-1`` (additive) or ``F_ref^-1 / F_hist^-1`` (multiplicative, 1
    where ``F_hist^-1 <= 0``). :meth:`apply` ranks each ``sim`` value in its group,
    ``tau = F_sim(x)``, and returns ``x + af(tau)`` or ``x * af(tau)`` [Cannon15]_.

    References
    ----------
    .. [Cannon15] Cannon, Sobie, Murdock (2015): Bias correction of GCM precipitation by quantile
       mapping: how well do methods preserve changes in quantiles and extremes? J. Climate 28,
       6938-6959.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=730)
    >>> rng = np.random.default_rng(0)
    >>> da = lambda mu: xr.DataArray(rng.normal(mu, 1, (2, 730)), dims=("x", "time"),
    ...                              coords={"time": t}, attrs={"units": "K"})
    >>> qm = QuantileDeltaMapping(n_quantiles=20, group="time.month").fit(da(1.0), da(0.0))
    >>> qm.state_.af.shape
    (2, 12, 20)
    >>> out = qm.apply(da(2.0))
    >>> round(float(out.mean()), 1), out.attrs["units"]
    (3.1, 'K')
    """

    def __init__(
        self,
        *,
        kind: Kind = "additive",
        n_quantiles: int = 50,
        group: Group = "time",
        window: int | None = None,
        dry_threshold: float | str | None = None,
        seed: int = 0,
    ) -> None:
        check_choice(
            kind,
            "kind",
            _KINDS,
            "('additive' e.g. for temperature, 'multiplicative' e.g. for precipitation)",
        )
        prop = _parse_group(group)
        self.kind = kind
        self.group = group
        self.window = _check_window(window, prop)
        self.n_quantiles = check_int(n_quantiles, "n_quantiles", 1)
        self.seed = check_int(seed, "seed", 0)
        if dry_threshold is not None and kind != "multiplicative":
            raise ValueError(
                f"dry_threshold={dry_threshold!r} is only used with kind='multiplicative' "
                "(zeros in ratios); drop it for kind='additive'"
            )
        if dry_threshold is not None and not isinstance(
            dry_threshold, (str, int, float, np.number)
        ):
            raise TypeError(
                f"dry_threshold must be a number (in ref's units) or a string with units such as "
                f"'0.1 mm/day', got {type(dry_threshold).__name__} {dry_threshold!r}"
            )
        self.dry_threshold = dry_threshold
        self.state_ = None

    # -- fitted parameters
    @property
    def units(self) -> str | None:
        """Units of ref, in which the state is stored and the result is given by default."""
        u = self._check_fitted().attrs.get("units")
        return None if u is None else str(u)

    def _threshold(self) -> float | None:
        v = self._check_fitted().attrs.get("dry_threshold")
        return None if v is None else float(v)

    def fit(
        self, ref: xr.DataArray, hist: xr.DataArray, *, dim: Hashable | None = None
    ) -> QuantileDeltaMapping:
        """Learn the quantiles of the observations ``ref`` and the model ``hist``.

        Parameters
        ----------
        ref, hist : xarray.DataArray
            Observations and model over the calibration period: same non-time dims (any
            order, any chunks; same coordinates), series of any length and calendar. NaN is
            skipped. ``hist`` is converted to ``ref``'s units.
        dim : hashable, optional
            The sample dim of ``ref`` and ``hist``: their time dim (default: found from CF
            metadata or the name).

        Returns
        -------
        self

        Raises
        ------
        TypeError
            For non-DataArray or non-real input.
        ValueError
            Missing or incompatible units, non-time dims that differ between ref and hist,
            infinite values.
        """
        ref = check_finite(check_dataarray(ref, "ref"), "ref")
        hist = check_finite(check_dataarray(hist, "hist"), "hist")
        prop = _parse_group(self.group)
        tr, th = find_time_dim(ref, dim), find_time_dim(hist, dim)
        units = _common_units(ref, hist)
        if units is not None:
            hist = convert_units(hist, units, "hist")
        thresh = None
        if self.dry_threshold is not None:
            thresh = parse_quantity(self.dry_threshold, units, "dry_threshold")
            if not np.isfinite(thresh) or thresh <= 0:
                raise ValueError(
                    f"dry_threshold must be positive and finite, got {self.dry_threshold!r}; e.g. "
                    "dry_threshold='0.1 mm/day'"
                )
        if self.kind == "multiplicative":
            ref = _check_ratio_scale(ref, "ref", units)
            hist = _check_ratio_scale(hist, "hist", units)
        cr, ch = _cell_dims(ref, tr), _cell_dims(hist, th)
        if set(cr) != set(ch):
            raise ValueError(
                f"ref has non-time dims {cr} but hist has {ch}; they must be the same (in any "
                "order) — select or rename so that both cover the same cells"
            )
        ref_l, hist_l = _labels(ref, tr, prop, "ref"), _labels(hist, th, prop, "hist")
        groups = _group_values(prop, ref_l, hist_l)
        _warn_empty_groups(prop, groups, ref_l, hist_l)
        ref_r = _whole_time(ref.rename({tr: _T_REF}), _T_REF)
        hist_r = _whole_time(hist.rename({th: _T_HIST}), _T_HIST)
        try:
            ref_r, hist_r = xr.align(ref_r, hist_r, join="exact")
        except ValueError as err:
            raise ValueError(
                f"ref and hist have different coordinates along their non-time dims {cr} "
                f"({err}); select the same cells, e.g. hist.sel(location=ref.location)"
            ) from None
        nq = self.n_quantiles
        af, hist_q, ref_q = xr.apply_ufunc(
            np_qdm.fit,
            ref_r,
            hist_r,
            _cell_ids(ref_r, cr),
            input_core_dims=[[_T_REF], [_T_HIST], []],
            output_core_dims=[["group", "quantiles"]] * 3,
            dask="parallelized",
            output_dtypes=[np.float64] * 3,
            dask_gufunc_kwargs={"output_sizes": {"group": groups.size, "quantiles": nq}},
            kwargs={
                "ref_labels": ref_l,
                "hist_labels": hist_l,
                "groups": groups,
                "n_quantiles": nq,
                "kind": self.kind,
                "window": self.window,
                "dry_threshold": thresh,
                "seed": self.seed,
                "period": _PERIOD.get(prop or ""),
            },
        )
        attrs: dict[str, Any] = {
            "xdownscale_object": "QuantileDeltaMapping",
            "method": "quantile delta mapping (Cannon et al. 2015)",
            "kind": self.kind,
            "group": self.group,
            "window": self.window,
            "n_quantiles": nq,
            "seed": self.seed,
            "node_dtype": str(ref.dtype) if np.issubdtype(ref.dtype, np.floating) else "float64",
            "xdownscale_version": __version__,
        }
        if units is not None:
            attrs["units"] = units
        if thresh is not None:
            attrs["dry_threshold"] = thresh
        coords: dict[str, Any] = {
            "quantiles": ("quantiles", np_qdm.equally_spaced_nodes(nq)),
            "group": ("group", groups, {"grouping": self.group}),
        }
        if prop == "season":
            coords["group"][2]["labels"] = _SEASONS
        var_attrs = {"units": units} if units is not None else {}
        ds = xr.Dataset(
            {
                "af": af.assign_attrs(long_name=f"{self.kind} adjustment factor"),
                "hist_q": hist_q.assign_attrs(long_name="quantiles of hist", **var_attrs),
                "ref_q": ref_q.assign_attrs(long_name="quantiles of ref", **var_attrs),
            },
            coords=coords,
            attrs=attrs,
        )
        if self.kind == "additive" and units is not None:
            ds["af"].attrs["units"] = units
        self.state_ = ds
        return self

    def apply(
        self,
        sim: xr.DataArray,
        *,
        interp: Interp = "nearest",
        extrapolation: Extrapolation = "constant",
        units: str | None = None,
        dim: Hashable | None = None,
    ) -> xr.DataArray:
        """Adjust ``sim`` (any period, any calendar of the same group labels).

        Parameters
        ----------
        sim : xarray.DataArray
            Model series; its non-time dims must include those of the fitted state (any order;
            extra dims such as ``realization`` are broadcast). Converted to :attr:`units`.
        interp : {"nearest", "linear"}
            Interpolation of the factors between nodes (xsdba's default is "nearest").
        extrapolation : {"constant", "nan"}
            Beyond the end nodes: keep the end factor, or give NaN.
        units : str, optional
            Units of the result (default: :attr:`units`, those of ref, as xsdba).
        dim : hashable, optional
            The sample dim of ``sim``: its time dim.

        Returns
        -------
        xarray.DataArray
            Adjusted ``sim``: same dims, coords and attrs, ``units`` set, a ``history`` line
            prepended. Lazy when ``sim`` or the fitted state is.

        Raises
        ------
        TypeError, ValueError
            For bad input (see the messages).
        """
        state = self._check_fitted()
        sim = check_finite(check_dataarray(sim, "sim"), "sim")
        check_choice(interp, "interp", ("nearest", "linear"))
        check_choice(extrapolation, "extrapolation", ("constant", "nan"))
        ts = find_time_dim(sim, dim)
        fit_units = self.units
        sim_units = sim.attrs.get("units")
        if fit_units is None and (sim_units is not None or units is not None):
            raise ValueError(
                f"sim has units {sim_units!r} (or units={units!r} was asked) but ref/hist had "
                "none, so they cannot be compared; set ref.attrs['units'] and "
                "hist.attrs['units'] before fitting"
            )
        sim_c = sim if fit_units is None else convert_units(sim, fit_units, "sim")
        if self.kind == "multiplicative":
            sim_c = _check_ratio_scale(sim_c, "sim", fit_units)
        prop = _parse_group(self.group)
        labels = _labels(sim, ts, prop, "sim")
        groups = np.asarray(state["group"].values)
        extra = np.setdiff1d(np.unique(labels), groups)
        if extra.size:
            raise ValueError(
                f"sim has {prop} labels {extra.tolist()[:5]} that ref/hist do not have (fitted "
                f"labels {groups.min()}..{groups.max()}); use the same calendar for sim as for "
                "the training data, e.g. sim.convert_calendar(...)"
            )
        cells = _cell_dims(sim, ts)
        af = state["af"]
        missing = [d for d in af.dims if d not in ("group", "quantiles") and d not in cells]
        if missing:
            raise ValueError(
                f"the fitted state has dims {missing} that sim (dims {tuple(sim.dims)}) lacks; "
                "adjust a sim that covers the same cells"
            )
        sim_r = _whole_time(sim_c.rename({ts: _T_SIM}), _T_SIM)
        try:
            sim_r, af = xr.align(sim_r, af, join="exact")
        except ValueError as err:
            raise ValueError(
                f"sim and the fitted state have different coordinates along {cells} ({err}); "
                "select the same cells"
            ) from None
        if af.chunks is not None:
            af = af.chunk({"group": -1, "quantiles": -1})
        dtype = sim_r.dtype if np.issubdtype(sim_r.dtype, np.floating) else np.float64
        threshold = self._threshold()
        out = xr.apply_ufunc(
            np_qdm.adjust,
            sim_r,
            af,
            _cell_ids(sim_r, cells),
            input_core_dims=[[_T_SIM], ["group", "quantiles"], []],
            output_core_dims=[[_T_SIM]],
            dask="parallelized",
            output_dtypes=[dtype],
            kwargs={
                "sim_labels": labels,
                "groups": groups,
                "kind": self.kind,
                "interp": interp,
                "extrapolation": extrapolation,
                "window": self.window,
                "dry_threshold": threshold,
                "seed": self.seed,
                "time_first": sim.dims[0] == ts,
                "group_coord": _group_coord(sim, ts, prop) if interp == "linear" else None,
                "nodes": np_qdm_groups.xsdba_nodes(
                    self.n_quantiles, np.dtype(state.attrs.get("node_dtype", "float32"))
                ),
            },
        )
        out = out.rename({_T_SIM: ts}).transpose(*sim.dims)
        out = out.assign_coords({k: c for k, c in sim.coords.items() if k not in out.coords})
        out_units = fit_units
        if units is not None:
            out = convert_units(out.assign_attrs(units=fit_units), units, "the result")
            out_units = units
        params = (
            f"kind={self.kind!r}, n_quantiles={self.n_quantiles}, group={self.group!r}, "
            + (f"window={self.window}, " if self.group == "time.dayofyear" else "")
            + f"interp={interp!r}, extrapolation={extrapolation!r}, "
            + (
                "dry_threshold=None"
                if threshold is None
                else f"dry_threshold={threshold!r} {fit_units or ''}".rstrip()
            )
            + f", seed={self.seed}"
        )
        attrs = dict(sim.attrs)
        if out_units is not None:
            attrs["units"] = out_units
        attrs = add_history(attrs, f"quantile delta mapping qdm({params}) (Cannon et al. 2015)")
        out.attrs = attrs
        out.name = sim.name
        return out

    # -- persistence and display
    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> QuantileDeltaMapping:
        """A fitted object from its state (:meth:`to_dataset`, or a file read by :meth:`open`).

        Raises
        ------
        ValueError
            If ``ds`` is not a fitted QuantileDeltaMapping state.
        """
        missing = [v for v in ("af", "hist_q", "ref_q") if v not in ds]
        missing += [
            a for a in ("kind", "group", "window", "n_quantiles", "seed") if a not in ds.attrs
        ]
        if missing:
            raise ValueError(
                f"the dataset is not a fitted QuantileDeltaMapping state: it lacks {missing}; "
                "create one with QuantileDeltaMapping(...).fit(ref, hist) or open a file "
                "written by .save()"
            )
        a = ds.attrs
        obj = cls(
            kind=str(a["kind"]),  # type: ignore[arg-type]
            n_quantiles=int(a["n_quantiles"]),
            group=str(a["group"]),  # type: ignore[arg-type]
            window=int(a["window"]) if str(a["group"]) == "time.dayofyear" else None,
            seed=int(a["seed"]),
        )
        obj.dry_threshold = None if a.get("dry_threshold") is None else float(a["dry_threshold"])
        obj.state_ = ds
        return obj

    def _summary(self) -> list[tuple[str, str]]:
        rows = [
            ("kind", repr(self.kind)),
            ("group", repr(self.group)),
            ("window", str(self.window)),
            ("n_quantiles", str(self.n_quantiles)),
        ]
        if self.is_fitted:
            af = self._check_fitted()["af"]
            cells = {str(d): n for d, n in af.sizes.items() if d not in ("group", "quantiles")}
            rows += [("units", repr(self.units)), ("cells", str(cells))]
            if "group" in af.dims:
                rows.append(("groups", str(af.sizes["group"])))
            if af.chunks is None:  # a range at a glance, unless that needs a compute
                v = np.asarray(af.values, dtype=float)
                v = v[np.isfinite(v)]
                if v.size:
                    lo, med, hi = np.percentile(v, [0, 50, 100])
                    unit = "" if self.kind == "multiplicative" else f" {self.units or ''}"
                    rows.append(
                        ("factors", f"{lo:.3g} .. {hi:.3g}, median {med:.3g}{unit}".rstrip())
                    )
            if self._threshold() is not None:
                rows.append(("dry_threshold", f"{self._threshold():g} {self.units or ''}".strip()))
        return rows


# ----------------------------------------------------------------------------- function


def qdm(
    sim: xr.DataArray,
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
    """Bias-adjust ``sim`` by quantile delta mapping against ``ref`` (obs) and ``hist`` (model).

    Shorthand for ``QuantileDeltaMapping(...).fit(ref, hist).apply(sim, ...)``; keep the
    fitted object to adjust several periods or to save it.

    Parameters
    ----------
    sim : xarray.DataArray
        Model series to adjust (e.g. the projection period).
    ref, hist : xarray.DataArray
        Observations and model over the calibration period.
    kind, n_quantiles, group, window, dry_threshold, seed
        See :class:`QuantileDeltaMapping`.
    interp, extrapolation, units
        See :meth:`QuantileDeltaMapping.apply`.
    dim : hashable, optional
        The sample dim of all inputs: their time dim (default: found with
        :func:`find_time_dim`).
    progress : bool
        Compute a lazy result now with a progress bar (persisted under a distributed client;
        :func:`xdownscale.progress.compute`).

    Returns
    -------
    xarray.DataArray
        Adjusted ``sim`` in ref's units (or ``units``), lazy when any input is lazy.

    Notes
    -----
    With ``tau = F_sim(x)`` the rank of ``x`` in its group of ``sim`` [Cannon15]_:
    additive ``x + F_ref^-1(tau) - F_hist^-1(tau)``; multiplicative
    ``x F_ref^-1(tau) / F_hist^-1(tau)``. The model's change of every quantile is kept.
    Memory: each spatial block holds the whole series of its cells (dask inputs split along time
    are rechunked to one time chunk, stored time-last) and needs, besides its inputs and output,
    about ``13 (n_ref + n_hist)`` bytes per cell to fit and about 5 MB of temporaries to adjust
    (batches of 2^18 values).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=1000)
    >>> rng = np.random.default_rng(0)
    >>> pr = lambda s: xr.DataArray(rng.gamma(0.5, s, (3, 1000)), dims=("x", "time"),
    ...                             coords={"time": t}, attrs={"units": "mm/day"})
    >>> sim, ref, hist = pr(2.0), pr(4.0), pr(1.0)
    >>> out = qdm(sim, ref, hist, kind="multiplicative", dry_threshold="0.1 mm/day")
    >>> out.dims, round(float(out.mean() / sim.mean()), 1)
    (('x', 'time'), 4.0)
    """
    qm = QuantileDeltaMapping(
        kind=kind,
        n_quantiles=n_quantiles,
        group=group,
        window=window,
        dry_threshold=dry_threshold,
        seed=seed,
    )
    out = qm.fit(ref, hist, dim=dim).apply(
        sim, interp=interp, extrapolation=extrapolation, units=units, dim=dim
    )
    return _progress.compute(out, "qdm") if progress else out
