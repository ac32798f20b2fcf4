"""The reference texture of :func:`xdownscale.sample`: checks and preparation (xarray layer).

``sample(..., reference=fine)`` gives the samples the texture of ``fine`` below the coarse
grid. This module checks the reference against the output grid and the model, prepares it
(model units, whole coarse blocks, at most :data:`MAX_FIELDS` fields) and measures its
spectrum, whose shape every sample takes above the anchor
(:func:`xdownscale.np_texture.reference_spectrum`, applied per field by
:func:`xdownscale.nn.pipeline.finish`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import np_texture
from .checks import check_dataarray, check_finite, grid_info
from .units import expect_units, unit_factors

if TYPE_CHECKING:
    from .nn.model import DownscalingModel

__all__ = ["MAX_FIELDS", "Reference", "prepare_reference"]


@dataclass
class Reference:
    """Fine fields of the target product (model units) and their spectra."""

    fields: np.ndarray  # (n, H, W), H and W multiples of the factor
    target_psd: tuple[np.ndarray, np.ndarray]  # (k, power) in the model's transformed space
    #: (k, ln power) in physical units, mirror-padded as the samples are: what the sampling plan
    #: carries (:func:`xdownscale.np_texture.reference_spectrum`)
    texture: tuple[tuple[float, ...], tuple[float, ...]]


MAX_FIELDS = 32


def prepare_reference(reference: Any, info, f: int, model: DownscalingModel) -> Reference:
    """Check the reference against the output grid and the model, and prepare it."""
    reference = check_finite(check_dataarray(reference, "reference"), "reference")
    dims = (info.y, info.x) if {info.y, info.x} <= set(reference.dims) else None
    rinfo = grid_info(reference, dims)
    name = f"model {model.name!r}"
    to_model = expect_units(reference.attrs.get("units"), model.card.units, "reference", name)
    if info.spacing and rinfo.spacing:
        want, have = info.spacing / f, rinfo.spacing
        if (info.units or "") != (rinfo.units or ""):
            try:
                have = have * unit_factors(str(rinfo.units), str(info.units), "reference")[0]
            except ValueError:
                raise ValueError(
                    f"reference's grid coordinates are in {rinfo.units!r} but da's in "
                    f"{info.units!r}, so their spacings cannot be compared; give both "
                    "coordinates the same units"
                ) from None
        if abs(have - want) > 0.01 * want:
            u = info.units or ""
            raise ValueError(
                f"reference has a grid spacing of {have:g} {u} but the output grid has "
                f"{want:g} {u} (da's {info.spacing:g} {u} / factor {f}): the texture must be "
                "measured on the grid it is given to; pass fine fields of the target product "
                "at the output resolution".replace("  ", " ")
            )
    ry, rx = rinfo.y, rinfo.x
    h, w = (reference.sizes[ry] // f) * f, (reference.sizes[rx] // f) * f
    need = 8 * f
    if h < need or w < need:
        raise ValueError(
            f"reference is {reference.sizes[ry]} x {reference.sizes[rx]} cells, but measuring "
            f"the texture below the coarse grid needs at least {need} x {need} (8 coarse cells "
            f"of factor {f}) per field; pass larger fine fields"
        )
    lead = [d for d in reference.dims if d not in (ry, rx)]
    arr = np.asarray(reference.transpose(*lead, ry, rx).values, dtype=np.float64)
    arr = arr.reshape(-1, *arr.shape[-2:])[:, :h, :w]
    if to_model is not None:
        arr = arr * to_model[0] + to_model[1]
    with np.errstate(invalid="ignore"):
        keep = np.nanstd(arr, axis=(-2, -1)) > 0
    arr = arr[np.flatnonzero(keep)]
    if len(arr) == 0:
        raise ValueError(
            "reference has no field with structure (every field is constant or all NaN, e.g. "
            "all dry); pass fine fields in which the variable varies"
        )
    if len(arr) > MAX_FIELDS:  # evenly spaced: a spectrum averaged over 32 fields is smooth
        pick = np.unique(np.linspace(0, len(arr) - 1, MAX_FIELDS).round().astype(int))
        arr = arr[pick]
    k, p = np_texture.ring_spectrum(model.card.forward_transform(arr))
    kt, lnp = np_texture.reference_spectrum(arr, bool(info.periodic_x))
    texture = (tuple(float(v) for v in kt), tuple(float(v) for v in lnp))
    return Reference(arr, (k, p), texture)
