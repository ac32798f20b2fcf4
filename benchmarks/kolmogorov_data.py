"""Generate the Kolmogorov-flow NS 8x data once and cache it for the Wan et al. scripts.

    python benchmarks/kolmogorov_data.py --n-fine 8192 --n-coarse 16384

Writes ``<cache>/kolmogorov_<n_fine>_<n_coarse>_s<seed>_fine.nc`` and ``..._lflr.nc``: 64^2 vorticity
from the 128^2 solver and 8^2 vorticity from the biased low-fidelity solver.
The cache folder is ``$XDOWNSCALE_BENCH_CACHE`` or ``benchmarks/.cache`` (git-ignored).
``bench_wan_debias.py``, ``bench_wan_downscale.py`` and ``train_kolmogorov.py`` call
:func:`load`, which generates the file when it is missing.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import xarray as xr

CACHE = Path(os.environ.get("XDOWNSCALE_BENCH_CACHE", Path(__file__).resolve().parent / ".cache"))


def path(n_fine: int, n_coarse: int, seed: int, which: str = "fine") -> Path:
    return CACHE / f"kolmogorov_{n_fine}_{n_coarse}_s{seed}_{which}.nc"


def load(
    n_fine: int, n_coarse: int, seed: int = 0, n_trajectories: int | None = None
) -> tuple[xr.DataArray, xr.DataArray, float]:
    """``(fine, lflr, seconds)``: cached fields, or generated (and cached) now.

    ``seconds`` is the generation time recorded when the files were written;
    ``n_trajectories`` (default 64 when generating) must match a cached file's.
    """
    from xdownscale.datasets.kolmogorov import kolmogorov_dataset

    pf, pc = path(n_fine, n_coarse, seed, "fine"), path(n_fine, n_coarse, seed, "lflr")
    if not (pf.exists() and pc.exists()):
        n_trajectories = n_trajectories or 64
        t0 = time.perf_counter()
        fine, lflr = kolmogorov_dataset(n_fine, n_coarse, seed=seed, n_trajectories=n_trajectories)
        seconds = time.perf_counter() - t0
        CACHE.mkdir(parents=True, exist_ok=True)
        for da, p in ((fine, pf), (lflr, pc)):
            da = da.assign_attrs(generation_seconds=seconds, n_trajectories=n_trajectories)
            tmp = p.with_suffix(".part")
            da.to_netcdf(tmp)
            tmp.replace(p)
    fine, lflr = (xr.load_dataarray(p) for p in (pf, pc))
    if n_trajectories is not None and fine.attrs["n_trajectories"] != n_trajectories:
        raise SystemExit(
            f"{pf} holds {fine.attrs['n_trajectories']} trajectories, not {n_trajectories}; "
            "delete it (or pass the cached number) to regenerate"
        )
    return fine, lflr, float(fine.attrs["generation_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fine", type=int, default=4096)
    ap.add_argument("--n-coarse", type=int, default=8192)
    ap.add_argument("--trajectories", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    fine, lflr, sec = load(args.n_fine, args.n_coarse, args.seed, args.trajectories)
    print(f"{path(args.n_fine, args.n_coarse, args.seed)}: fine {dict(fine.sizes)}, "
          f"lflr {dict(lflr.sizes)}, generated in {sec:.0f} s")


if __name__ == "__main__":
    main()
