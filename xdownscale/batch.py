"""Downscale a file in a job script: read lazily, bias-adjust, sample, write chunk by chunk.

The engine of ``xdownscale downscale`` (:mod:`xdownscale.cli`). The input (netCDF files, a glob
of them, or a zarr store) is opened lazily and chunked along time; the optional steps (quantile
delta mapping, optimal-transport debiasing) and the downscaling are the library's verbs; the
result is written one time chunk at a time into a zarr store with region writes, so the
memory does not grow with the input's length. A netCDF output is written through a zarr store
beside it (``OUT.partial.zarr``) and converted at the end.

Resumable: the store records the settings of the run and, after each chunk is written, its
index (``.xdownscale-done.json``, replaced atomically). A rerun with the same settings skips
the chunks already written; a chunk interrupted halfway is not in the record and is written
again; the result equals an uninterrupted run to the bit (the computation of a chunk does not
depend on the others).
"""

from __future__ import annotations

import glob as _glob
import hashlib
import json
import os
import shutil
import time
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from .attrs import add_history
from .checks import find_time_dim
from .progress import ProgressBar

__all__ = ["BatchConfig", "BatchResult", "open_input", "run"]

DONE_FILE = ".xdownscale-done.json"


@dataclass
class BatchConfig:
    """Everything a batch run depends on (the store records it to refuse a mismatched resume)."""

    inputs: list[str]
    output: str
    var: str
    model: str | None = None
    factor: int | None = None
    members: int | None = None
    reduce: list[str] | None = None
    threshold: list[float | str] | None = None
    q: list[float] | None = None
    scale: float | str = "auto"
    sampler: str | None = None
    steps: int | None = None
    seed: int = 0
    batch_size: int = 32
    qdm_ref: str | None = None
    qdm_hist: str | None = None
    qdm_group: str = "time.month"
    qdm_kind: str = "additive"
    debias_ref: str | None = None
    chunks: dict[str, int] = field(default_factory=lambda: {"time": 8})
    device: str = "auto"

    def fingerprint(self) -> str:
        """A hash of the settings that decide the output's values (not its path or device)."""
        d = asdict(self)
        for k in ("output", "device"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class BatchResult:
    """What :func:`run` did."""

    output: str
    fields: int
    chunks_written: int
    chunks_skipped: int
    seconds: float
    model: str
    sha256: str

    def summary(self) -> str:
        per = self.seconds / max(self.fields, 1)
        skipped = (
            f" ({self.chunks_skipped} already written, skipped)" if self.chunks_skipped else ""
        )
        return (
            f"wrote {self.fields} fields in {self.chunks_written} chunk(s){skipped} to "
            f"{self.output} in {self.seconds:.1f} s ({per:.2f} s per field); model "
            f"{self.model} (sha256 {self.sha256})"
        )


# ----------------------------------------------------------------------------- input


def _expand(paths: Sequence[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if any(c in p for c in "*?[") and not os.path.exists(p):
            hits = sorted(_glob.glob(p))
            if not hits:
                raise FileNotFoundError(f"IN: no file matches {p!r}")
            out += hits
        else:
            if not os.path.exists(p):
                raise FileNotFoundError(f"IN: {p!r} does not exist")
            out.append(p)
    return out


def open_input(paths: Sequence[str], var: str, chunks: dict[str, int]) -> xr.DataArray:
    """The variable ``var`` of netCDF file(s), a glob, or a zarr store, lazily, chunked.

    The file's global attributes and its variables without dims (a ``crs`` grid mapping) are
    kept in ``da.attrs["_dataset_attrs"]`` / ``da.attrs["_scalars"]`` for the output.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing files, an unknown variable (the message lists the variables), a chunk
        dim the variable does not have.
    """
    files = _expand(paths)
    if len(files) == 1 and (files[0].rstrip("/").endswith(".zarr") or os.path.isdir(files[0])):
        ds = xr.open_zarr(files[0])
    elif len(files) == 1:
        ds = xr.open_dataset(files[0], chunks={})
    else:
        ds = xr.open_mfdataset(
            files,
            combine="by_coords",
            chunks={},
            data_vars="minimal",
            coords="minimal",
            compat="override",
        )
    if var not in ds.data_vars:
        raise ValueError(
            f"--var: {var!r} is not a variable of the input; it has {sorted(ds.data_vars)}"
        )
    da = ds[var]
    da.encoding.pop("chunks", None)
    da.encoding.pop("preferred_chunks", None)
    bad = [d for d in chunks if d not in da.dims]
    if bad:
        raise ValueError(
            f"--chunks: {bad} are not dims of {var!r} (its dims are {list(da.dims)}); e.g. "
            f"--chunks {da.dims[0]}=8"
        )
    spatial = {d: -1 for d in da.dims if d not in chunks}
    out = da.chunk({**spatial, **chunks})
    _CONTEXT[id(out)] = (dict(ds.attrs), {k: v for k, v in ds.data_vars.items() if v.ndim == 0})
    return out


_CONTEXT: dict[int, tuple[dict, dict]] = {}  # the input's global attributes and 0-d variables


# ----------------------------------------------------------------------------- pipeline


def build(config: BatchConfig, da: xr.DataArray) -> xr.Dataset:
    """The lazy result of the run on ``da``: optional QDM and debiasing, then downscaling."""
    from .models import load
    from .qdm import qdm
    from .sampling import ensemble, sample
    from .transport import debias

    source = da
    if config.qdm_ref is not None:
        if config.qdm_hist is None:
            raise ValueError("--qdm-ref needs --qdm-hist (the model over the calibration period)")
        ref = open_input([config.qdm_ref], config.var, {})
        hist = open_input([config.qdm_hist], config.var, {})
        da = qdm(da, ref, hist, kind=config.qdm_kind, group=config.qdm_group)  # type: ignore[arg-type]
    elif config.qdm_hist is not None:
        raise ValueError("--qdm-hist needs --qdm-ref (the observations)")
    if config.debias_ref is not None:
        ref = open_input([config.debias_ref], config.var, {})
        da = debias(da, ref.load())
    model = load(config.model)
    kw: dict[str, Any] = dict(
        factor=config.factor,
        scale=config.scale,
        sampler=config.sampler,
        steps=config.steps,
        seed=config.seed,
        batch_size=config.batch_size,
        device=config.device,
    )
    name = str(da.name or config.var)
    if config.reduce:
        stats = ensemble(
            da,
            config.members or 1,
            model,
            reduce=config.reduce,  # type: ignore[arg-type]
            threshold=config.threshold,
            q=config.q,
            **kw,
        )
        out = stats.rename({k: f"{name}_{k}" for k in stats.data_vars})
    elif config.members:
        out = ensemble(da, config.members, model, **kw).to_dataset(name=name)  # type: ignore[union-attr]
    else:
        out = sample(da, model, **kw).to_dataset(name=name)
    attrs, scalars = _CONTEXT.pop(id(source), ({}, {}))
    for k, v in scalars.items():  # e.g. the grid mapping the variable's attributes name
        out[k] = v.load()
    out.attrs = add_history(
        attrs,
        "xdownscale downscale " + " ".join(config.inputs) + f" {config.output} --var {config.var}",
    )
    out.attrs["xdownscale_model"] = model.name
    out.attrs["xdownscale_model_sha256"] = model.card.sha256 or ""
    return out


# ----------------------------------------------------------------------------- output


def _done(store: Path) -> set[int]:
    f = store / DONE_FILE
    if not f.exists():
        return set()
    return set(json.loads(f.read_text())["done"])


def _mark_done(store: Path, done: set[int]) -> None:
    tmp = store / (DONE_FILE + ".tmp")
    tmp.write_text(json.dumps({"done": sorted(done)}))
    os.replace(tmp, store / DONE_FILE)  # atomic: a crash leaves the old record or the new


def _prepare_store(
    result: xr.Dataset, store: Path, config: BatchConfig, overwrite: bool
) -> set[int]:
    """Create the store (metadata and coordinates, no data) or check it for a resume."""
    fp = config.fingerprint()
    if store.exists():
        try:
            have = xr.open_zarr(store).attrs.get("xdownscale_batch_fingerprint")
        except Exception:
            have = None
        if have == fp and not overwrite:
            return _done(store)
        if not overwrite:
            raise FileExistsError(
                f"OUT: {str(store)!r} exists and was written by another run (other settings or "
                "not xdownscale); pass --overwrite to replace it, or choose another OUT"
            )
        shutil.rmtree(store)
    result = result.assign_attrs(xdownscale_batch_fingerprint=fp)
    result.to_zarr(store, mode="w", compute=False, zarr_format=2)
    _mark_done(store, set())
    return set()


def _region_slices(result: xr.Dataset, tdim: Hashable) -> list[slice]:
    chunks = result.chunksizes.get(tdim)
    if chunks is None:
        return [slice(0, result.sizes[tdim])]
    out, start = [], 0
    for c in chunks:
        out.append(slice(start, start + c))
        start += c
    return out


def run(config: BatchConfig, *, overwrite: bool = False, progress: bool = True) -> BatchResult:
    """Run a batch downscaling as configured; returns what was done.

    Raises
    ------
    ValueError, FileNotFoundError, FileExistsError
        Bad settings (the message names the option).
    """
    t0 = time.perf_counter()
    da = open_input(config.inputs, config.var, config.chunks)
    tdim = find_time_dim(da) if any(d for d in da.dims) else None
    result = build(config, da)
    out = Path(config.output)
    netcdf = not (config.output.rstrip("/").endswith(".zarr") or out.is_dir())
    store = out.with_name(out.name + ".partial.zarr") if netcdf else out
    if netcdf and out.exists() and not overwrite:
        raise FileExistsError(f"OUT: {str(out)!r} exists; pass --overwrite to replace it")
    # data variables without the time dim (none today) would be written with the metadata
    tdim = tdim if tdim in result.dims else None
    regions = _region_slices(result, tdim) if tdim is not None else [slice(None)]
    encoding_chunks = {}
    if tdim is not None:
        size = regions[0].stop - regions[0].start
        for name, v in result.data_vars.items():
            encoding_chunks[name] = {
                "chunks": tuple(size if d == tdim else v.sizes[d] for d in v.dims)
            }
    result = (
        result.chunk({tdim: regions[0].stop - regions[0].start}) if tdim is not None else result
    )
    for name in result.data_vars:  # the store's chunks: one time chunk per region
        result[name].encoding = {**result[name].encoding, **encoding_chunks.get(name, {})}
    done = _prepare_store(result, store, config, overwrite)
    skipped = len(done)
    bar = (
        ProgressBar(len(regions), f"xdownscale downscale -> {out.name}", unit="chunk")
        if progress
        else None
    )
    if bar is not None and skipped:
        bar.update(skipped)
    written = 0
    for i, region in enumerate(regions):
        if i in done:
            continue
        part = result.isel({tdim: region}) if tdim is not None else result
        coords_to_drop = [c for c in part.coords if tdim is None or tdim not in part[c].dims]
        part = part.drop_vars(coords_to_drop)
        part.to_zarr(store, region={tdim: region} if tdim is not None else "auto", zarr_format=2)
        done.add(i)
        _mark_done(store, done)
        written += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if netcdf:
        with xr.open_zarr(store) as ds:
            ds.attrs.pop("xdownscale_batch_fingerprint", None)
            ds.to_netcdf(out)  # streamed chunk by chunk from the store
        shutil.rmtree(store)
    n_fields = int(da.sizes[tdim]) if tdim is not None else 1
    return BatchResult(
        output=str(out),
        fields=n_fields,
        chunks_written=written,
        chunks_skipped=skipped,
        seconds=time.perf_counter() - t0,
        model=str(result.attrs.get("xdownscale_model")),
        sha256=str(result.attrs.get("xdownscale_model_sha256")),
    )
