"""Train the Kolmogorov-flow vorticity model (64^2, 8x) for the Wan et al. reproduction.

    python benchmarks/train_kolmogorov.py --workdir /tmp/xds_kolmo --time-limit 2400   # repeat
    python benchmarks/train_kolmogorov.py --workdir /tmp/xds_kolmo --install          # finalise

Data: the cached high-fidelity set of ``kolmogorov_data.py`` (``--n-fine``/``--n-coarse``);
only its fit half (even snapshots) is trained on; ``bench_wan_downscale.py`` evaluates against
the other half. An unconditional EDM denoiser on whole 64^2 fields, doubly periodic (circular
padding along y and x), no flips (a reflection changes the sign of vorticity and moves the
forcing). Each sitting resumes the checkpoint in ``--workdir`` and writes
``kolmogorov-8x.pt`` there; ``--install`` copies it into ``xdownscale/models/weights`` and
records its hash in the registry.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kolmogorov_data

import xdownscale

ROOT = Path(__file__).resolve().parents[1]
NAME = "kolmogorov-8x"
DESCRIPTION = (
    "Vorticity of 2-D Kolmogorov flow (Re = 1000, forcing sin(4y), drag 0.1; 64 x 64 on "
    "[0, 2 pi)^2 from a 128^2 pseudo-spectral solver): an EDM denoiser trained "
    "unconditionally on xdownscale.datasets.kolmogorov_flow fields, for 8x downscaling "
    "(8^2 -> 64^2) with sampler='conditional' (Wan et al. 2023). Small, CPU-trained."
)
LICENCE = "Weights and training data: BSD-3-Clause, as xdownscale (the data are simulated)."


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/xds_kolmo")
    ap.add_argument("--n-fine", type=int, default=8192)
    ap.add_argument("--n-coarse", type=int, default=16384)
    ap.add_argument("--iterations", "--steps", type=int, default=6000,
                    help="optimiser steps in all (xdownscale.train(iterations=))")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--install", action="store_true", help="install the finished weights")
    ap.add_argument("--quick", action="store_true", help="a 20-step smoke run")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = work / (f"{NAME}-quick.pt" if args.quick else f"{NAME}.pt")
    if args.install:
        from _install import install

        install(out, NAME, description=(
            "Kolmogorov-flow vorticity, 8x (8^2 -> 64^2, Re = 1000), EDM denoiser for "
            "sampler='conditional' (Wan et al. 2023)"))
        return 0
    fine, _, _ = kolmogorov_data.load(args.n_fine, args.n_coarse)
    fit = fine.isel(time=slice(0, None, 2))  # the fit half; odd snapshots are held out
    t0 = time.perf_counter()
    model = xdownscale.train(
        fit, parameterisation="edm", name=NAME, output=out,
        iterations=20 if args.quick else args.iterations,
        batch_size=16, crop=64, lr=1e-3, channels=(16, 32, 64), attention=False,
        periodic=(True, True), flips=False, transform="identity", scale_range="auto",
        sigma_min=0.002, sigma_max=10.0, p_mean=-0.8, p_std=1.4, ema=0.999, factors=(8,),
        psd_size=64, checkpoint=None if args.quick else work / f"{NAME}.ckpt",
        checkpoint_every=180.0, time_limit=args.time_limit, seed=0, device="auto",
        card={
            "version": "1", "description": DESCRIPTION, "licence": LICENCE,
            "variable": "vorticity", "pixel_units": "1",
            "training": {
                "data": f"{fit.sizes['time']} snapshots of 64 x 64 (the even half of "
                        f"kolmogorov_data.load({args.n_fine}, {args.n_coarse}), seed 0); the odd "
                        "half is the evaluation reference of bench_wan_downscale.py",
                "script": "benchmarks/train_kolmogorov.py",
            },
        },
    )
    tr = model.card.training
    print(f"sitting done in {time.perf_counter() - t0:.0f} s: step {tr['steps']}/{tr['steps_planned']}, "
          f"loss {tr['final_loss']:.4g}, total {tr['seconds']:.0f} s, sha256 {model.card.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
