"""The model registry: names, hashes, the cache and downloads (pooch). No torch here.

Each registered model is one weight file with a known sha256. Small ones ship inside the
package (``xdownscale/models/weights/``, found with no network); the others are downloaded
with pooch from ``base_url()`` into ``cache_dir()`` and checked against their hash before use.

Environment variables:

``XDOWNSCALE_CACHE``
    Cache directory (default: ``pooch.os_cache("xdownscale")``, e.g. ``~/.cache/xdownscale``).
    Point it at a shared, pre-filled directory to work offline.
``XDOWNSCALE_BASE_URL``
    Base URL of a mirror holding the weight files (default: the project's release assets).
``XDOWNSCALE_RETRIES``
    Download retries after a failure (default 2).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pooch

__all__ = ["DEFAULT_MODEL", "Entry", "base_url", "cache_dir", "entries", "fetch", "list_models"]

DEFAULT_MODEL = "radar-8x"
DEFAULT_BASE_URL = "https://github.com/xdownscale/xdownscale-weights/releases/download/v1/"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY_FILE = Path(__file__).resolve().parent / "registry.json"


@dataclass(frozen=True)
class Entry:
    """One registered weight file."""

    name: str
    file: str
    sha256: str
    embedded: bool = False
    version: str = ""
    description: str = ""

    @property
    def path(self) -> Path:
        """Where the file lives: inside the package (embedded) or in the cache."""
        return WEIGHTS_DIR / self.file if self.embedded else cache_dir() / self.file


def _read_registry() -> dict[str, Entry]:
    raw = json.loads(REGISTRY_FILE.read_text())
    return {name: Entry(name=name, **fields) for name, fields in raw.items()}


#: name -> :class:`Entry`; read from ``registry.json`` next to this module.
REGISTRY: dict[str, Entry] = _read_registry()


def entries() -> dict[str, Entry]:
    """A copy of the registry."""
    return dict(REGISTRY)


def list_models() -> list[str]:
    """Names of the registered models, sorted.

    Examples
    --------
    >>> "radar-8x" in list_models()
    True
    """
    return sorted(REGISTRY)


def cache_dir() -> Path:
    """The download cache: ``$XDOWNSCALE_CACHE`` or ``pooch.os_cache("xdownscale")``."""
    env = os.environ.get("XDOWNSCALE_CACHE")
    return Path(env).expanduser() if env else Path(pooch.os_cache("xdownscale"))


def base_url() -> str:
    """The download base URL: ``$XDOWNSCALE_BASE_URL`` or the project's release assets."""
    url = os.environ.get("XDOWNSCALE_BASE_URL") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def _retries() -> int:
    value = os.environ.get("XDOWNSCALE_RETRIES", "2")
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ValueError(
            f"XDOWNSCALE_RETRIES={value!r} must be an integer >= 0, e.g. "
            "export XDOWNSCALE_RETRIES=2"
        )
    return n


def _progressbar() -> bool:
    """A progress bar only when tqdm is installed and stderr is a terminal."""
    if not sys.stderr.isatty():
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _unknown(name: object) -> str:
    return (
        f"unknown model {name!r}; registered models: {', '.join(list_models())} "
        "(xdownscale.models.list_models()); to use your own weights pass a path to a file "
        "written by xdownscale.train or xdownscale.models.save"
    )


def _offline_help(entry: Entry) -> str:
    return (
        "To work offline: on a machine with internet run `xdownscale fetch --all` (or "
        "`python -m xdownscale.models fetch --all`) with XDOWNSCALE_CACHE set to a directory "
        "this machine can read, then set XDOWNSCALE_CACHE to that directory here; or set "
        "XDOWNSCALE_BASE_URL to a reachable mirror; or copy the file and load it by path: "
        f"xdownscale.models.load('/path/to/{entry.file}'). The embedded default model "
        f"({DEFAULT_MODEL!r}) needs no network."
    )


def fetch(name: str) -> Path:
    """Path of a registered model's weight file, downloading it into the cache if needed.

    Parameters
    ----------
    name : str
        A registered name (:func:`list_models`).

    Returns
    -------
    pathlib.Path
        The file, inside the package for embedded models, else in :func:`cache_dir`. Downloads
        are checked against the registered sha256 before they are moved into the cache; a
        cached file whose hash no longer matches is downloaded again.

    Raises
    ------
    ValueError
        Unknown name; the server sends a file with another hash (nothing is kept); an embedded
        file that is missing or altered.
    ConnectionError
        The download failed (server down, no network); the message says how to work offline.

    Examples
    --------
    >>> fetch("radar-8x").name.endswith(".pt")
    True
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(_unknown(name))
    entry = REGISTRY[name]
    if entry.embedded:
        path = WEIGHTS_DIR / entry.file
        if not path.is_file():
            raise ValueError(
                f"the embedded weights of {name!r} are missing ({path}); the installation is "
                "incomplete: reinstall xdownscale (pip install --force-reinstall xdownscale)"
            )
        return path
    return download(
        entry.file,
        entry.sha256,
        url=base_url(),
        path=cache_dir(),
        what=f"model {name!r}",
        offline=_offline_help(entry),
        fix="The server or mirror (XDOWNSCALE_BASE_URL) serves a corrupt or different file: fix "
        "the mirror, or unset XDOWNSCALE_BASE_URL",
    )


def download(
    file: str, sha256: str, *, url: str, path: Path, what: str, offline: str, fix: str
) -> Path:
    """Fetch ``file`` from ``url`` into ``path`` with pooch, hash-checked, with clear errors.

    Shared by the model and data registries: retries (``XDOWNSCALE_RETRIES``), a progress bar
    on a terminal, and errors naming ``what`` plus the advice ``offline`` (download failed) or
    ``fix`` (wrong hash; the file is not kept).
    """
    import requests.exceptions

    downloader = pooch.HTTPDownloader(progressbar=_progressbar(), timeout=30)
    p = pooch.create(
        path=path, base_url=url, registry={file: f"sha256:{sha256}"}, retry_if_failed=_retries()
    )
    try:
        return Path(p.fetch(file, downloader=downloader))
    except requests.exceptions.RequestException as err:
        raise ConnectionError(
            f"could not download {what} from {url}{file} ({type(err).__name__}: "
            f"{str(err)[:200]}). {offline}"
        ) from err
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ValueError(
            f"the file served for {what} at {url}{file} does not have the registered sha256 "
            f"{sha256}; it was rejected and not kept in the cache ({path}). {fix}"
        ) from err
    except PermissionError as err:
        raise PermissionError(
            f"cannot write {what} into the cache {path} ({err}); set XDOWNSCALE_CACHE to a "
            "writable directory"
        ) from err


def fetch_all() -> dict[str, Path]:
    """Fetch every registered model (pre-fill the cache on a login node); name -> path."""
    return {name: fetch(name) for name in list_models()}
