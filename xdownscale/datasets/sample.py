"""The small real sample embedded in the package (no network needed)."""

from __future__ import annotations

import hashlib
from importlib import resources

import xarray as xr

SAMPLE_SHA256 = "66c8f56662389c62dec8bec5c629a3824f01f9ae895027a5e85689d9a27ed362"
_SAMPLES = {"mrms": "mrms_sample.nc.gz"}


def open_sample(name: str = "mrms") -> xr.DataArray:
    """Open the embedded radar sample as a DataArray (read into memory, ~2 MB).

    ``"mrms"``: NOAA/NSSL MRMS precipitation rate (US government work, public domain),
    2019-06-10 00:00-01:00 every 20 minutes, a 256 x 256 crop at 0.01 degree (about 1 km) over
    Michigan, in mm h-1. The file's sha256 is checked before it is read.

    Examples
    --------
    >>> pr = open_sample()
    >>> pr.dims, pr.shape, pr.attrs["units"]
    (('time', 'lat', 'lon'), (4, 256, 256), 'mm h-1')
    """
    if name not in _SAMPLES:
        raise ValueError(f"unknown sample {name!r}; available: {sorted(_SAMPLES)}")
    ref = resources.files("xdownscale.data").joinpath(_SAMPLES[name])
    with resources.as_file(ref) as path:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != SAMPLE_SHA256:
            raise OSError(
                f"embedded sample {path} has sha256 {digest}, expected {SAMPLE_SHA256}: the "
                "installation is damaged; reinstall xdownscale"
            )
        with xr.open_dataset(path, engine="scipy") as ds:
            da = ds["precip"].astype("float32").load()
    da.attrs.update(ds.attrs | da.attrs)
    da.attrs["units"] = "mm h-1"
    return da
