"""Command line: ``xdownscale demo`` runs the main job on the embedded sample, offline."""

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


def _plot(truth, coarse, interp, choice, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the demo's picture needs matplotlib: pip install 'xdownscale[plot]'"
        ) from err
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), constrained_layout=True)
    vmax = float(np.nanpercentile(truth.values, 99.5))
    panels = [
        (truth, "MRMS radar, 0.01° (truth)"),
        (coarse, "8× block mean (coarse input)"),
        (interp, "bicubic interpolation of the coarse field"),
    ]
    for ax, (field, title) in zip(axes[:3], panels):
        im = ax.pcolormesh(field.lon, field.lat, field, cmap="turbo", vmin=0, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlabel("longitude (°E)")
    axes[0].set_ylabel("latitude (°N)")
    fig.colorbar(im, ax=axes[:3], label="precipitation rate (mm h$^{-1}$)", shrink=0.85)
    choice.plot(ax=axes[3])
    axes[3].set_title("spectra and the preserved scale k*", fontsize=10)
    fig.suptitle(
        f"xdownscale {__version__} demo: MRMS radar, {str(truth.time.values)[:16].replace('T', ' ')} UTC",
        fontsize=11,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demo(output: Path, factor: int = 8) -> tuple[Path, Path]:
    """Coarsen the embedded radar sample, compare spectra, choose k* and sigma*; write results.

    Returns the paths of the netCDF file and the PNG.
    """
    output.mkdir(parents=True, exist_ok=True)
    truth = open_sample("mrms")
    coarse = coarsen(truth, factor)
    interp = upsample(coarse, factor, method="bicubic").clip(min=0)
    # the fine coordinates are rebuilt from the coarse cell centres: equal to the truth's up to
    # rounding, which would make xarray outer-join the two grids; align them explicitly
    for d in ("lat", "lon"):
        step = abs(float(truth[d][1] - truth[d][0]))
        if not np.allclose(interp[d], truth[d], rtol=0, atol=1e-6 * step):
            raise RuntimeError(f"upsampled {d} does not match the sample's grid")  # pragma: no cover
    interp = interp.assign_coords(lat=truth.lat, lon=truth.lon)
    choice = choose_scale(coarse, truth, factor=factor, method="bicubic")
    ds = xr.Dataset(
        {
            "precip": truth,
            "precip_coarse": coarse.rename(lat="lat_coarse", lon="lon_coarse"),
            "precip_bicubic": interp,
            "psd_truth": psd(truth),
            "psd_bicubic": psd(interp),
        }
    )
    ds.attrs = add_history(
        {
            "title": "xdownscale demo on the embedded MRMS sample",
            "source": truth.attrs.get("source", ""),
            "k_star_cycles_per_cell": choice.k_star,
            "sigma_star_mm_h": choice.sigma_star,
            "wavelength_star_degrees": choice.wavelength_star or np.nan,
            "choose_scale_note": choice.note,
        },
        f"demo: coarsen x{factor}, bicubic upsample, psd, choose_scale",
    )
    nc = output / "xdownscale_demo.nc"
    ds.to_netcdf(nc, engine="scipy")
    png = output / "xdownscale_demo.png"
    _plot(truth.isel(time=0), coarse.isel(time=0), interp.isel(time=0), choice, png)
    return nc, png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xdownscale", description=__doc__)
    parser.add_argument("--version", action="version", version=f"xdownscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the main job on the embedded radar sample (offline)")
    p_demo.add_argument("--output", type=Path, default=Path("demo-output"), help="output folder")
    p_demo.add_argument("--factor", type=int, default=8, help="coarsening factor (default 8)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nc, png = demo(args.output, args.factor)
        for w in caught:
            print(f"note: {w.message}")
        print(f"wrote {nc}\nwrote {png}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
