"""The verbs on a Dataset: each applied to the data variables that can take it.

``ds.downscale.<verb>(..., variables=None)`` applies the DataArray verb of the same name to the
variables named by ``variables``, or by default to every data variable the verb can take (two
spatial dims and real numbers; for ``sample``/``ensemble`` also units the model accepts; for
``qdm``/``debias`` a variable of the same name in ``ref`` and ``hist``). The other variables
and the global attributes are kept; when the verb changes the grid (``coarsen``,
``upsample``, ``sample``, ``ensemble``), variables on the old grid that were not processed
cannot share the new one and are left out, with a warning naming them. When no variable
fits, the error names every candidate and why it was skipped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import xarray as xr

from .attrs import add_history
from .checks import find_spatial_dims, find_time_dim

__all__ = ["apply"]

_GRID_CHANGING = {"coarsen", "upsample", "sample", "ensemble"}


def _reason(verb: str, da: xr.DataArray, model: Any, ref: Any, hist: Any) -> str | None:
    """Why ``da`` cannot take ``verb`` (None when it can)."""
    import numpy as np

    if not (np.issubdtype(da.dtype, np.number) and not np.issubdtype(da.dtype, np.complexfloating)):
        return f"dtype {da.dtype} is not a real number"
    try:
        find_spatial_dims(da)
    except ValueError:
        return f"no two spatial dims (dims {tuple(da.dims)})"
    if verb in ("qdm", "debias"):
        try:
            find_time_dim(da)
        except ValueError:
            return f"no time dim (dims {tuple(da.dims)})"
        for name, other in (("ref", ref), ("hist", hist)):
            if isinstance(other, xr.Dataset) and da.name not in other.data_vars:
                return f"no variable {da.name!r} in {name}"
    if verb in ("sample", "ensemble"):
        from .models import load
        from .units import expect_units

        m = load(model)  # an unknown model is the caller's error, not a reason to skip
        units = da.attrs.get("units")
        if units is None:
            return f"no 'units' attribute (model {m.name!r} expects {m.card.units!r})"
        try:
            expect_units(units, m.card.units, str(da.name), f"model {m.name!r}")
        except ValueError:
            return f"units {units!r}, which model {m.name!r} (in {m.card.units!r}) cannot take"
    return None


def _pick(obj: Any, name: Hashable) -> Any:
    return obj[name] if isinstance(obj, xr.Dataset) else obj


def apply(
    ds: xr.Dataset,
    verb: str,
    call: Callable[..., Any],
    *,
    variables: Sequence[Hashable] | Hashable | None = None,
    model: Any = None,
    ref: Any = None,
    hist: Any = None,
    target: Any = None,
    reference: Any = None,
) -> Any:
    """Apply the DataArray verb ``call`` to the variables of ``ds`` that can take it.

    Parameters
    ----------
    ds : xarray.Dataset
    verb : str
        The verb's name (decides which variables fit and how results are assembled).
    call : callable
        ``call(da, *, model=..., ref=..., hist=..., target=...)``: the DataArray verb with its
        other options bound; only the keywords the verb takes are passed.
    variables : hashable or sequence of hashable, optional
        The variables to process; default every data variable that fits.
    model : model or mapping, optional
        ``sample``/``ensemble``: one model for all, or ``{variable: model}``.
    ref, hist, target, reference : Dataset or DataArray, optional
        ``qdm``/``debias`` (``ref``, ``hist``), ``choose_scale`` (``target``) and
        ``sample``/``ensemble`` (``reference``): Datasets are matched by variable name.

    Returns
    -------
    xarray.Dataset, or a dict of :class:`~xdownscale.ScaleChoice` for ``choose_scale``.

    Raises
    ------
    ValueError
        If a named variable does not exist, or no variable fits (each candidate and why).
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"expected an xarray.Dataset, got {type(ds).__name__}")
    models = dict(model) if isinstance(model, Mapping) else None
    if variables is None and models is not None:
        variables = list(models)
    if variables is None:
        names = list(ds.data_vars)
        explicit = False
    else:
        if isinstance(variables, list) or (isinstance(variables, tuple) and variables not in ds):
            names = list(variables)
        else:
            names = [variables]
        explicit = True
        missing = [n for n in names if n not in ds.data_vars]
        if missing:
            raise ValueError(
                f"variables={variables!r} names {missing}, which the Dataset does not have; its "
                f"data variables are {list(ds.data_vars)}"
            )
    if models is not None:
        missing = [n for n in names if n not in models]
        if missing:
            raise ValueError(
                f"model is a mapping without an entry for {missing}; give a model for every "
                f"variable to downscale, or pass variables={list(models)}"
            )
    chosen, skipped = [], {}
    for name in names:
        m = models[name] if models is not None else model
        why = _reason(verb, ds[name], m, ref, hist)
        if why is None:
            chosen.append(name)
        elif explicit:
            raise ValueError(f"variable {name!r} cannot take {verb}: {why}")
        else:
            skipped[name] = why
    if not chosen:
        detail = "; ".join(f"{n!r}: {w}" for n, w in skipped.items()) or "the Dataset is empty"
        raise ValueError(
            f"no data variable of the Dataset can take {verb} ({detail}); fix those, or name "
            "the variables with variables=[...]"
        )
    results = {}
    for name in chosen:
        kw: dict[str, Any] = {}
        if verb in ("sample", "ensemble"):
            kw["model"] = models[name] if models is not None else model
            if isinstance(reference, xr.Dataset):
                if name in reference.data_vars:
                    kw["reference"] = reference[name]
            elif reference is not None:
                kw["reference"] = reference
        if verb in ("qdm", "debias"):
            kw["ref"] = _pick(ref, name)
            if hist is not None or verb == "qdm":
                kw["hist"] = _pick(hist, name)
        if verb == "choose_scale":
            kw["target"] = _pick(target, name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results[name] = call(ds[name], **kw)
        for w in caught:  # say which variable each warning is about
            warnings.warn(f"variable {name!r}: {w.message}", w.category, stacklevel=3)
    if verb == "choose_scale":
        return results
    return _assemble(ds, verb, results)


def _assemble(ds: xr.Dataset, verb: str, results: dict[Hashable, Any]) -> xr.Dataset:
    out_vars: dict[Hashable, xr.DataArray] = {}
    for name, res in results.items():
        if isinstance(res, xr.Dataset):  # ensemble statistics
            for stat, v in res.data_vars.items():  # each statistic keeps the provenance
                out_vars[f"{name}_{stat}"] = v.assign_attrs({**res.attrs, **v.attrs})
        elif verb == "psd":
            out_vars[name] = res.rename(name)
        else:
            out_vars[name] = res
    out = xr.Dataset(out_vars)
    processed = set(results)
    spatial: set[Hashable] = set()
    for name in processed:
        spatial.update(find_spatial_dims(ds[name]))
    left_out = []
    for name, v in ds.data_vars.items():
        if name in processed:
            continue
        if verb in _GRID_CHANGING or verb == "psd":
            if spatial & set(v.dims):
                left_out.append(name)
                continue
        try:
            out[name] = v
        except ValueError:  # a coordinate conflict with the new grid
            left_out.append(name)
    if left_out:
        warnings.warn(
            f"{verb} left out the data variables {left_out}: they are on the input's grid and "
            f"were not processed (name them with variables=[...] to process them too)",
            UserWarning,
            stacklevel=3,
        )
    out.attrs = add_history(
        dict(ds.attrs), f"{verb} of the Dataset variables {sorted(map(str, processed))}"
    )
    return out
