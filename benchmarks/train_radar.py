"""Train the radar-precipitation models (8 km -> 1 km) in resumable sittings.

Stage 1, all sources (the ``radar-8x-mix`` model)::

    python benchmarks/train_radar.py --workdir /tmp/xds_radar --iterations 16000 --time-limit 900  # repeat

Stage 2, the embedded default ``radar-8x``: the stage-1 run continued on MeteoSwiss windows only
(2015 and 2016 events), so that the model learns that composite's smoother 1 km texture::

    python benchmarks/train_radar.py --finetune mch --init-checkpoint /tmp/xds_radar/radar-8x.ckpt \
        --workdir /tmp/xds_radar_mch --iterations 22000

``--finetune mch2015`` is the validation twin: the same continuation on the 2015 event only,
so the 2016 event is unseen and can choose the length of stage 2 (``eval_radar.py --validate``).
``--parameterisation consistency`` trains the consistency model ``radar-8x-cm`` instead.

Leave-one-source-out base models (issue #16): ``--sources`` trains stage 1 from scratch on the
given sources only, with radar-8x-mix's settings otherwise (network, transform, noise range, 3,000
windows per source; MeteoSwiss 2015 and 2016 only, 2017-01-31 held out as always); the scale range
and sigma_data come from the fold's own windows, so the left-out source is not looked at::

    python benchmarks/train_radar.py --sources fmi,mrms --workdir /tmp/xds_folds/noMCH --iterations 8000
    python benchmarks/train_radar.py --sources mch,mrms --workdir /tmp/xds_folds/noFMI --iterations 8000

The weights are written as ``radar-8x-noMCH.pt`` (``-noFMI``, ``-noMRMS``; with one source:
``radar-8x-<source>``) in ``--workdir``.
(``--kind`` and ``--steps`` are accepted as the old names of ``--parameterisation`` and
``--iterations``.)

Each sitting continues the checkpoint in ``--workdir`` and writes the weights there (EMA
weights and a complete card); ``eval_radar.py`` evaluates them on the held-out MeteoSwiss
2017-01-31 event and installs them. Data: benchmarks/radar_data.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import radar_data

import xdownscale
from xdownscale.models import load as load_model

DESCRIPTION = (
    "Radar precipitation rate, 8x (8 km -> 1 km): an EDM denoiser trained unconditionally on "
    "1 km radar composites (MeteoSwiss, FMI, NOAA MRMS) and used by SDEdit from sigma* with a few "
    "Heun steps. Small (CPU-trained) model: a demonstration default, not a production model."
)
DESCRIPTION_CM = (
    "Radar precipitation rate, 8x (8 km -> 1 km): a consistency model (improved consistency "
    "training) on the same data and network as radar-8x-mix, for one-step sampling from sigma*. "
    "Small (CPU-trained) model: for the one-step vs SDE comparison of Hess et al. (2024)."
)
DESCRIPTION_FT = (
    "Radar precipitation rate, 8x (8 km -> 1 km): an EDM denoiser pretrained unconditionally on "
    "1 km radar composites (MeteoSwiss, FMI, NOAA MRMS), then trained on MeteoSwiss alone (Hess "
    "et al.'s foundation model on the target data); used by SDEdit from sigma* with a few Heun "
    "steps. Small (CPU-trained) model: a demonstration default, not a production model."
)
FINETUNE_DATA = (
    "stage 1 (steps 1-{steps}): 9,000 windows of 64 x 64 km (75 % wet, >= 95 % inside coverage), "
    "3,000 each from MeteoSwiss 2015-05-15 and 2016-07-11/12, FMI 2016-09-28 and 2017-05-09, MRMS "
    "2019-06-10; stage 2 (the remaining steps): MeteoSwiss {years} only, 64 x 64 km windows every "
    "32 km (75 % wet); MeteoSwiss 2017-01-31 held out"
)
STAGE1_STEPS = 16000
SOURCES = ("mch", "fmi", "mrms")
SOURCE_DATA = {
    "mch": "MeteoSwiss 2015-05-15 and 2016-07-11/12",
    "fmi": "FMI 2016-09-28 and 2017-05-09",
    "mrms": "MRMS 2019-06-10",
}
SOURCE_NAMES = {"mch": "MeteoSwiss", "fmi": "FMI", "mrms": "NOAA MRMS"}
DESCRIPTION_FOLD = (
    "Radar precipitation rate, 8x (8 km -> 1 km): a leave-one-source-out base model, an EDM "
    "denoiser trained unconditionally on 1 km radar composites from {names} only ({left} left out "
    "for validation: issue #16), otherwise as radar-8x-mix; used by SDEdit from sigma* with a few "
    "Heun steps. Small (CPU-trained) model: for validation, not a default."
)


def parse_sources(text: str) -> tuple[str, ...]:
    """``"fmi,mrms"`` -> ``("fmi", "mrms")`` in the canonical order; unknown or empty: ValueError."""
    given = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = sorted(set(given) - set(SOURCES))
    if bad or not given:
        raise ValueError(f"--sources takes a comma-separated subset of {','.join(SOURCES)}, got {text!r}")
    return tuple(s for s in SOURCES if s in given)


def fold_name(sources: tuple[str, ...]) -> str:
    left = [s for s in SOURCES if s not in sources]
    if len(left) == 1:
        return f"radar-8x-no{left[0].upper()}"
    return "radar-8x-" + "-".join(sources)


def fold_data(sources: tuple[str, ...], per_source: int = 3000) -> str:
    held = ["MeteoSwiss 2017-01-31 held out"] if "mch" in sources else []
    held += [
        "MeteoSwiss (all events) left out" if s == "mch" else f"{SOURCE_DATA[s]} left out"
        for s in SOURCES if s not in sources
    ]
    each = f"{per_source:,} each from " if len(sources) > 1 else "from "
    return (
        f"{per_source * len(sources):,} windows of 64 x 64 km (75 % wet, >= 95 % inside coverage), "
        + each + ", ".join(SOURCE_DATA[s] for s in sources) + "".join("; " + h for h in held)
    )
LICENCE = (
    "Weights: BSD-3-Clause, as xdownscale. Training data: pysteps-data radar samples "
    "(MeteoSwiss and FMI: no licence file in pysteps-data, the agencies' terms apply; "
    "MRMS: NOAA, US government work). The weights contain no data."
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/xds_radar")
    ap.add_argument("--iterations", "--steps", type=int, default=4000,
                    help="optimiser steps in all (xdownscale.train(iterations=))")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a shared, oversubscribed CPU)")
    ap.add_argument("--quick", action="store_true", help="a 20-step smoke run")
    ap.add_argument("--parameterisation", "--kind", choices=["edm", "consistency"], default="edm",
                    help="consistency: improved consistency training, written as radar-8x-cm.pt")
    ap.add_argument("--finetune", choices=["mch", "mch2015"], default=None,
                    help="stage 2: continue --init-checkpoint on MeteoSwiss windows only "
                         "(mch2015: the 2015 event only, for validation on 2016)")
    ap.add_argument("--init-checkpoint", default="/tmp/xds_radar/radar-8x.ckpt",
                    help="the stage-1 checkpoint that --finetune continues")
    ap.add_argument("--sources", default=None,
                    help="stage 1 on these sources only, e.g. fmi,mrms (leave-one-source-out "
                         "folds, issue #16); MeteoSwiss 2017-01-31 stays held out")
    args = ap.parse_args(argv)
    sources = None
    if args.sources is not None:
        try:
            sources = parse_sources(args.sources)
        except ValueError as err:
            ap.error(str(err))
        if args.finetune or args.parameterisation != "edm":
            ap.error("--sources trains the stage-1 EDM model only (no --finetune, no consistency)")
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "patches.nc"
    name = "radar-8x" if args.parameterisation == "edm" else "radar-8x-cm"
    if sources is not None:
        name = fold_name(sources)
    extra = {}
    if args.finetune:
        if args.parameterisation != "edm":
            ap.error("--finetune continues the EDM model only")
        years = (2015,) if args.finetune == "mch2015" else (2015, 2016)
        if not cache.exists():
            radar_data.patches(sources=("mch",), mch_years=years, per_source=6000, stride=32).to_netcdf(cache)
        ck = work / f"{name}.ckpt"
        if not ck.exists():
            shutil.copyfile(args.init_checkpoint, ck)
        # the stage-1 transform and noise scale (radar-8x-mix's card): the continued network
        # must see the same space
        stage1 = load_model("radar-8x-mix").card
        extra = {"scale_range": (stage1.scale_min, stage1.scale_max), "sigma_data": stage1.sigma_data}
        print(f"continuing {ck} on MeteoSwiss {years} windows", flush=True)
    elif sources is not None:
        if not cache.exists():
            # the 2015 and 2016 events: training_sources() already drops 2017-01-31; explicit here
            radar_data.patches(sources=sources, mch_years=(2015, 2016)).to_netcdf(cache)
        print(f"stage 1 on {', '.join(sources)} only: {name}", flush=True)
    elif not cache.exists():
        radar_data.patches().to_netcdf(cache)
    da = xr.open_dataarray(cache).load()
    if sources is not None:
        left = [s for s in SOURCES if s not in sources]
        description = DESCRIPTION_FOLD.format(
            names=" and ".join(SOURCE_NAMES[s] for s in sources),
            left=" and ".join(SOURCE_NAMES[s] for s in left) or "nothing",
        )
        data = fold_data(sources)
    else:
        description = (DESCRIPTION_FT if args.finetune else DESCRIPTION) if args.parameterisation == "edm" else DESCRIPTION_CM
        data = (
            FINETUNE_DATA.format(years=" and ".join(map(str, years)), steps=STAGE1_STEPS)
            if args.finetune else "9,000 windows of 64 x 64 km (75 % wet, >= 95 % inside coverage), 3,000 "
            "each from MeteoSwiss 2015-05-15 and 2016-07-11/12, FMI 2016-09-28 and "
            "2017-05-09, MRMS 2019-06-10; MeteoSwiss 2017-01-31 held out"
        )
    t0 = time.perf_counter()
    model = xdownscale.train(
        da, parameterisation=args.parameterisation, name=name,
        output=work / (f"{name}-quick.pt" if args.quick else f"{name}.pt"),
        iterations=20 if args.quick else args.iterations, batch_size=32, crop=32, lr=1e-3,
        channels=(16, 32, 64), attention=False, transform="log",
        scale_range=extra.get("scale_range", "auto"), sigma_data=extra.get("sigma_data"),
        sigma_min=0.002, sigma_max=5.0, p_mean=-0.6 if args.parameterisation == "edm" else None,
        p_std=1.2 if args.parameterisation == "edm" else None, ema=0.995, factors=(8,),
        min_valid=0.9, psd_size=64, checkpoint=None if args.quick else work / f"{name}.ckpt",
        checkpoint_every=180.0, time_limit=args.time_limit, seed=0, device="auto",
        card={
            "version": "1", "licence": LICENCE,
            "description": description,
            "variable": "precip", "standard_name": "lwe_precipitation_rate",
            "training": {
                "data": data,
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
