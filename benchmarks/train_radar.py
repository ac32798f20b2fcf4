"""Train the embedded default radar-precipitation model (8 km -> 1 km) in resumable sittings.

    python benchmarks/train_radar.py --workdir /tmp/xds_radar --time-limit 900   # repeat
    python benchmarks/train_radar.py --workdir /tmp/xds_radar --steps <done>     # finalise

Each sitting continues the checkpoint in ``--workdir`` and writes ``radar-8x.pt`` there (EMA
weights and a complete card); ``eval_radar.py`` evaluates it on the held-out MeteoSwiss
2017-01-31 event and installs it as the package default. Data: benchmarks/radar_data.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import radar_data

from xdownscale.train import train

DESCRIPTION = (
    "Radar precipitation rate, 8x (8 km -> 1 km): an EDM denoiser trained unconditionally on "
    "1 km radar composites (MeteoSwiss, FMI, NOAA MRMS) and used by SDEdit from sigma* with a few "
    "Heun steps. Small (CPU-trained) model: a demonstration default, not a production model."
)
DESCRIPTION_CM = (
    "Radar precipitation rate, 8x (8 km -> 1 km): a consistency model (improved consistency "
    "training) on the same data and network as radar-8x, for one-step sampling from sigma*. "
    "Small (CPU-trained) model: for the one-step vs SDE comparison of Hess et al. (2024)."
)
LICENCE = (
    "Weights: BSD-3-Clause, as xdownscale. Training data: pysteps-data radar samples "
    "(MeteoSwiss and FMI: no licence file in pysteps-data, the agencies' terms apply; "
    "MRMS: NOAA, US government work). The weights contain no data."
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/xds_radar")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a shared, oversubscribed CPU)")
    ap.add_argument("--quick", action="store_true", help="a 20-step smoke run")
    ap.add_argument("--kind", choices=["edm", "consistency"], default="edm",
                    help="consistency: improved consistency training, written as radar-8x-cm.pt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "patches.nc"
    if not cache.exists():
        radar_data.patches().to_netcdf(cache)
    da = xr.open_dataarray(cache).load()
    t0 = time.perf_counter()
    name = "radar-8x" if args.kind == "edm" else "radar-8x-cm"
    model = train(
        da, kind=args.kind, name=name, output=work / (f"{name}-quick.pt" if args.quick else f"{name}.pt"),
        steps=20 if args.quick else args.steps, batch_size=32, crop=32, lr=1e-3,
        channels=(16, 32, 64), attention=False, transform="log", scale_range="auto",
        sigma_min=0.002, sigma_max=5.0, p_mean=-0.6 if args.kind == "edm" else None,
        p_std=1.2 if args.kind == "edm" else None, ema=0.995, factors=(8,),
        min_valid=0.9, psd_size=64, checkpoint=None if args.quick else work / f"{name}.ckpt",
        checkpoint_every=180.0, time_limit=args.time_limit, seed=0, device="auto",
        card={
            "version": "1", "licence": LICENCE,
            "description": DESCRIPTION if args.kind == "edm" else DESCRIPTION_CM,
            "variable": "precip", "standard_name": "lwe_precipitation_rate",
            "training": {
                "data": "9,000 windows of 64 x 64 km (75 % wet, >= 95 % inside coverage), 3,000 "
                        "each from MeteoSwiss 2015-05-15 and 2016-07-11/12, FMI 2016-09-28 and "
                        "2017-05-09, MRMS 2019-06-10; MeteoSwiss 2017-01-31 held out",
                "script": "benchmarks/train_radar.py",
            },
        },
    )
    tr = model.card.training
    print(f"sitting done in {time.perf_counter() - t0:.0f} s: step {tr['steps']}/{tr['steps_planned']}, "
          f"loss {tr['final_loss']:.4g}, total {tr['seconds']:.0f} s, sha256 {model.card.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
