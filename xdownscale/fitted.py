"""The one convention of the fitted objects (:class:`~xdownscale.QuantileDeltaMapping`,
:class:`~xdownscale.OptimalTransportDebiaser`).

Both are built the same way and share the same verbs, as in scikit-learn and xsdba:

- ``Obj(**options)``: keyword options only, validated at once; nothing is fitted yet;
- ``obj.fit(ref, hist, *, dim=None, ...)``: learn from the reference (observations) and the
  model over the calibration period, always in that order; returns ``obj``;
- ``obj.apply(sim, ...)``: adjust any other period of the model;
- ``obj.state_``: the fitted state, an :class:`xarray.Dataset` (what :meth:`save` writes);
  ``obj.to_dataset()`` / ``Obj.from_dataset(ds)``; ``obj.save(path)`` / ``Obj.open(path)``
  for a netCDF file or a zarr store (a path ending in ``.zarr`` or an existing directory).
"""

from __future__ import annotations

import html
import os
from typing import Any, TypeVar

import xarray as xr

__all__ = ["Fitted"]

T = TypeVar("T", bound="Fitted")


def _is_zarr(path: Any) -> bool:
    p = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    return p is None or os.path.isdir(p) or p.rstrip("/").endswith(".zarr")


class Fitted:
    """Mixin: persistence and display of a fitted state held in ``self.state_``."""

    state_: xr.Dataset | None = None

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`open`) has given this object a state."""
        return self.state_ is not None

    def _check_fitted(self) -> xr.Dataset:
        if self.state_ is None:
            name = type(self).__name__
            raise ValueError(
                f"this {name} is not fitted yet; call .fit(ref, hist) or {name}.open(path) first"
            )
        return self.state_

    def to_dataset(self) -> xr.Dataset:
        """The fitted state as an :class:`xarray.Dataset` (options in its attributes)."""
        return self._check_fitted().copy()

    @classmethod
    def from_dataset(cls: type[T], ds: xr.Dataset) -> T:  # pragma: no cover - overridden
        raise NotImplementedError

    def save(self, path: str | os.PathLike, **kwargs: Any) -> None:
        """Write the fitted state: a zarr store when ``path`` ends in ``.zarr`` (or is a
        directory or a store object), else a netCDF file. ``kwargs`` go to
        :meth:`xarray.Dataset.to_zarr` / :meth:`~xarray.Dataset.to_netcdf`."""
        ds = self.to_dataset()
        if _is_zarr(path):
            try:
                import zarr  # noqa: F401
            except ImportError:
                raise ImportError(
                    "saving to zarr needs the 'zarr' package: pip install zarr (or give a "
                    "path ending in .nc to write netCDF)"
                ) from None
            # zarr format 2 with consolidated metadata: readable by every zarr and xarray
            ds.to_zarr(path, **{"mode": "w", "zarr_format": 2, **kwargs})
        else:
            ds.to_netcdf(path, **kwargs)

    @classmethod
    def open(cls: type[T], path: str | os.PathLike, **kwargs: Any) -> T:
        """Read a state written by :meth:`save` (netCDF file or zarr store); kwargs go to
        :func:`xarray.open_zarr` / :func:`xarray.open_dataset`."""
        if _is_zarr(path):
            ds = xr.open_zarr(path, **kwargs)
        else:
            with xr.open_dataset(path, **kwargs) as f:
                ds = f.load()
        return cls.from_dataset(ds)

    # -- display
    def _summary(self) -> list[tuple[str, str]]:  # pragma: no cover - overridden
        return []

    def __repr__(self) -> str:
        rows = self._summary()
        state = "fitted" if self.is_fitted else "not fitted"
        body = ", ".join(f"{k}={v}" for k, v in rows)
        return f"<{type(self).__name__} ({state}) {body}>"

    def _repr_html_(self) -> str:
        esc = html.escape
        state = "fitted" if self.is_fitted else "not fitted"
        rows = "".join(
            f"<tr><th style='text-align:left'>{esc(k)}</th>"
            f"<td style='text-align:left'>{esc(v)}</td></tr>"
            for k, v in self._summary()
        )
        return (
            f"<div class='xdownscale-fitted'><p><b>{esc(type(self).__name__)}</b> ({state})</p>"
            f"<table>{rows}</table></div>"
        )
