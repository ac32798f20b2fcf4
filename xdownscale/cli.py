"""The command line: ``xdownscale demo | downscale | fetch | models | train``.

One error policy for every command: bad arguments exit with code 2 and one line naming the
option, the value and the fix; failures at run time exit with code 1 and a one-line cause.
No traceback for a user error (set ``XDOWNSCALE_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__
from .attrs import add_history
from .datasets import open_sample
from .grid import coarsen, upsample
from .spectra import choose_scale, psd

EXIT_USAGE = 2
EXIT_FAILURE = 1


# ----------------------------------------------------------------------------- argument types


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small: it must be >= {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _float_in(low: float | None = None, high: float | None = None, open_low: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (value <= low if open_low else value < low):
            raise argparse.ArgumentTypeError(
                f"{value:g} must be {'>' if open_low else '>='} {low:g}"
            )
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value:g} must be <= {high:g}")
        return value

    parse.__name__ = "number"
    return parse


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 32,64,64"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every entry must be a positive integer")
    return values


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    return path


# ----------------------------------------------------------------------------- demo


def _plot(truth, coarse, interp, sample, choice, spectra, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the demo's picture needs matplotlib: pip install 'xdownscale[plot]'"
        ) from err
    fig, axes = plt.subplots(1, 5, figsize=(22, 4.4), constrained_layout=True)
    vmax = float(np.nanpercentile(truth.values, 99.5))
    panels = [
        (truth, "MRMS radar, 0.01° (truth)"),
        (coarse, "8× block mean (coarse input)"),
        (interp, "bicubic interpolation"),
        (sample, f"xdownscale sample ({sample.attrs.get('model', 'model')})"),
    ]
    for ax, (field, title) in zip(axes[:4], panels, strict=True):
        im = ax.pcolormesh(field.lon, field.lat, field, cmap="turbo", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlabel("longitude (°E)")
    axes[0].set_ylabel("latitude (°N)")
    fig.colorbar(im, ax=axes[:4], label="precipitation rate (mm h$^{-1}$)", shrink=0.85)
    ax = axes[4]
    for name, color in (("truth", "k"), ("bicubic", "C1"), ("sample", "C0")):
        p = spectra[f"psd_{name}"]
        m = p.wavenumber > 0
        ax.loglog(p.wavenumber[m], p[m], color=color, label=name)
    ax.axvline(
        choice.k_star, color="C3", ls="--", label=f"k* (bicubic vs truth) = {choice.k_star:.3g}"
    )
    ax.set_xlabel("wavenumber (cycles per grid cell)")
    ax.set_ylabel("PSD (mm$^2$ h$^{-2}$)")
    ax.set_title("radially averaged spectra", fontsize=10)
    ax.legend(fontsize="small")
    fig.suptitle(
        f"xdownscale {__version__} demo: MRMS radar, "
        f"{str(truth.time.values)[:16].replace('T', ' ')} UTC, 8 km -> 1 km",
        fontsize=11,
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)


def demo(
    output: Path, factor: int = 8, steps: int = 8, seed: int = 0, model: str | None = None
) -> tuple[Path, Path]:
    """The main job: downscale the embedded radar sample with the embedded default model.

    Coarsens the sample by ``factor`` (8 x 8 block mean), downscales it back with
    :func:`xdownscale.sample` (``model``: default the embedded default model; ``scale="auto"``,
    EDM Heun with ``steps`` steps),
    compares it with bicubic interpolation and the truth (spectra, MELR, pooled correlation),
    and writes a netCDF file and a PNG. Returns their paths.
    """
    from . import metrics
    from .sampling import sample

    output.mkdir(parents=True, exist_ok=True)
    truth = open_sample("mrms")
    coarse = coarsen(truth, factor)

    # the fine coordinates are rebuilt from the coarse cell centres: equal to the truth's up to
    # rounding, which would make xarray outer-join the two grids; align them explicitly
    def on_truth_grid(fine: xr.DataArray) -> xr.DataArray:
        for d in ("lat", "lon"):
            step = abs(float(truth[d][1] - truth[d][0]))
            if not np.allclose(fine[d], truth[d], rtol=0, atol=1e-6 * step):
                raise RuntimeError(f"{d} does not match the sample's grid")  # pragma: no cover
        return fine.assign_coords(lat=truth.lat, lon=truth.lon)

    interp = on_truth_grid(upsample(coarse, factor, interpolation="bicubic").clip(min=0))
    from .models import DEFAULT_MODEL, load

    net = load(model)
    model_name = net.card.name or (model or DEFAULT_MODEL)
    down = on_truth_grid(sample(coarse, net, factor=factor, steps=steps, seed=seed).compute())
    model_line = down.attrs["history"].splitlines()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # bicubic never crosses the truth: expected
        choice = choose_scale(coarse, truth, factor=factor, interpolation="bicubic")
    spectra = {
        f"psd_{n}": psd(f) for n, f in (("truth", truth), ("bicubic", interp), ("sample", down))
    }
    scores = {}
    for name, field in (("bicubic", interp), ("sample", down)):
        scores[f"melr_unweighted_{name}"] = float(metrics.melr(field, truth))
        scores[f"melr_weighted_{name}"] = float(metrics.melr(field, truth, weighted=True))
        scores[f"pooled_correlation_{name}"] = float(
            np.corrcoef(coarsen(field, factor).values.ravel(), coarse.values.ravel())[0, 1]
        )
    down.attrs["model"] = model_name
    ds = xr.Dataset(
        {
            "precip": truth,
            "precip_coarse": coarse.rename(lat="lat_coarse", lon="lon_coarse"),
            "precip_bicubic": interp,
            "precip_downscaled": down,
            **spectra,
        }
    )
    ds.attrs = add_history(
        {
            "title": "xdownscale demo: 8x downscaling of the embedded MRMS radar sample",
            "source": truth.attrs.get("source", ""),
            "sampling": model_line,
            "note": (
                "the MRMS sample (2019-06-10) is part of the radar models' first training stage; "
                "radar-8x then continued on MeteoSwiss, whose 1 km texture is smoother than "
                "MRMS's (radar-8x-mix keeps the mix's); for a held-out evaluation see "
                "docs/benchmarks/radar-model.rst"
            ),
            "k_star_bicubic_vs_truth": choice.k_star,
            **scores,
        },
        f"demo: coarsen x{factor}, sample with model {model_name} ({steps} Heun steps, seed "
        f"{seed}), bicubic for comparison",
    )
    nc = output / "xdownscale_demo.nc"
    ds.to_netcdf(nc, engine="scipy")
    png = output / "xdownscale_demo.png"
    one = {k: v for k, v in spectra.items()}
    _plot(
        truth.isel(time=0),
        coarse.isel(time=0),
        interp.isel(time=0),
        down.isel(time=0).assign_attrs(model=model_name),
        choice,
        one,
        png,
    )
    return nc, png


def _demo(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nc, png = demo(args.output, args.factor, args.steps, args.seed, args.model)
    for w in caught:
        print(f"note: {w.message}")
    with xr.open_dataset(nc, engine="scipy") as ds:
        for name in ("bicubic", "sample"):
            print(
                f"{name:>8}: MELR unweighted {ds.attrs[f'melr_unweighted_{name}']:.3f}, "
                f"weighted {ds.attrs[f'melr_weighted_{name}']:.3f}, pooled correlation "
                f"{ds.attrs[f'pooled_correlation_{name}']:.3f}"
            )
    print(f"wrote {nc}\nwrote {png}")
    return 0


# ----------------------------------------------------------------------------- models


def _models(args: argparse.Namespace) -> int:
    from .models import describe, fetch, fetch_all, list_models
    from .models.registry import REGISTRY, base_url, cache_dir

    if args.command == "models" and args.action == "list":
        for name in list_models():
            e = REGISTRY[name]
            where = "embedded" if e.embedded else "download"
            print(f"{name:<16} v{e.version:<4} {where:<9} {e.description}")
    elif args.command == "models":
        print(repr(describe(args.name)))
    else:
        if not args.all and not args.names:
            raise _Usage("fetch", "name the models to fetch, or pass --all")
        paths = fetch_all() if args.all else {n: fetch(n) for n in args.names}
        for name, path in paths.items():
            print(f"{name}: {path}")
        print(
            f"cache: {cache_dir()} (XDOWNSCALE_CACHE), base URL: {base_url()} (XDOWNSCALE_BASE_URL)"
        )
    return 0


# ----------------------------------------------------------------------------- train


def _train(args: argparse.Namespace) -> int:
    from .train import train

    arrays = []
    for f in args.files:
        with xr.open_dataset(f) as ds:
            if args.var not in ds:
                raise _Usage(
                    "--var", f"{f} has no variable {args.var!r}; it has {sorted(ds.data_vars)}"
                )
            a = ds[args.var]
            if args.isel:
                dim, _, rng = args.isel.partition("=")
                lo, _, hi = rng.partition(":")
                try:
                    sl = slice(int(lo) if lo else None, int(hi) if hi else None)
                except ValueError:
                    raise _Usage(
                        "--isel", f"{args.isel!r} is not 'dim=start:stop', e.g. time=0:100"
                    ) from None
                if dim not in a.dims:
                    raise _Usage(
                        "--isel", f"{dim!r} is not a dim of {args.var!r} (dims {tuple(a.dims)})"
                    )
                a = a.isel({dim: sl})
            arrays.append(a.load())
    periodic = "auto" if args.periodic == "auto" else ("y" in args.periodic, "x" in args.periodic)
    fixed = {
        "parameterisation": args.parameterisation,
        "transform": args.transform,
        "sigma_max": args.sigma_max,
        "channels": tuple(args.channels),
        "periodic": periodic,
    }
    if args.init:
        defaults = {
            "parameterisation": "edm",
            "transform": "identity",
            "sigma_max": 80.0,
            "channels": (32, 64, 64),
            "periodic": "auto",
        }
        changed = [k for k, v in fixed.items() if v != defaults[k]]
        if changed:
            raise _Usage(
                "--init",
                f"{args.init} fixes {', '.join('--' + k.replace('_', '-') for k in changed)}; "
                "leave them out to fine-tune that model",
            )
        fixed = {"init": args.init}
    model = train(
        arrays,
        output=args.output,
        name=args.name,
        iterations=args.iterations,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        factors=args.factors,
        min_valid=args.min_valid,
        flips=not args.no_flips,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        time_limit=args.time_limit,
        resume=not args.no_resume,
        seed=args.seed,
        device=args.device,
        **fixed,
    )
    print(
        f"wrote {args.output} (sha256 {model.card.sha256}); load it with "
        f"xdownscale.models.load({str(args.output)!r})"
    )
    return 0


# ----------------------------------------------------------------------------- downscale


def _chunks(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split(","):
        dim, _, size = part.partition("=")
        try:
            n = int(size)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not 'dim=N[,dim=N]', e.g. time=8"
            ) from None
        if not dim or n < 1:
            raise argparse.ArgumentTypeError(
                f"{text!r}: each entry is dim=N with N >= 1, e.g. time=8"
            )
        out[dim.strip()] = n
    return out


def _scale(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a number") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive noise level or 'auto'")
    return value


def _stats(text: str) -> list[str]:
    from .sampling import _STATS

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in _STATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown statistic(s) {bad}; use a comma-separated list of {list(_STATS)}"
        )
    return names


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None


def _downscale(args: argparse.Namespace) -> int:
    from .batch import BatchConfig, run

    if len(args.paths) < 2:
        raise _Usage("IN OUT", "give the input file(s) and then the output path")
    *inputs, output = args.paths
    if args.members is not None and args.reduce is None and args.members < 1:
        raise _Usage("--members", f"{args.members} must be >= 1")
    if args.reduce and not args.members:
        raise _Usage("--reduce", "statistics over members need --members N (e.g. --members 50)")
    if args.reduce and "exceedance" in args.reduce and not args.threshold:
        raise _Usage("--threshold", "--reduce exceedance needs --threshold T[,T...]")
    if args.reduce and "quantile" in args.reduce and not args.q:
        raise _Usage("--q", "--reduce quantile needs --q P[,P...] with P in [0, 1]")
    if args.scheduler and args.workers:
        raise _Usage("--workers", "give either --scheduler ADDRESS or --workers N, not both")
    config = BatchConfig(
        inputs=inputs,
        output=output,
        var=args.var,
        model=args.model,
        factor=args.factor,
        members=args.members,
        reduce=args.reduce,
        threshold=args.threshold,
        q=args.q,
        scale=args.scale,
        sampler=args.sampler,
        steps=args.steps,
        seed=args.seed,
        batch_size=args.batch_size,
        qdm_ref=args.qdm_ref,
        qdm_hist=args.qdm_hist,
        qdm_group=args.group,
        qdm_kind=args.qdm_kind,
        debias_ref=args.debias_ref,
        chunks=args.chunks,
        device=args.device,
    )
    cluster = client = None
    try:
        if args.scheduler or args.workers:
            import distributed

            if args.scheduler:
                client = distributed.Client(args.scheduler)
            else:
                cluster = distributed.LocalCluster(
                    n_workers=args.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                client = distributed.Client(cluster)
        result = run(config, overwrite=args.overwrite, progress=not args.no_progress)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(result.summary())
    return 0


# ----------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse with one line on a bad argument (no usage block), exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Usage(Exception):
    """A bad argument found after parsing: exit code 2 with one line."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The ``xdownscale`` argument parser (all sub-commands)."""
    parser = _Parser(
        prog="xdownscale",
        description="Downscale coarse fields with xarray: demo, downscale, fetch, models, train.",
    )
    parser.add_argument("--version", action="version", version=f"xdownscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser(
        "demo", help="downscale the embedded radar sample with the default model (offline)"
    )
    p.add_argument("--output", type=Path, default=Path("demo-output"), help="output folder")
    p.add_argument(
        "--factor", type=_int_at_least(2), default=8, help="coarsening factor (default 8)"
    )
    p.add_argument("--steps", type=_int_at_least(1), default=8, help="Heun steps (default 8)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument(
        "--model",
        default=None,
        help="a registered model name or weight file (default: the embedded default)",
    )
    p.set_defaults(run=_demo)

    p = sub.add_parser(
        "downscale",
        help="downscale a file (netCDF, a glob, or zarr) into zarr or netCDF, resumably",
        description="Downscale the variable --var of IN (netCDF file(s), a glob, or a zarr "
        "store), optionally after quantile delta mapping (--qdm-ref/--qdm-hist) or "
        "optimal-transport debiasing (--debias-ref), and write OUT (a path ending in .zarr, or "
        "netCDF) one time chunk at a time. A rerun after an interruption skips the chunks "
        "already written.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="the input(s) (netCDF files, a glob, or a zarr store), then OUT",
    )
    p.add_argument("--var", required=True, help="variable to downscale")
    p.add_argument(
        "--model",
        default=None,
        help="registered name or weight file (default: the embedded default)",
    )
    p.add_argument(
        "--factor",
        type=_int_at_least(1),
        default=None,
        help="coarse / fine grid ratio (default: from the model)",
    )
    p.add_argument(
        "--members",
        type=_int_at_least(1),
        default=None,
        help="an ensemble of N members (dim 'realization')",
    )
    p.add_argument(
        "--reduce",
        type=_stats,
        default=None,
        help="statistics over --members instead of the members, e.g. mean,std",
    )
    p.add_argument(
        "--threshold",
        type=_floats,
        default=None,
        help="thresholds for --reduce exceedance, e.g. 0.1,1",
    )
    p.add_argument(
        "--q", type=_floats, default=None, help="probabilities for --reduce quantile, e.g. 0.1,0.9"
    )
    p.add_argument("--scale", type=_scale, default="auto", help="'auto' or a noise level sigma*")
    p.add_argument(
        "--sampler",
        "--method",
        dest="sampler",
        default=None,
        choices=["consistency", "heun", "sde", "conditional"],
        help="sampler (default: the model's first)",
    )
    p.add_argument("--steps", type=_int_at_least(1), default=None, help="sampler steps")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument(
        "--batch-size", type=_int_at_least(1), default=32, help="fields per network call"
    )
    p.add_argument(
        "--qdm-ref", default=None, help="observations for quantile delta mapping (same --var)"
    )
    p.add_argument(
        "--qdm-hist", default=None, help="the model over the calibration period (same --var)"
    )
    p.add_argument(
        "--group",
        default="time.month",
        choices=["time", "time.season", "time.month", "time.dayofyear"],
        help="QDM grouping (default time.month)",
    )
    p.add_argument("--qdm-kind", default="additive", choices=["additive", "multiplicative"])
    p.add_argument(
        "--debias-ref",
        default=None,
        help="reference fields for optimal-transport debiasing (same --var)",
    )
    p.add_argument(
        "--chunks", type=_chunks, default={"time": 8}, help="input chunks, e.g. time=8 (default)"
    )
    p.add_argument(
        "--scheduler", default=None, help="address of a dask scheduler (tcp://host:8786)"
    )
    p.add_argument(
        "--workers",
        type=_int_at_least(1),
        default=None,
        help="start a local cluster of N worker processes",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="'auto', 'cpu', 'cuda' or 'cuda:N' (each worker resolves 'auto')",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_downscale)

    p = sub.add_parser("fetch", help="pre-fill the model cache (e.g. on a login node)")
    p.add_argument("names", nargs="*", help="registered model names")
    p.add_argument("--all", action="store_true", help="every registered model")
    p.set_defaults(run=_models)

    p = sub.add_parser("models", help="list or describe pretrained models")
    p.add_argument("action", choices=["list", "describe"])
    p.add_argument("name", nargs="?", default=None, help="name or path (describe)")
    p.set_defaults(run=_models)

    p = sub.add_parser(
        "train",
        help="train a model on your high-resolution fields",
        description="Train an EDM denoiser or a consistency model on high-resolution fields and "
        "write weights plus a model card loadable with xdownscale.models.load(path).",
    )
    p.add_argument(
        "files", nargs="+", type=_existing_file, help="netCDF file(s) of high-resolution fields"
    )
    p.add_argument("--var", required=True, help="variable name in the file(s)")
    p.add_argument("--output", required=True, help="weight file to write (.pt)")
    p.add_argument(
        "--init",
        default=None,
        help="fine-tune this model (a registered name or a weight file) instead of "
        "starting from random weights; it fixes the network and transform",
    )
    p.add_argument("--parameterisation", choices=("edm", "consistency"), default="edm")
    p.add_argument("--name", default="my-model")
    p.add_argument("--transform", choices=("identity", "log"), default="identity")
    p.add_argument(
        "--iterations", type=_int_at_least(1), default=2000, help="optimiser steps in all"
    )
    p.add_argument("--batch-size", type=_int_at_least(1), default=32)
    p.add_argument("--crop", type=_int_at_least(4), default=64)
    p.add_argument("--lr", type=_float_in(0.0, open_low=True), default=2e-4)
    p.add_argument(
        "--channels", type=_int_list, default=[32, 64, 64], help="comma-separated UNet channels"
    )
    p.add_argument("--sigma-max", type=_float_in(0.0, open_low=True), default=80.0)
    p.add_argument(
        "--factors", type=_int_list, default=[], help="comma-separated supported factors"
    )
    p.add_argument("--min-valid", type=_float_in(0.0, 1.0, open_low=True), default=0.9)
    p.add_argument(
        "--periodic",
        default="auto",
        choices=("auto", "x", "y", "xy", "yx", "none"),
        help="periodic axes (circular padding)",
    )
    p.add_argument("--no-flips", action="store_true", help="no random flips of the crops")
    p.add_argument("--checkpoint", default=None)
    p.add_argument(
        "--checkpoint-every", type=_float_in(0.0, open_low=True), default=300.0, help="seconds"
    )
    p.add_argument(
        "--time-limit",
        type=_float_in(0.0, open_low=True),
        default=None,
        help="seconds for this sitting",
    )
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--isel", default=None, help="select along a dim before training, e.g. 'time=0:100'"
    )
    p.set_defaults(run=_train)
    return parser


_USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, _Usage)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xdownscale`` command line; returns the exit code (argparse exits on bad syntax)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = os.environ.get("XDOWNSCALE_DEBUG", "") not in ("", "0")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"xdownscale {args.command}: interrupted", file=sys.stderr)
        return 130
    except _USER_ERRORS as err:
        if debug:
            raise
        print(f"xdownscale {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a failure at run time: one line, non-zero
        if debug:
            raise
        print(
            f"xdownscale {args.command}: failed: {type(err).__name__}: {_one_line(err)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
