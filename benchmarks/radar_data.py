"""Shared data handling for the radar model scripts (train_radar.py, eval_radar.py).

Training data: MeteoSwiss 2015-05-15 and 2016-07-11/12, FMI (2016-09-28, 2017-05-09) and MRMS
(2019-06-10). Held out, never trained or tuned on: MeteoSwiss 2017-01-31.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

DATA = Path(os.environ.get("XDOWNSCALE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RADAR = DATA / "radar"
HELD_OUT_DAY = "2017-01-31"


def _open(name: str) -> xr.DataArray:
    """Through the package's data registry (sha256-checked), the shared folder as the mirror."""
    os.environ.setdefault("XDOWNSCALE_DATA_DIR", str(DATA))
    from xdownscale.datasets import fetch_data

    try:
        path = fetch_data(f"radar/{name}")
    except FileNotFoundError as err:
        raise SystemExit(f"{err}; or set XDOWNSCALE_SHARED_DATA to the shared data folder") from None
    return xr.open_dataset(path)["precip"]


def training_sources() -> dict[str, xr.DataArray]:
    """The training frames per source (lazy), the held-out MeteoSwiss day removed."""
    mch = _open("mch_radar_precip_1km.nc")
    day = mch["time"].dt.strftime("%Y-%m-%d")
    mch_train = mch.isel(time=np.flatnonzero((day != HELD_OUT_DAY).values))
    return {
        "mch": mch_train,
        "fmi": _open("fmi_radar_precip_1km.nc"),
        "mrms": _open("mrms_precip_0p01deg_crop.nc"),
    }


def held_out() -> xr.DataArray:
    """MeteoSwiss 2017-01-31 (evaluation only)."""
    mch = _open("mch_radar_precip_1km.nc")
    day = mch["time"].dt.strftime("%Y-%m-%d")
    return mch.isel(time=np.flatnonzero((day == HELD_OUT_DAY).values))


def patches(
    size: int = 64, per_source: int = 3000, dry_share: float = 0.25, min_valid: float = 0.95,
    wet_threshold: float = 0.1, min_wet: float = 0.1, seed: int = 0,
    sources: tuple[str, ...] = ("mch", "fmi", "mrms"), mch_years: tuple[int, ...] | None = None,
    stride: int | None = None,
) -> xr.DataArray:
    """``size`` windows every ``stride`` cells (default: non-overlapping), mostly inside
    coverage, wet ones preferred.

    Per source, up to ``per_source`` windows: ``1 - dry_share`` of them with at least
    ``min_wet`` of their cells above ``wet_threshold`` mm/h, the rest drawn from the others.
    ``sources`` picks the training sources; ``mch_years`` keeps only those MeteoSwiss years
    (the fine-tuning validation run trains on 2015 and validates on 2016).
    """
    rng = np.random.default_rng(seed)
    stride = stride or size
    out = []
    all_sources = training_sources()
    for name in sources:
        da = all_sources[name]
        if name == "mch" and mch_years is not None:
            da = da.isel(time=np.flatnonzero(np.isin(da["time"].dt.year.values, mch_years)))
        wet, dry = [], []
        for t in range(da.sizes["time"]):
            f = da.isel(time=t).values.astype(np.float32)
            w = np.lib.stride_tricks.sliding_window_view(f, (size, size))[::stride, ::stride]
            w = w.reshape(-1, size, size)
            valid = np.isfinite(w).mean((1, 2))
            wetf = (np.nan_to_num(w) > wet_threshold).mean((1, 2))
            ok = valid >= min_valid
            wet.append(w[ok & (wetf >= min_wet)])
            dry.append(w[ok & (wetf < min_wet)])
        wet, dry = np.concatenate(wet), np.concatenate(dry)
        n_wet = min(len(wet), round(per_source * (1 - dry_share)))
        n_dry = min(len(dry), per_source - n_wet)
        pick = [wet[rng.choice(len(wet), n_wet, replace=False)], dry[rng.choice(len(dry), n_dry, replace=False)]]
        print(f"{name}: {len(wet)} wet and {len(dry)} other windows; kept {n_wet} + {n_dry}", flush=True)
        out.extend(pick)
    arr = np.concatenate(out).astype(np.float32)
    arr = np.where(arr < 0, 0, arr)  # radar products never go below 0; guard rounding
    c = (np.arange(size) + 0.5) * 1000.0
    return xr.DataArray(
        arr, dims=("sample", "y", "x"),
        coords={"y": ("y", c, {"units": "m", "axis": "Y"}), "x": ("x", c, {"units": "m", "axis": "X"})},
        name="precip",
        attrs={"units": "mm h-1", "standard_name": "lwe_precipitation_rate", "long_name": "precipitation rate"},
    )
