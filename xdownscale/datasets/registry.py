"""The real sample data (xsdba's test set, radar composites, ERA5) through a pooch registry.

These files are public data that do not ship with xdownscale (their licences, and their size).
:func:`fetch_data` finds one by name and checks its sha256 before returning it, from

``XDOWNSCALE_DATA_DIR``
    a local mirror directory holding the files under their registered names (e.g. a
    project checkout's ``shared/data``): used in place, nothing is copied; or
``XDOWNSCALE_DATA_URL``
    a base URL serving them: downloaded once with pooch into ``<XDOWNSCALE_CACHE>/data``.

There is no public default server for these converted files, so one of the two must be set;
without either, the error says so. ``XDOWNSCALE_RETRIES`` applies to downloads as for models.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

__all__ = ["DATA_FILES", "data_names", "fetch_data", "open_data"]

#: registered name (path under the mirror) -> (sha256, description)
DATA_FILES: dict[str, tuple[str, str]] = {
    "sdba/CanESM2_1950-2100.nc": (
        "b41fe603676e70d16c747ec207eb75ec86a39b665de401dcb23b5969ab3e1b32",
        "CMIP5 CanESM2 daily pr and tasmax, historical + RCP8.5, 3 locations (xsdba test set)",
    ),
    "sdba/ahccd_1950-2013.nc": (
        "7e9a1f61c1d04ca257b09857a82715f1fa3f0550d77f97b7306d4eaaf0c70239",
        "AHCCD station observations at the same 3 locations (Open Government Licence - Canada)",
    ),
    "sdba/nrcan_1950-2013.nc": (
        "4ce2dcfdac09b028db0f3e348272a496d796c36d4f3c4a412ebcca11449b7237",
        "NRCan 10 km gridded observations at the 3 locations (internal use: do not redistribute)",
    ),
    "radar/mch_radar_precip_1km.nc": (
        "ca9470a7aa679b08e7156ed5d8bb54fab28bfcd23af2be88f876f2af6e90b642",
        "MeteoSwiss radar composite, 1 km, 2015-05-15, 2016-07-11/12, 2017-01-31 (pysteps-data)",
    ),
    "radar/fmi_radar_precip_1km.nc": (
        "9a8ab104de003ce668f63749da8eba45b5b0cdff5413b1381ff04e122bb06561",
        "FMI radar composite, ~1 km, 2016-09-28 and 2017-05-09 (pysteps-data)",
    ),
    "radar/mrms_precip_0p01deg_crop.nc": (
        "f237b6484404f0f2e0a1386d7afbfeae60311729837eefad1c704bc171266f80",
        "NOAA MRMS precipitation rate, 0.01 deg crop, 2019-06-10 (public domain)",
    ),
    "demo/era5_t2m_2019-03_uk_0p25deg.nc": (
        "9d074b15b8ffe574f35dc40b274ac881139022b13159ca67754f5c647fd7a156",
        "ERA5 hourly 2 m temperature, March 2019, UK and Ireland, 0.25 deg (xarray-data)",
    ),
    "demo/eraint_uvz.nc": (
        "8f4cd0f75418a8e8f8f957c3b007f49e68a58d1bdd0e028adeeb057889f635d2",
        "ERA-Interim monthly z, u, v at 200/500/850 hPa, global 0.75 deg (xarray-data)",
    ),
}

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


def data_names() -> list[str]:
    """The registered data files, sorted.

    Examples
    --------
    >>> "radar/mch_radar_precip_1km.nc" in data_names()
    True
    """
    return sorted(DATA_FILES)


def _help() -> str:
    return (
        "set XDOWNSCALE_DATA_DIR to a directory holding the files under their registered "
        "names (e.g. a checkout's shared/data: export XDOWNSCALE_DATA_DIR=../shared/data), or "
        "XDOWNSCALE_DATA_URL to a server that serves them"
    )


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        import pooch

        _VERIFIED[key] = pooch.file_hash(str(path), alg="sha256")
    return _VERIFIED[key]


def fetch_data(name: str) -> Path:
    """Path of a registered data file, verified against its sha256.

    Parameters
    ----------
    name : str
        A registered name (:func:`data_names`), e.g. ``"radar/mch_radar_precip_1km.nc"``.

    Returns
    -------
    pathlib.Path
        The file in the mirror (``XDOWNSCALE_DATA_DIR``) or in the download cache.

    Raises
    ------
    ValueError
        Unknown name; a file whose hash does not match (a download is then not kept).
    FileNotFoundError
        The mirror lacks the file, or no source is configured.
    ConnectionError
        The download failed.
    """
    if not isinstance(name, str) or name not in DATA_FILES:
        raise ValueError(f"unknown data file {name!r}; registered: {', '.join(data_names())}")
    sha = DATA_FILES[name][0]
    mirror = os.environ.get("XDOWNSCALE_DATA_DIR")
    if mirror:
        path = Path(mirror).expanduser() / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{name!r} is not in the mirror XDOWNSCALE_DATA_DIR={mirror!r} (looked for "
                f"{path}); copy it there, or unset XDOWNSCALE_DATA_DIR and set "
                "XDOWNSCALE_DATA_URL to download it"
            )
        got = _sha256(path)
        if got != sha:
            raise ValueError(
                f"{path} has sha256 {got}, not the registered {sha}: the mirror holds another "
                "version of the file; replace it with the registered one"
            )
        return path
    url = os.environ.get("XDOWNSCALE_DATA_URL")
    if not url:
        raise FileNotFoundError(f"no source is configured for the data file {name!r}: {_help()}")
    from ..models.registry import cache_dir, download

    return download(
        name,
        sha,
        url=url if url.endswith("/") else url + "/",
        path=cache_dir() / "data",
        what=f"data file {name!r}",
        offline=_help()[0].upper() + _help()[1:] + ".",
        fix="Fix the server, or use a local mirror (XDOWNSCALE_DATA_DIR)",
    )


def open_data(name: str, **kwargs) -> xr.Dataset:
    """Open a registered data file with :func:`xarray.open_dataset` (after :func:`fetch_data`).

    Parameters
    ----------
    name : str
        A registered name.
    **kwargs
        Passed to :func:`xarray.open_dataset` (e.g. ``chunks={"time": 24}``).

    Returns
    -------
    xarray.Dataset
    """
    return xr.open_dataset(fetch_data(name), **kwargs)
