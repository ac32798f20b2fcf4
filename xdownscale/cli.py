"""Command line: ``xdownscale demo`` (the main job, offline), ``fetch``, ``models``, ``train``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from . import __version__
from .datasets import open_sample
from .grid import add_history, coarsen, upsample
from .spectra import choose_scale, psd


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
    ax.axvline(choice.k_star, color="C3", ls="--", label=f"k* (bicubic vs truth) = {choice.k_star:.3g}")
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

    interp = on_truth_grid(upsample(coarse, factor, method="bicubic").clip(min=0))
    from .models import DEFAULT_MODEL, load

    net = load(model)
    model_name = net.card.name or (model or DEFAULT_MODEL)
    down = on_truth_grid(sample(coarse, net, factor=factor, steps=steps, seed=seed).compute())
    model_line = down.attrs["history"].splitlines()[0]
    choice = choose_scale(coarse, truth, factor=factor, method="bicubic")
    spectra = {f"psd_{n}": psd(f) for n, f in (("truth", truth), ("bicubic", interp), ("sample", down))}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xdownscale", description=__doc__)
    parser.add_argument("--version", action="version", version=f"xdownscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", help="downscale the embedded radar sample with the default model (offline)"
    )
    p_demo.add_argument("--output", type=Path, default=Path("demo-output"), help="output folder")
    p_demo.add_argument("--factor", type=int, default=8, help="coarsening factor (default 8)")
    p_demo.add_argument("--steps", type=int, default=8, help="Heun steps (default 8)")
    p_demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p_demo.add_argument("--model", default=None,
                        help="a registered model name or weight file (default: the embedded default)")
    p_fetch = sub.add_parser("fetch", help="pre-fill the model cache (e.g. on a login node)")
    p_fetch.add_argument("names", nargs="*", help="registered model names")
    p_fetch.add_argument("--all", action="store_true", help="every registered model")
    p_models = sub.add_parser("models", help="list or describe pretrained models")
    p_models.add_argument("action", choices=["list", "describe"])
    p_models.add_argument("name", nargs="?", default=None, help="name or path (describe)")
    sub.add_parser("train", help="train a model on your data (see: xdownscale train --help)",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        from .train import main as train_main

        return train_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "fetch":
        from .models.__main__ import main as models_main

        return models_main(["fetch", *args.names, *(["--all"] if args.all else [])])
    if args.command == "models":
        from .models.__main__ import main as models_main

        return models_main([args.action] + ([args.name] if args.name else []))
    import warnings

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
